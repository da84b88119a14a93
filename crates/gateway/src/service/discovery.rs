//! `GET /.well-known/zkcredits` (`docs/PROTOCOL.md §8`): what a client checks before it
//! proves anything (chain, pool, `C_max`, `P_max`, verifying key) and what it proves
//! against (server keys, accepted roots), with each route's prices.
//!
//! The document's type is `zkcredits_api::Discovery`, which the client parses too; this
//! module fills it in. Its fields map onto the client's `GatewayConstants`: `chain_id`,
//! `pool`, `c_max`, `p_max`, `verifying_key_hash`, `current_key`, `accepted_keys` (older
//! keys only, the current key is not repeated).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use zkcredits_api::DiscoveryKey;
use zkcredits_chain::Deployment;
use zkcredits_protocol::eddsa::PublicKey;
use zkcredits_protocol::field;
use zkcredits_protocol::merkle::Root;

use super::AppState;

/// The protocol version this gateway speaks (credential and receipt encodings).
pub const PROTOCOL_VERSION: u8 = zkcredits_protocol::wire::VERSION;

/// The discovery document this gateway serves: the API's, with the chain crate's
/// deployment file.
pub type Discovery = zkcredits_api::Discovery<Deployment>;

/// Publishes `key` under `id`.
pub fn publish_key(id: u32, key: &PublicKey) -> DiscoveryKey {
    let p = key.point();
    DiscoveryKey {
        id,
        public_key: format!("0x{}", hex::encode(key.to_bytes())),
        x: field::to_hex(&p.x),
        y: field::to_hex(&p.y),
    }
}

/// The key `published` names, decoded from its `public_key`.
pub fn decode_key(published: &DiscoveryKey) -> Option<PublicKey> {
    let bytes = crate::keys::decode_hex32(&published.public_key)?;
    PublicKey::from_bytes(&bytes).ok()
}

/// The document as of now.
pub(crate) fn document(state: &AppState) -> Discovery {
    let mut roots: Vec<String> = state.roots.snapshot().iter().map(Root::to_string).collect();
    roots.sort();
    Discovery {
        protocol_version: PROTOCOL_VERSION,
        chain_id: state.chain_id,
        pool: state.pool,
        token: state.token,
        c_max: state.limits.c_max.get(),
        p_max: state.limits.p_max.get(),
        unit: state.constants.unit.to_string(),
        refund_granularity: state.settings.refund_granularity.get(),
        verifying_key_hash: format!("0x{}", hex::encode(state.vk_hash)),
        current_key: publish_key(state.keys.current_id(), &state.keys.current_public()),
        accepted_keys: state
            .keys
            .accepted()
            .iter()
            .map(|(id, k)| publish_key(*id, k))
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

pub(crate) async fn handler(State(state): State<Arc<AppState>>) -> Response {
    let mut response = Json(document(&state)).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    response
}
