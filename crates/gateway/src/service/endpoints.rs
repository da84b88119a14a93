//! The gateway's own endpoints besides discovery: receipts by nullifier, close
//! clearances, metrics and liveness.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use zkcredits_protocol::rln::Nullifier;
use zkcredits_protocol::state::Receipt;
use zkcredits_protocol::wire::WireFormat;

use super::AppState;
use crate::api_error::{ApiError, Code, RECEIPT_HEADER};
use crate::store::{Admission, CLEARANCE_X, StoredShare};

/// A nullifier in its one text form, `0x` + 64 hex digits of a canonical field element
/// (a close nullifier `NC` is written the same way).
fn parse_nullifier(text: &str, what: &str) -> Result<Nullifier, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            Code::MalformedNullifier,
            format!("{what} must be 0x followed by 64 hex digits of a field element"),
        )
    })
}

/// `GET /zkcredit/receipts/{N}`: the receipt issued for ticket `N`.
pub(crate) async fn receipt(
    State(state): State<Arc<AppState>>,
    Path(text): Path<String>,
) -> Result<Response, ApiError> {
    let n = parse_nullifier(&text, "the nullifier")?;
    let stored = state.store.receipt(n.to_bytes()).await.map_err(|e| {
        tracing::error!(error = %e, "receipt lookup failed");
        ApiError::new(
            Code::StoreUnavailable,
            "the receipt store is unavailable; retry later",
        )
    })?;
    let receipt = stored
        .as_deref()
        .and_then(|b| Receipt::decode(b).ok())
        .ok_or_else(|| {
            ApiError::new(
                Code::ReceiptNotFound,
                "no receipt was issued for this nullifier (the ticket was never admitted, or its \
                 request is still running: retry in a moment); a note whose receipt is lost is \
                 closed with m = 1",
            )
        })?;
    let b64 = receipt.to_base64url();
    let mut response = Json(serde_json::json!({
        "nullifier": n.to_string(),
        "receipt": b64,
        "refund": receipt.refund.get(),
        "penalty": receipt.penalty.get(),
    }))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&b64) {
        response.headers_mut().insert(RECEIPT_HEADER, v);
    }
    Ok(response)
}

/// The body of `POST /zkcredit/close-clearance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClearanceRequest {
    close_nullifier: String,
    nullifier: String,
}

/// `POST /zkcredit/close-clearance`: records the close's ticket `N_j` as spent, then
/// signs the clearance of `(NC, N_j)` (`docs/PROTOCOL.md §6`, cooperative close).
pub(crate) async fn close_clearance(
    State(state): State<Arc<AppState>>,
    body: Result<Json<ClearanceRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::new(
            Code::InvalidBody,
            format!(
                "expected JSON {{\"close_nullifier\": \"0x..\", \"nullifier\": \"0x..\"}}: {}",
                e.body_text()
            ),
        )
    })?;
    let nc = parse_nullifier(&body.close_nullifier, "close_nullifier")?.field();
    let nj = parse_nullifier(&body.nullifier, "nullifier")?;
    let signer = state.provider_signer.as_ref().ok_or_else(|| {
        ApiError::new(
            Code::Unavailable,
            "this gateway has no provider key and cannot clear closes; close unilaterally",
        )
    })?;
    let share = StoredShare {
        x: CLEARANCE_X,
        y: [0; 32],
    };
    let admission = state
        .store
        .admit(nj.to_bytes(), share, None)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "nullifier store failed");
            ApiError::new(
                Code::StoreUnavailable,
                "the nullifier store is unavailable; retry later",
            )
        })?;
    match admission {
        // Fresh, or a clearance asked again: the ticket is reserved for this close.
        Admission::Fresh | Admission::Replay { .. } => {}
        Admission::DoubleSpend { .. } => {
            metrics::counter!(crate::telemetry::REJECTED, "code" => Code::TicketSpent.as_str())
                .increment(1);
            return Err(ApiError::new(
                Code::TicketSpent,
                "the close's ticket was already used for a request: the note state is stale; \
                 close with the latest receipt (or m = 1 if it was lost)",
            ));
        }
    }
    let signature = zkcredits_chain::sign_clearance(signer, state.chain_id, state.pool, nc, nj)
        .map_err(|e| {
            tracing::error!(error = %e, "signing a clearance failed");
            ApiError::new(Code::Internal, "signing the clearance failed; retry later")
        })?;
    Ok(Json(serde_json::json!({
        "signature": format!("0x{}", hex::encode(signature)),
        "signer": signer.address().to_string(),
    }))
    .into_response())
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /healthz`.
pub(crate) async fn health() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}
