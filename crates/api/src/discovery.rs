//! The discovery document (`GET /.well-known/zkcredits`, [`crate::DISCOVERY_PATH`]):
//! the one definition the gateway serves and the client parses.
//!
//! It says what a client checks before it proves anything (chain, pool, `C_max`,
//! `P_max`, verifying key), what it proves against (server keys, accepted roots), each
//! route's prices, and the close relay. Field names are the wire names; renaming one
//! changes the protocol (`docs/PROTOCOL.md §8`).
//!
//! The pool's deployment file is the chain crate's type, which this crate does not
//! depend on: [`Discovery`] is generic over it. The gateway serves and the client parses
//! `Discovery<zkcredits_chain::Deployment>`.

use std::collections::BTreeMap;

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

use crate::prices::RoutePrices;

/// The discovery document, with the pool's deployment file of type `D`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery<D> {
    /// Credential and receipt format version (`zkcredits_protocol::wire::VERSION`).
    pub protocol_version: u8,
    /// The chain the pool lives on.
    pub chain_id: u64,
    /// The pool contract.
    pub pool: Address,
    /// The token.
    pub token: Address,
    /// `C_max`, credit units.
    pub c_max: u64,
    /// `P_max`, credit units.
    pub p_max: u64,
    /// Token base units per credit unit, decimal.
    pub unit: String,
    /// Refunds are multiples of this.
    pub refund_granularity: u64,
    /// SHA-256 of the request verifying key, `0x` + 64 hex digits.
    pub verifying_key_hash: String,
    /// The key that signs new receipts.
    pub current_key: DiscoveryKey,
    /// Older keys still accepted in credentials (the current key is not repeated).
    pub accepted_keys: Vec<DiscoveryKey>,
    /// Roots a credential may be proven against right now, `0x` hex field elements.
    pub accepted_roots: Vec<String>,
    /// Prices per route prefix: the tables the gateway's adapters check requests
    /// against, which a client checks its requests against too before it proves.
    pub prices: BTreeMap<String, RoutePrices>,
    /// The largest request body admitted, in bytes.
    pub body_limit: usize,
    /// The pool's deployment without an RPC URL (the gateway's may carry an API key):
    /// what `zkcredits join` checks against the chain through the user's own node and
    /// saves, so that no file has to come from the provider.
    pub deployment: D,
    /// The close relay (`POST /zkcredit/close-relay`): who a relayed close pays and how
    /// much; absent when the gateway does not relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayOffer>,
}

/// A receipt key as published: the same point in both of its encodings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryKey {
    /// The id a credential names.
    pub id: u32,
    /// The compressed BabyJubJub point, `0x` + 64 hex digits
    /// (`zkcredits_protocol::eddsa::PublicKey::to_bytes`).
    pub public_key: String,
    /// The point's x coordinate, `0x` hex (the circuit's `Ax`).
    pub x: String,
    /// The point's y coordinate, `0x` hex (the circuit's `Ay`).
    pub y: String,
}

/// What the discovery document publishes about the close relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayOffer {
    /// Who the close must pay the fee to: the account that sends relayed closes.
    pub relayer: Address,
    /// The fee, credit units out of the close's payout `U`.
    pub fee: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::prices::FlatPrices;

    fn key(id: u32) -> DiscoveryKey {
        DiscoveryKey {
            id,
            public_key: format!("0x{}", "ab".repeat(32)),
            x: "0x01".into(),
            y: "0x02".into(),
        }
    }

    fn document(relay: Option<RelayOffer>) -> Discovery<serde_json::Value> {
        Discovery {
            protocol_version: 1,
            chain_id: 31337,
            pool: Address::repeat_byte(0x11),
            token: Address::repeat_byte(0x22),
            c_max: 1000,
            p_max: 5000,
            unit: "1000000000000".into(),
            refund_granularity: 10,
            verifying_key_hash: format!("0x{}", "09".repeat(32)),
            current_key: key(2),
            accepted_keys: vec![key(1)],
            accepted_roots: vec!["0x05".into()],
            prices: BTreeMap::from([(
                "/api".to_owned(),
                RoutePrices::Flat(FlatPrices { per_request: 5 }),
            )]),
            body_limit: 1024,
            deployment: serde_json::json!({"chain_id": 31337}),
            relay,
        }
    }

    /// The wire names are the protocol: this pins every one of them.
    #[test]
    fn the_document_keeps_its_wire_names() {
        let relay = RelayOffer {
            relayer: Address::repeat_byte(0x33),
            fee: 7,
        };
        let value = serde_json::to_value(document(Some(relay))).unwrap();
        let k = |id: u32| {
            serde_json::json!({
                "id": id,
                "public_key": format!("0x{}", "ab".repeat(32)),
                "x": "0x01",
                "y": "0x02",
            })
        };
        assert_eq!(
            value,
            serde_json::json!({
                "protocol_version": 1,
                "chain_id": 31337,
                "pool": "0x1111111111111111111111111111111111111111",
                "token": "0x2222222222222222222222222222222222222222",
                "c_max": 1000,
                "p_max": 5000,
                "unit": "1000000000000",
                "refund_granularity": 10,
                "verifying_key_hash": format!("0x{}", "09".repeat(32)),
                "current_key": k(2),
                "accepted_keys": [k(1)],
                "accepted_roots": ["0x05"],
                "prices": {"/api": {"kind": "flat", "per_request": 5}},
                "body_limit": 1024,
                "deployment": {"chain_id": 31337},
                "relay": {"relayer": "0x3333333333333333333333333333333333333333", "fee": 7},
            })
        );
        let back: Discovery<serde_json::Value> = serde_json::from_value(value).unwrap();
        assert_eq!(back, document(Some(relay)));
    }

    #[test]
    fn the_relay_is_left_out_when_there_is_none() {
        let value = serde_json::to_value(document(None)).unwrap();
        assert!(value.get("relay").is_none());
        let back: Discovery<serde_json::Value> = serde_json::from_value(value).unwrap();
        assert_eq!(back, document(None));
    }

    #[test]
    fn a_missing_field_or_a_number_as_text_is_refused() {
        let value = serde_json::to_value(document(None)).unwrap();
        let mut missing = value.clone();
        missing.as_object_mut().unwrap().remove("c_max");
        assert!(serde_json::from_value::<Discovery<serde_json::Value>>(missing).is_err());
        let mut text = value;
        text["c_max"] = serde_json::json!("1000");
        assert!(serde_json::from_value::<Discovery<serde_json::Value>>(text).is_err());
    }
}
