//! `POST /zkcredit/close-relay` (`docs/PROTOCOL.md §6`, "Relayed close"): the gateway
//! sends a user's cooperative close from the provider's account, so that the user needs
//! no funded account other than the deposit one and the close never comes from it.
//!
//! The user proves the close with the relay's fee and recipient (published in the
//! discovery document) bound into `x_w`, gets the clearance as for any cooperative close,
//! and posts the exact `closeCooperative` calldata. Nothing in it can be redirected: the
//! pool recomputes `x_w` from the payout, the fee and the recipient. The relay checks
//! that the fee is its own and then lets the pool judge the rest: the call is simulated
//! before it is sent, so a close the pool refuses costs nothing and is answered with the
//! pool's named error. Transactions go out one at a time with the duties' ([`TxLock`]),
//! since they share the provider's nonce.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use zkcredits_api::RelayOffer;
use zkcredits_chain::{ContractError, PoolClient, RelayedClose};
use zkcredits_protocol::credits::Credits;

use super::AppState;
use crate::api_error::{ApiError, Code};
use crate::duties::TxLock;

/// The relay: the provider's pool client and what it charges.
#[derive(Clone, Debug)]
pub(crate) struct Relay {
    pub(crate) pool: PoolClient,
    pub(crate) lock: TxLock,
    pub(crate) fee: Credits,
}

impl Relay {
    pub(crate) fn offer(&self) -> RelayOffer {
        RelayOffer {
            relayer: self.pool.sender(),
            fee: self.fee.get(),
        }
    }
}

/// The body of `POST /zkcredit/close-relay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RelayRequest {
    /// `0x` + the hex of the `closeCooperative` calldata.
    calldata: String,
}

/// `POST /zkcredit/close-relay`.
pub(crate) async fn close_relay(
    State(state): State<Arc<AppState>>,
    body: Result<Json<RelayRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let relay = state.relay.as_ref().ok_or_else(|| {
        ApiError::new(
            Code::Unavailable,
            "this gateway does not relay closes; send the close yourself from a funded key \
             that is not your deposit account (zkcredits close --keystore)",
        )
    })?;
    let Json(body) = body.map_err(|e| {
        ApiError::new(
            Code::InvalidBody,
            format!(
                "expected JSON {{\"calldata\": \"0x..\"}}: {}",
                e.body_text()
            ),
        )
    })?;
    let bytes = body
        .calldata
        .strip_prefix("0x")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| ApiError::new(Code::InvalidBody, "calldata must be 0x + hex"))?;
    let close = RelayedClose::decode(&bytes)
        .map_err(|e| ApiError::new(Code::InvalidBody, e.to_string()))?;
    let offer = relay.offer();
    if close.relayer() != offer.relayer || close.relay_fee() < relay.fee {
        return Err(ApiError::new(
            Code::RelayFeeMismatch,
            format!(
                "this relay sends closes that pay {} credit units to {} (the discovery \
                 document's relay); the close pays {} to {}: prove it again with those",
                offer.fee,
                offer.relayer,
                close.relay_fee(),
                close.relayer()
            ),
        ));
    }
    let outcome = {
        let _sending = relay.lock.lock().await;
        relay.pool.relay_close(&close).await
    };
    let outcome = outcome.map_err(refusal)?;
    metrics::counter!(crate::telemetry::CLOSES_RELAYED).increment(1);
    tracing::info!(tx = %outcome.tx.hash, gas = outcome.tx.gas_used, "relayed a close");
    Ok(Json(serde_json::json!({
        "tx_hash": outcome.tx.hash.to_string(),
        "block": outcome.tx.block_number,
        "gas_used": outcome.tx.gas_used,
        "payout": outcome.payout.to_string(),
        "to_payout": outcome.to_payout.to_string(),
        "relayer": outcome.relayer.to_string(),
        "to_relayer": outcome.to_relayer.to_string(),
        "to_provider": outcome.to_provider.to_string(),
        "burned": outcome.burned.to_string(),
    }))
    .into_response())
}

/// A failed relay as an answer: the pool's refusals by name (the user's to fix), a
/// root committed meanwhile as `stale_root`, the rest as passing.
fn refusal(e: zkcredits_chain::Error) -> ApiError {
    match e {
        zkcredits_chain::Error::Contract(ContractError::UnknownRoot(_)) => ApiError::new(
            Code::StaleRoot,
            "the pool does not know the close's root (a deposit landed since): sync, prove \
             the close again and resend",
        ),
        zkcredits_chain::Error::Contract(c) => ApiError::new(
            Code::CloseRefused,
            format!("the pool refuses this close, nothing was sent: {c}"),
        ),
        other => {
            tracing::warn!(error = %other, "relaying a close failed");
            ApiError::new(
                Code::Unavailable,
                format!("the relay could not send the close ({other}); retry later"),
            )
        }
    }
}
