//! Every refusal a gateway answers with: one stable wire code, one HTTP status, and what
//! the refusal means for the ticket that paid for the request ([`Code::fate`]).
//!
//! Both sides decide from this table: the gateway picks the status, the client decides
//! whether to send the same credential again, prove the same ticket again, or retire the
//! note. Neither looks at HTTP statuses or message text. A test pins the codes so that a
//! rename is a visible decision (deployed clients match on them).

use http::StatusCode;

/// Why a gateway refused or cut short a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// The body is not what the route or endpoint takes.
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
    /// The route is served, but not with this HTTP method.
    MethodNotAllowed,
    /// The model is not served here.
    UnknownModel,
    /// The model has no price for this endpoint.
    MissingPrice,
    /// The input alone leaves no room for an answer within `C_max`.
    PromptTooLarge,
    /// The JSON-RPC method has no price here.
    MethodNotPriced,
    /// One JSON-RPC call costs more than `C_max`.
    PriceOverCMax,
    /// A JSON-RPC batch holds more calls than the gateway takes.
    BatchTooLarge,
    /// A JSON-RPC batch costs more than `C_max`.
    BatchOverCMax,
    /// A close sent to the relay does not pay the relay the fee and the recipient its
    /// discovery document publishes: prove it again with those.
    RelayFeeMismatch,
    /// The pool refuses the relayed close (its named error is in the message); nothing
    /// was sent.
    CloseRefused,
}

/// What a refusal means for the ticket that paid for the request, and so what the client
/// does next. A refusal that comes with a receipt is always settled by that receipt,
/// whatever its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketFate {
    /// Answered after the ticket was recorded as spent: a receipt comes with the answer
    /// (or, if it was lost, from `GET /zkcredit/receipts/{N}`).
    Spent,
    /// Refused before admission by a condition that passes (overload, a store or the
    /// chain briefly unavailable): the identical credential is sent again after a pause.
    /// The gateway sees the same share again, never a second one.
    Retry,
    /// Refused before admission because the credential's root is not recent: the client
    /// resyncs and proves the same ticket for the same bytes again.
    Reprove,
    /// Refused before admission for good. The gateway stored nothing, but it has seen
    /// the ticket's share for these bytes, so the ticket's index can never pay for other
    /// bytes. The client checks requests before proving so that this is rare.
    Refused,
    /// The ticket was already spent (for other bytes, or by a close): the note is not
    /// what the client thinks it is.
    Conflict,
}

