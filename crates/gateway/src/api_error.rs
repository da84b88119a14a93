//! Every answer the gateway refuses with: an HTTP status, a stable machine-readable code
//! and a message that says what to do next, in the OpenAI error shape
//! `{"error": {"message", "type", "code"}}` so that OpenAI SDKs surface it unchanged.
//!
//! [`Code`] (in `zkcredits_api`, shared with the client) is the one table from a
//! refusal to its status, its wire code and what it means for the ticket.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use zkcredits_api::{Code, RECEIPT_HEADER, Refusal};

/// A refusal: a [`Code`] (its status is the code's), a message, and the receipt when
/// the ticket was spent (the client must get it whatever the outcome).
#[derive(Clone, Debug)]
pub struct ApiError {
    /// Stable code.
    pub code: Code,
    /// What went wrong and what to do.
    pub message: String,
    /// Base64url receipt to send in `ZkCredit-Receipt`, if one was issued.
    pub receipt: Option<String>,
    /// Extra headers (`WWW-Authenticate` on a 402).
    pub www_authenticate: Option<String>,
    /// The refusal came before the request body was read to its end, so the server
    /// closes the connection after answering (hyper cannot reuse it). The answer then says
    /// `Connection: close` (RFC 9112 §9.6); without it a client pools the connection and
    /// its next request races the close and fails with no answer at all.
    pub close_connection: bool,
}

impl ApiError {
    /// A refusal with `code`'s status.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            receipt: None,
            www_authenticate: None,
            close_connection: false,
        }
    }

    /// Marks a refusal given before the request body was read: see
    /// [`ApiError::close_connection`].
    pub fn before_body_read(mut self) -> Self {
        self.close_connection = true;
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// Attaches the receipt issued for the spent ticket.
    pub fn with_receipt(mut self, receipt: String) -> Self {
        self.receipt = Some(receipt);
        self
    }

    /// The JSON body, in the OpenAI error shape.
    pub fn body(&self) -> serde_json::Value {
        Refusal::new(self.code, self.message.clone()).body()
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        Self::new(refusal.code, refusal.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.status(), axum::Json(body)).into_response();
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
        if self.close_connection {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_the_openai_shape() {
        let e = ApiError::new(Code::StaleRoot, "resync");
        let body = e.body();
        assert_eq!(body["error"]["code"], "stale_root");
        assert_eq!(body["error"]["type"], "conflict_error");
        assert_eq!(body["error"]["message"], "resync");
        assert_eq!(e.status(), StatusCode::CONFLICT);
    }
}
