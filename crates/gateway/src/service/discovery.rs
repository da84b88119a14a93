//! `GET /.well-known/zkcredits` (`docs/PROTOCOL.md §8`): what a client checks before it
//! proves anything (chain, pool, `C_max`, `P_max`, verifying key) and what it proves
//! against (server keys, accepted roots), with each route's prices.
//!
//! The fields map one to one onto the client's `GatewayConstants`: `chain_id`, `pool`,
//! `c_max`, `p_max`, `verifying_key_hash`, `current_key`, `accepted_keys` (older keys
//! only, the current key is not repeated).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use zkcredits_api::prices::RoutePrices;
use zkcredits_chain::alloy::primitives::Address;
use zkcredits_protocol::eddsa::PublicKey;
use zkcredits_protocol::field;

use super::AppState;

/// The protocol version this gateway speaks (credential and receipt encodings).
pub const PROTOCOL_VERSION: u8 = zkcredits_protocol::wire::VERSION;

/// A receipt key as published.
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

impl DiscoveryKey {
    /// Publishes `key` under `id`.
    pub fn new(id: u32, key: &PublicKey) -> Self {
        let p = key.point();
        Self {
            id,
            public_key: format!("0x{}", hex::encode(key.to_bytes())),
            x: field::to_hex(&p.x),
            y: field::to_hex(&p.y),
        }
    }

    /// The key, decoded from `public_key`.
    pub fn decode(&self) -> Option<PublicKey> {
        let bytes = crate::config::decode_hex32(&self.public_key)?;
        PublicKey::from_bytes(&bytes).ok()
    }
}

/// The discovery document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    /// Credential and receipt format version.
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
    /// SHA-256 of the request verifying key, `0x` hex.
    pub verifying_key_hash: String,
    /// The key that signs new receipts.
    pub current_key: DiscoveryKey,
    /// Older keys still accepted in credentials.
    pub accepted_keys: Vec<DiscoveryKey>,
    /// Roots a credential may be proven against right now, `0x` hex.
    pub accepted_roots: Vec<String>,
    /// Prices per route prefix: the tables the adapters check requests against, which a
    /// client checks its requests against too before it proves.
    pub prices: BTreeMap<String, RoutePrices>,
    /// The largest request body admitted, in bytes.
    pub body_limit: usize,
    /// The pool's deployment without an RPC URL (the gateway's may carry an API key):
    /// what `zkcredits join` checks against the chain through the user's own node and
    /// saves, so that no file has to come from the provider.
    pub deployment: zkcredits_chain::Deployment,
    /// The close relay (`POST /zkcredit/close-relay`): who a relayed close pays and how
    /// much; absent when this gateway does not relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<super::relay::RelayOffer>,
}

impl Discovery {
    pub(crate) fn of(state: &AppState) -> Self {
        let mut roots: Vec<String> = state.roots.snapshot().iter().map(field::to_hex).collect();
        roots.sort();
        Self {
            protocol_version: PROTOCOL_VERSION,
            chain_id: state.chain_id,
            pool: state.pool,
            token: state.token,
            c_max: state.limits.c_max,
            p_max: state.limits.p_max,
            unit: state.constants.unit.to_string(),
            refund_granularity: state.settings.refund_granularity,
            verifying_key_hash: format!("0x{}", hex::encode(state.vk_hash)),
            current_key: DiscoveryKey::new(state.keys.current_id(), &state.keys.current_public()),
            accepted_keys: state
                .keys
                .accepted()
                .iter()
                .map(|(id, k)| DiscoveryKey::new(*id, k))
                .collect(),
            accepted_roots: roots,
            prices: state
                .routes
                .iter()
                .map(|r| (r.prefix.clone(), r.upstream.prices()))
                .collect(),
            body_limit: state.settings.body_limit,
            deployment: state.published.clone(),
            relay: state.relay.as_ref().map(|r| r.offer()),
        }
    }
}

pub(crate) async fn handler(State(state): State<Arc<AppState>>) -> Response {
    let mut response = Json(Discovery::of(&state)).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    response
}