impl Code {
    /// Every code, for documentation and the uniqueness test.
    pub const ALL: [Code; 31] = [
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
        Code::MethodNotAllowed,
        Code::UnknownModel,
        Code::MissingPrice,
        Code::PromptTooLarge,
        Code::MethodNotPriced,
        Code::PriceOverCMax,
        Code::BatchTooLarge,
        Code::BatchOverCMax,
        Code::RelayFeeMismatch,
        Code::CloseRefused,
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
            Code::MethodNotAllowed => "method_not_allowed",
            Code::UnknownModel => "unknown_model",
            Code::MissingPrice => "missing_price",
            Code::PromptTooLarge => "prompt_too_large",
            Code::MethodNotPriced => "method_not_priced",
            Code::PriceOverCMax => "price_over_c_max",
            Code::BatchTooLarge => "batch_too_large",
            Code::BatchOverCMax => "batch_over_c_max",
            Code::RelayFeeMismatch => "relay_fee_mismatch",
            Code::CloseRefused => "close_refused",
        }
    }

    /// The code with this wire name.
    pub fn parse(wire: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == wire)
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Code::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
            Code::MalformedCredential
            | Code::UnknownServerKey
            | Code::MalformedNullifier
            | Code::InvalidBody
            | Code::MissingPrice
            | Code::PromptTooLarge
            | Code::MethodNotPriced
            | Code::PriceOverCMax
            | Code::BatchTooLarge
            | Code::BatchOverCMax
            | Code::RelayFeeMismatch => StatusCode::BAD_REQUEST,
            Code::CloseRefused => StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidProof => StatusCode::UNAUTHORIZED,
            Code::PolicyViolation => StatusCode::FORBIDDEN,
            Code::UnknownRoute | Code::ReceiptNotFound | Code::UnknownModel => {
                StatusCode::NOT_FOUND
            }
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
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
    pub fn kind(self) -> &'static str {
        match self.status().as_u16() {
            402 => "payment_required",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            409 => "conflict_error",
            400 | 405 | 413 | 422 => "invalid_request_error",
            _ => "server_error",
        }
    }

    /// What this refusal means for the ticket when it comes without a receipt.
    pub fn fate(self) -> TicketFate {
        match self {
            Code::Replay
            | Code::PolicyViolation
            | Code::PolicyUnavailable
            | Code::UpstreamFailed
            | Code::UpstreamTimeout
            | Code::Internal => TicketFate::Spent,
            Code::StoreUnavailable | Code::Unavailable | Code::ServerKeyNotAccepted => {
                TicketFate::Retry
            }
            Code::StaleRoot => TicketFate::Reprove,
            Code::DoubleSpend | Code::TicketSpent => TicketFate::Conflict,
            Code::PaymentRequired
            | Code::MalformedCredential
            | Code::UnknownServerKey
            | Code::InvalidProof
            | Code::BodyTooLarge
            | Code::UnknownRoute
            | Code::ReceiptNotFound
            | Code::MalformedNullifier
            | Code::InvalidBody
            | Code::MethodNotAllowed
            | Code::UnknownModel
            | Code::MissingPrice
            | Code::PromptTooLarge
            | Code::MethodNotPriced
            | Code::PriceOverCMax
            | Code::BatchTooLarge
            | Code::BatchOverCMax
            | Code::RelayFeeMismatch
            | Code::CloseRefused => TicketFate::Refused,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: a code and what to do next. The status is the code's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// The stable code.
    pub code: Code,
    /// What went wrong and what to do next.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `invalid_body`: the body is not what the route takes.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidBody, message)
    }

    /// The error body in the OpenAI shape, `{"error": {"message", "type", "code"}}`, so
    /// that OpenAI SDKs surface it unchanged.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.code.kind(),
                "code": self.code.as_str(),
                "param": null,
            }
        })
    }
}

/// An OpenAI-shaped error body's `code` and `message` (`None` when `body` is not one).
/// The code is kept as text: an answer from something in front of the gateway may carry
/// codes this table does not know.
pub fn parse_error_body(body: &[u8]) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Outer {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        message: String,
        code: Option<serde_json::Value>,
    }
    let outer: Outer = serde_json::from_slice(body).ok()?;
    let code = match outer.error.code? {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    Some((code, outer.error.message))
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
             store_unavailable,unavailable,server_key_not_accepted,internal_error,\
             method_not_allowed,unknown_model,missing_price,prompt_too_large,\
             method_not_priced,price_over_c_max,batch_too_large,batch_over_c_max,\
             relay_fee_mismatch,close_refused"
        );
        for code in Code::ALL {
            assert_eq!(Code::parse(code.as_str()), Some(code));
        }
    }

    #[test]
    fn only_passing_conditions_are_retried() {
        let retried: Vec<Code> = Code::ALL
            .into_iter()
            .filter(|c| c.fate() == TicketFate::Retry)
            .collect();
        assert_eq!(
            retried,
            [
                Code::StoreUnavailable,
                Code::Unavailable,
                Code::ServerKeyNotAccepted
            ]
        );
        // Every 503 is a passing condition or comes after admission with a receipt.
        for code in Code::ALL {
            if code.status() == StatusCode::SERVICE_UNAVAILABLE {
                assert!(matches!(code.fate(), TicketFate::Retry | TicketFate::Spent));
            }
        }
    }

    #[test]
    fn the_body_has_the_openai_shape_and_parses_back() {
        let e = Refusal::new(Code::StaleRoot, "resync");
        let body = e.body();
        assert_eq!(body["error"]["code"], "stale_root");
        assert_eq!(body["error"]["type"], "conflict_error");
        assert_eq!(
            parse_error_body(body.to_string().as_bytes()),
            Some(("stale_root".to_owned(), "resync".to_owned()))
        );
        assert_eq!(parse_error_body(b"not json"), None);
    }
}
