//! Upstream adapters: what the gateway forwards an admitted request to, and how much
//! that request really cost (section 7 of the protocol).
//!
//! The admission pipeline (crate::service) owns credentials, proofs, the nullifier
//! store and receipts; an adapter owns one kind of upstream (OpenAI-compatible LLM
//! server, Ethereum JSON-RPC node) and its price table. The split keeps metering free
//! of cryptography and admission free of upstream protocols.
//!
//! The order per request is:
//! 1. [`Upstream::prepare`] before the proof is verified and before the ticket is spent:
//!    a request the adapter would refuse anyway (unknown model, no price, a JSON-RPC
//!    batch above `C_max`, unparsable body) is answered with its error and no nullifier
//!    is stored. The checks are `zkcredits_api::check`, which the client runs on the
//!    published prices before it proves, so such a request never leaves the client;
//! 2. admission (verify, nullifier store), policy;
//! 3. [`Upstream::forward`], whose reply carries the metered cost `c <= C_max`.

pub mod flat;
pub mod jsonrpc;
pub mod openai;
pub(crate) mod relay;
pub mod setting_error;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use http::{HeaderMap, Method, StatusCode};
use zkcredits_protocol::credits::Credits;

/// A request as the gateway received it, with the `Authorization` header and the
/// hop-by-hop headers removed.
#[derive(Clone, Debug)]
pub struct PaidRequest {
    /// HTTP method.
    pub method: Method,
    /// Path and query exactly as received (the `x` binding covers them).
    pub path_and_query: String,
    /// Remaining request headers.
    pub headers: HeaderMap,
    /// The body exactly as received.
    pub body: Bytes,
    /// The most this request may cost, in credit units (the deployment's `C_max`).
    pub c_max: Credits,
}

impl PaidRequest {
    /// The request as the shared pre-admission checks (`zkcredits_api::check`) see it.
    pub fn view(&self) -> zkcredits_api::check::RequestView<'_> {
        zkcredits_api::check::RequestView {
            method: &self.method,
            path_and_query: &self.path_and_query,
            body: &self.body,
            c_max: self.c_max.get(),
        }
    }
}

/// A stream of SSE bytes relayed to the client as they arrive.
pub type EventStream = Pin<Box<dyn Stream<Item = Bytes> + Send + 'static>>;

/// What an adapter answers with.
pub enum UpstreamReply {
    /// A complete response whose cost is known.
    Complete {
        /// Upstream status (an upstream 4xx/5xx is passed on; see [`UpstreamError`]
        /// for failures that refund everything).
        status: StatusCode,
        /// Response headers to pass on (content-type and the like).
        headers: HeaderMap,
        /// Response body.
        body: Bytes,
        /// Metered cost in credit units, `<= c_max`.
        cost: Credits,
    },
    /// A server-sent-event stream (`stream: true` on an OpenAI endpoint). The gateway
    /// relays `events` to the client; when `events` ends it awaits `cost`, signs the
    /// receipt and appends `event: zkcredit-receipt` and then `data: [DONE]`. The
    /// adapter therefore withholds the upstream's own `data: [DONE]`.
    Stream {
        /// Upstream status.
        status: StatusCode,
        /// Response headers to pass on.
        headers: HeaderMap,
        /// The upstream's events, re-framed, without `data: [DONE]`.
        events: EventStream,
        /// Sent once `events` has ended (normally or cut mid-way): the metered cost,
        /// `<= c_max`. If the sender is dropped, the gateway charges 0 and refunds
        /// `c_max`, as for an upstream failure.
        cost: tokio::sync::oneshot::Receiver<Credits>,
    },
}

pub use zkcredits_api::Refusal;

/// The upstream failed after the ticket was spent: the gateway answers 502
/// `upstream_failed` (or 504 `upstream_timeout`) with a receipt refunding all of `C_max`.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Could not connect, or the connection broke before a status line.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// No answer within the configured timeout.
    #[error("upstream timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The upstream answered with a server error (5xx): nothing useful was delivered.
    #[error("upstream answered {0}")]
    ServerError(StatusCode),
}

/// One kind of upstream with its price table.
#[async_trait]
pub trait Upstream: Send + Sync + 'static {
    /// Checks that the request can be served and priced within `c_max`. Cheap and
    /// side-effect free: it runs before the proof is verified.
    fn prepare(&self, request: &PaidRequest) -> Result<(), Refusal>;

    /// Forwards a prepared, admitted request (rewriting it as its protocol needs, e.g.
    /// capping `max_tokens`) and meters its cost.
    async fn forward(&self, request: PaidRequest) -> Result<UpstreamReply, UpstreamError>;

    /// Prices published in the discovery document (`GET /.well-known/zkcredits`): the
    /// very table [`Upstream::prepare`] checks against, so that a client running the
    /// same checks before it proves agrees with the gateway.
    fn prices(&self) -> zkcredits_api::prices::RoutePrices;
}
