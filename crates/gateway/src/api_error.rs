//! Every answer the gateway refuses with: an HTTP status, a stable machine-readable code
//! and a message that says what to do next, in the OpenAI error shape
//! `{"error": {"message", "type", "code"}}` so that OpenAI SDKs surface it unchanged.
//!
//! [`Code`] is the one table from a refusal to its status and wire code; a test pins
//! the codes so that a rename is a visible decision (clients match on them).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The header that carries a receipt (`docs/PROTOCOL.md §8`).
pub const RECEIPT_HEADER: &str = "zkcredit-receipt";

/// Why the gateway refused or cut short a request. Each variant has one status and one
/// stable code ([`Code::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code {
    /// A paid route was called without a `ZkCredit` credential.
    PaymentRequired,
    /// The credential is not a valid encoding.
    MalformedCredential,
    /// The credential's root is not among the pool's recent roots.
    StaleRoot,
    /// The credential names a server key this gateway does not accept.
    UnknownServerKey,
    /// The proof does not verify with the public inputs the gateway computed.
    InvalidProof,
    /// The ticket was already used for this exact request.
    Replay,
    /// The ticket was already used for another request.
    DoubleSpend,
    /// The request violates the provider's policy.
    PolicyViolation,
    /// The policy check could not run.
    PolicyUnavailable,
    /// The upstream failed.
    UpstreamFailed,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The request body is larger than the gateway accepts.
    BodyTooLarge,
    /// No paid route or gateway endpoint has this path.
    UnknownRoute,
    /// No receipt is stored for this nullifier.
    ReceiptNotFound,
    /// A nullifier in a path or a body is not `0x` + 64 hex digits of a field element.
    MalformedNullifier,
    /// A gateway endpoint's JSON body is not what it takes.
    InvalidBody,
    /// The close's ticket was already used for a request.
    TicketSpent,
    /// The nullifier store failed; nothing was charged.
    StoreUnavailable,
    /// The gateway is overloaded or shutting down; retry later.
    Unavailable,
    /// The pool does not (yet) accept the gateway's receipt key, so no receipt it signs
    /// could be carried into a close: nothing is admitted until it does.
    ServerKeyNotAccepted,
    /// A bug or an unexpected failure inside the gateway.
    Internal,
}

impl Code {
    /// Every code, for documentation and the uniqueness test.
    pub const ALL: [Code; 21] = [
        Code::PaymentRequired,
        Code::MalformedCredential,
        Code::StaleRoot,
        Code::UnknownServerKey,
        Code::InvalidProof,
        Code::Replay,
        Code::DoubleSpend,
        Code::PolicyViolation,
        Code::PolicyUnavailable,
        Code::UpstreamFailed,
        Code::UpstreamTimeout,
        Code::BodyTooLarge,
        Code::UnknownRoute,
        Code::ReceiptNotFound,
        Code::MalformedNullifier,
        Code::InvalidBody,
        Code::TicketSpent,
        Code::StoreUnavailable,
        Code::Unavailable,
        Code::ServerKeyNotAccepted,
        Code::Internal,
    ];

    /// The stable wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::PaymentRequired => "payment_required",
            Code::MalformedCredential => "malformed_credential",
            Code::StaleRoot => "stale_root",
            Code::UnknownServerKey => "unknown_server_key",
            Code::InvalidProof => "invalid_proof",
            Code::Replay => "replay",
            Code::DoubleSpend => "double_spend",
            Code::PolicyViolation => "policy_violation",
            Code::PolicyUnavailable => "policy_unavailable",
            Code::UpstreamFailed => "upstream_failed",
            Code::UpstreamTimeout => "upstream_timeout",
            Code::BodyTooLarge => "body_too_large",
            Code::UnknownRoute => "unknown_route",
            Code::ReceiptNotFound => "receipt_not_found",
            Code::MalformedNullifier => "malformed_nullifier",
            Code::InvalidBody => "invalid_body",
            Code::TicketSpent => "ticket_spent",
            Code::StoreUnavailable => "store_unavailable",
            Code::Unavailable => "unavailable",
            Code::ServerKeyNotAccepted => "server_key_not_accepted",
            Code::Internal => "internal_error",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Code::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
            Code::MalformedCredential
            | Code::UnknownServerKey
            | Code::MalformedNullifier
            | Code::InvalidBody => StatusCode::BAD_REQUEST,
            Code::InvalidProof => StatusCode::UNAUTHORIZED,
            Code::PolicyViolation => StatusCode::FORBIDDEN,
            Code::UnknownRoute | Code::ReceiptNotFound => StatusCode::NOT_FOUND,
            Code::StaleRoot | Code::Replay | Code::DoubleSpend | Code::TicketSpent => {
                StatusCode::CONFLICT
            }
            Code::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UpstreamFailed => StatusCode::BAD_GATEWAY,
            Code::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Code::PolicyUnavailable
            | Code::StoreUnavailable
            | Code::Unavailable
            | Code::ServerKeyNotAccepted => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OpenAI error `type`: who has to act.
    fn kind(self) -> &'static str {
        match self.status().as_u16() {
            402 => "payment_required",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            409 => "conflict_error",
            413 | 400 => "invalid_request_error",
            _ => "server_error",
        }
    }
}

/// A refusal: status and code from [`Code`] (or from an upstream adapter), a message, and
/// the receipt when the ticket was spent (the client must get it whatever the outcome).
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// Base64url receipt to send in `ZkCredit-Receipt`, if one was issued.
    pub receipt: Option<String>,
    /// Extra headers (`WWW-Authenticate` on a 402).
    pub www_authenticate: Option<String>,
}

impl ApiError {
    /// A refusal with `code`'s status.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            status: code.status(),
            code: code.as_str(),
            message: message.into(),
            receipt: None,
            www_authenticate: None,
        }
    }

    /// An adapter's refusal, with its own status and code.
    pub fn other(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            receipt: None,
            www_authenticate: None,
        }
    }

    /// Attaches the receipt issued for the spent ticket.
    pub fn with_receipt(mut self, receipt: String) -> Self {
        self.receipt = Some(receipt);
        self
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let kind = Code::ALL
            .iter()
            .find(|c| c.as_str() == self.code)
            .map_or_else(
                || {
                    if self.status.is_client_error() {
                        "invalid_request_error"
                    } else {
                        "server_error"
                    }
                },
                |c| c.kind(),
            );
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": kind,
                "code": self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(receipt) = &self.receipt
            && let Ok(v) = HeaderValue::from_str(receipt)
        {
            headers.insert(RECEIPT_HEADER, v);
        }
        if let Some(challenge) = &self.www_authenticate
            && let Ok(v) = HeaderValue::from_str(challenge)
        {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_unchanged() {
        let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), codes.len(), "duplicate code");
        assert_eq!(
            codes.join(","),
            "payment_required,malformed_credential,stale_root,unknown_server_key,\
             invalid_proof,replay,double_spend,policy_violation,policy_unavailable,\
             upstream_failed,upstream_timeout,body_too_large,unknown_route,\
             receipt_not_found,malformed_nullifier,invalid_body,ticket_spent,\
             store_unavailable,unavailable,server_key_not_accepted,internal_error"
        );
    }

    #[test]
    fn the_body_has_the_openai_shape() {
        let e = ApiError::new(Code::StaleRoot, "resync");
        let body = e.body();
        assert_eq!(body["error"]["code"], "stale_root");
        assert_eq!(body["error"]["type"], "conflict_error");
        assert_eq!(body["error"]["message"], "resync");
        assert_eq!(e.status, StatusCode::CONFLICT);
    }
}
