//! One paid request from start to end, shared by the local proxy and `zkcredits call`:
//! prove ([`Spender::begin`]), send, keep the receipt ([`Spender::finish`]), and decide
//! what happens to the ticket when something goes wrong.
//!
//! The rule behind every branch: once a credential has left this process, its share
//! binds the ticket index to this request's bytes, so the index is never used for
//! other bytes. Hence:
//!
//! | what happened | ticket |
//! |---|---|
//! | answer with a receipt (200, 403 policy, 502 upstream, 409 replay) | finished |
//! | `409 stale_root` | resync, same ticket proven again, sent again (once) |
//! | `503 store_unavailable` | same credential sent again (twice, backing off) |
//! | other refusal without receipt (400, 401, 413...) | [`Spender::refused`]: the note needs a close |
//! | the connection could not be made | [`Spender::release_unsent`]: index free again |
//! | sent, answer lost | receipt fetched by `N`; else kept pending for recovery |
//! | stream ends without receipt | the same |

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::header::{self, HeaderMap, HeaderName};
use reqwest::{Method, StatusCode};

use crate::error::ClientError;
use crate::gateway_client::{GatewayClient, GatewayError, GatewayResponse, error_code};
use crate::spender::{NoteSummary, PaidTicket, Spender};
use crate::sse::SseFilter;

/// A request to pay for: sent to the gateway byte for byte.
#[derive(Clone, Debug)]
pub struct PaidRequest {
    /// HTTP method.
    pub method: Method,
    /// Path and query on the gateway (the credential binds them).
    pub path_and_query: String,
    /// Headers to pass on (content type, accept).
    pub headers: HeaderMap,
    /// The body (the credential binds it).
    pub body: Bytes,
}

/// What became of the ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TicketOutcome {
    /// The receipt was checked and the note advanced.
    Settled(NoteSummary),
    /// Refused before admission after the credential left: the note needs a close.
    NeedsClose {
        /// The note.
        note: u64,
        /// The gateway's error code.
        code: String,
    },
    /// No valid receipt yet: the ticket stays journaled in flight; recovery (at the next
    /// start of the proxy or `zkcredits call`) fetches its receipt.
    Pending {
        /// The note.
        note: u64,
        /// Why.
        reason: String,
    },
}

/// The body of an answer.
pub enum PaidBody {
    /// A complete body.
    Complete(Bytes),
    /// A server-sent-event stream with the receipt event taken out. The ticket is
    /// settled before the stream ends.
    Stream(BoxStream<'static, Bytes>),
}

impl std::fmt::Debug for PaidBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Complete(b) => write!(f, "Complete({} bytes)", b.len()),
            Self::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// The ticket's outcome, now or once the stream has ended.
#[derive(Debug)]
pub enum Outcome {
    /// Known now.
    Ready(TicketOutcome),
    /// Known when the stream has ended (even if the application stops reading: the
    /// relay keeps draining the gateway's stream to get the receipt).
    Later(tokio::sync::oneshot::Receiver<TicketOutcome>),
}

impl Outcome {
    /// Waits for the outcome.
    pub async fn resolve(self) -> TicketOutcome {
        match self {
            Self::Ready(o) => o,
            Self::Later(rx) => rx.await.unwrap_or_else(|_| TicketOutcome::Pending {
                note: u64::MAX,
                reason: "the relay task ended early".into(),
            }),
        }
    }
}

/// The gateway's answer as the application gets it: no credential, no receipt.
#[derive(Debug)]
pub struct PaidReply {
    /// The gateway's status.
    pub status: StatusCode,
    /// The gateway's headers, without the receipt and hop-by-hop headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: PaidBody,
    /// What became of the ticket.
    pub outcome: Outcome,
}

/// Why a paid request produced no answer for the application.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayError {
    /// Refused locally before anything was proven or sent.
    #[error("{0}")]
    Local(#[from] ClientError),
    /// The request is not one the gateway can take (checked before spending a ticket).
    #[error("{message}")]
    Invalid {
        /// `invalid_body` or `unknown_model`.
        code: &'static str,
        /// What to fix.
        message: String,
    },
    /// The gateway could not be reached; nothing was sent and the note is free again.
    #[error("{0}; nothing was sent or spent")]
    Unreachable(GatewayError),
    /// The request was sent but its answer is lost.
    #[error(
        "the gateway's answer was lost ({detail}); {}",
        match outcome {
            TicketOutcome::Settled(_) => "the receipt was fetched and the note charged; send the request again",
            _ => "the ticket is kept and its receipt fetched at the next start; send the request again",
        }
    )]
    AnswerLost {
        /// What failed.
        detail: String,
        /// What became of the ticket.
        outcome: TicketOutcome,
    },
}

impl PayError {
    /// The stable code.
    pub fn code(&self) -> &str {
        match self {
            Self::Local(e) => e.code(),
            Self::Invalid { code, .. } => code,
            Self::Unreachable(_) => "gateway_unreachable",
            Self::AnswerLost { .. } => "gateway_answer_lost",
        }
    }

    /// The HTTP status the local proxy answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Local(e) => e.http_status(),
            Self::Invalid { .. } => 400,
            Self::Unreachable(_) => 502,
            Self::AnswerLost { .. } => 504,
        }
    }
}

/// Retry and recovery timing.
#[derive(Clone, Debug)]
pub struct PayerConfig {
    /// Waits before fetching a receipt by `N` after a lost answer (the gateway stores
    /// the receipt before answering, but a stream's receipt only at its end).
    pub receipt_fetch_delays: Vec<Duration>,
    /// Waits before sending again after `503 store_unavailable`.
    pub store_retry_delays: Vec<Duration>,
    /// Before a note's first request in this process, ask the gateway whether its next
    /// ticket is already spent ([`Spender::locate`]). Turned off only to demonstrate a
    /// double spend from a restored journal (`zkcredits call --i-want-to-double-spend`).
    pub check_note_positions: bool,
}

impl Default for PayerConfig {
    fn default() -> Self {
        Self {
            receipt_fetch_delays: [250, 1000, 3000].map(Duration::from_millis).to_vec(),
            store_retry_delays: [500, 2000].map(Duration::from_millis).to_vec(),
            check_note_positions: true,
        }
    }
}

/// The spender and the gateway it pays.
#[derive(Clone, Debug)]
pub struct Payer {
    spender: Arc<Spender>,
    gateway: GatewayClient,
    config: PayerConfig,
}

/// Headers that describe one hop, or that this client sets itself.
fn strip(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
        header::AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static(crate::gateway_client::RECEIPT_HEADER),
    ] {
        headers.remove(name);
    }
}

/// Codes after which the same credential may be sent again.
const STALE_ROOT: &str = "stale_root";
const STORE_UNAVAILABLE: &str = "store_unavailable";

impl Payer {
    /// A payer for `spender` through `gateway`.
    pub fn new(spender: Arc<Spender>, gateway: GatewayClient, config: PayerConfig) -> Self {
        Self {
            spender,
            gateway,
            config,
        }
    }

    /// The spender.
    pub fn spender(&self) -> &Arc<Spender> {
        &self.spender
    }

    /// The gateway client.
    pub fn gateway(&self) -> &GatewayClient {
        &self.gateway
    }

    /// Checks the position of every free note not yet checked in this process
    /// ([`Spender::locate`], one receipt look-up per note; nothing once all are).
    pub async fn locate(&self) -> Result<crate::spender::LocateReport, ClientError> {
        let gateway = self.gateway.clone();
        self.spender
            .locate(move |n| {
                let gateway = gateway.clone();
                async move {
                    gateway
                        .receipt(&n)
                        .await
                        .map_err(|e| ClientError::Internal(e.to_string()))
                }
            })
            .await
    }

    /// Pays for `request` and returns the gateway's answer.
    pub async fn send(&self, request: PaidRequest) -> Result<PaidReply, PayError> {
        if self.config.check_note_positions {
            let located = self.locate().await?;
            if located.unreachable > 0 {
                // A note whose next ticket may already be spent is not used blind.
                return Err(PayError::Unreachable(GatewayError::Connect {
                    url: self.gateway.base_url().to_owned(),
                    detail: format!(
                        "could not ask whether the next ticket of {} note(s) is already spent",
                        located.unreachable
                    ),
                }));
            }
        }
        let mut ticket = self
            .spender
            .begin(
                request.method.as_str(),
                &request.path_and_query,
                &request.body,
            )
            .await?;
        let mut sent = false;
        let mut stale_retries = 1;
        let mut store_delays = self.config.store_retry_delays.iter();
        loop {
            let answer = self
                .gateway
                .send_paid(
                    request.method.clone(),
                    &request.path_and_query,
                    request.headers.clone(),
                    request.body.clone(),
                    &ticket.authorization,
                )
                .await;
            let response = match answer {
                Ok(r) => r,
                Err(GatewayError::Connect { url, detail }) if !sent => {
                    self.spender.release_unsent(ticket).await?;
                    return Err(PayError::Unreachable(GatewayError::Connect { url, detail }));
                }
                Err(e) => {
                    let outcome = self.after_loss(ticket, &e.to_string()).await;
                    return Err(PayError::AnswerLost {
                        detail: e.to_string(),
                        outcome,
                    });
                }
            };
            sent = true;
            if response.receipt().is_some()
                || (response.status.is_success() && response.is_event_stream())
            {
                return self.settle(ticket, response).await;
            }
            let status = response.status;
            let mut headers = response.headers.clone();
            let body = match response.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    let outcome = self.after_loss(ticket, &e.to_string()).await;
                    return Err(PayError::AnswerLost {
                        detail: e.to_string(),
                        outcome,
                    });
                }
            };
            let code = error_code(&body).map(|(c, _)| c);
            match code.as_deref() {
                Some(STALE_ROOT) if stale_retries > 0 => {
                    stale_retries -= 1;
                    tracing::info!(
                        note = ticket.note,
                        "stale root: resyncing and proving the same ticket again"
                    );
                    self.spender.resync().await?;
                    ticket = self.spender.reprove(ticket).await?;
                    continue;
                }
                Some(STORE_UNAVAILABLE) => {
                    if let Some(delay) = store_delays.next() {
                        tokio::time::sleep(*delay).await;
                        continue;
                    }
                }
                _ => {}
            }
            strip(&mut headers);
            let outcome = self.without_receipt(ticket, status, code).await;
            return Ok(PaidReply {
                status,
                headers,
                body: PaidBody::Complete(body),
                outcome: Outcome::Ready(outcome),
            });
        }
    }

    /// An answer without a receipt: a refusal before admission, or something a
    /// recovery must sort out.
    async fn without_receipt(
        &self,
        ticket: PaidTicket,
        status: StatusCode,
        code: Option<String>,
    ) -> TicketOutcome {
        let note = ticket.note;
        // Refusals that the gateway answers before storing the nullifier (PROTOCOL §4
        // steps 1-2 and the adapter's checks): nothing was spent, but the share is out.
        let before_admission = matches!(status.as_u16(), 400 | 401 | 402 | 404 | 405 | 413)
            || matches!(code.as_deref(), Some(STALE_ROOT | STORE_UNAVAILABLE));
        match code {
            Some(code) if before_admission => match self.spender.refused(ticket, &code).await {
                Ok(()) => TicketOutcome::NeedsClose { note, code },
                Err(e) => TicketOutcome::Pending {
                    note,
                    reason: e.to_string(),
                },
            },
            other => {
                // A replay without receipt, a double spend, or an answer from something
                // in front of the gateway: the gateway may hold the ticket.
                let reason = format!(
                    "answer {status} without receipt ({})",
                    other.as_deref().unwrap_or("no error code")
                );
                self.after_loss(ticket, &reason).await
            }
        }
    }

    /// The request may have reached the gateway and no receipt came with an answer:
    /// fetch it by `N` a few times, else keep the ticket for recovery.
    async fn after_loss(&self, ticket: PaidTicket, reason: &str) -> TicketOutcome {
        let note = ticket.note;
        for delay in &self.config.receipt_fetch_delays {
            tokio::time::sleep(*delay).await;
            match self.gateway.receipt(&ticket.nullifier_hex).await {
                Ok(Some(receipt)) => return self.finish(ticket, &receipt).await,
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "receipt fetch failed"),
            }
        }
        tracing::warn!(note, reason, "no receipt; the ticket is kept for recovery");
        if let Err(e) = self.spender.abandon(ticket, reason).await {
            tracing::warn!(note, error = %e, "could not mark the ticket abandoned");
        }
        TicketOutcome::Pending {
            note,
            reason: reason.to_owned(),
        }
    }

    async fn settle(
        &self,
        ticket: PaidTicket,
        response: GatewayResponse,
    ) -> Result<PaidReply, PayError> {
        let status = response.status;
        let mut headers = response.headers.clone();
        strip(&mut headers);
        if let Some(receipt) = response.receipt() {
            let body = match response.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    // The receipt came with the headers: the note is charged anyway.
                    let outcome = self.finish(ticket, &receipt).await;
                    return Err(PayError::AnswerLost {
                        detail: e.to_string(),
                        outcome,
                    });
                }
            };
            let outcome = self.finish(ticket, &receipt).await;
            return Ok(PaidReply {
                status,
                headers,
                body: PaidBody::Complete(body),
                outcome: Outcome::Ready(outcome),
            });
        }
        // A stream: relay it through the filter in a task of its own, which keeps
        // reading the gateway even if the application goes away, and settles the ticket
        // before the application's stream ends.
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let payer = self.clone();
        let mut upstream = response.stream().boxed();
        tokio::spawn(async move {
            let mut filter = SseFilter::new();
            let mut app = Some(tx);
            let mut broken = None;
            while let Some(item) = upstream.next().await {
                match item {
                    Ok(chunk) => {
                        let out = filter.push(&chunk);
                        if !out.is_empty()
                            && let Some(tx) = &app
                            && tx.send(out).await.is_err()
                        {
                            tracing::debug!(
                                "the application stopped reading; draining for the receipt"
                            );
                            app = None;
                        }
                    }
                    Err(e) => {
                        broken = Some(e.to_string());
                        break;
                    }
                }
            }
            let (rest, receipt) = filter.finish();
            if !rest.is_empty()
                && let Some(tx) = &app
            {
                let _ = tx.send(rest).await;
            }
            let outcome = match receipt {
                Some(r) => payer.finish(ticket, &r).await,
                None => {
                    let reason =
                        broken.unwrap_or_else(|| "the stream ended without a receipt".into());
                    payer.after_loss(ticket, &reason).await
                }
            };
            let _ = done_tx.send(outcome);
            drop(app);
        });
        let body = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        })
        .boxed();
        Ok(PaidReply {
            status,
            headers,
            body: PaidBody::Stream(body),
            outcome: Outcome::Later(done_rx),
        })
    }

    async fn finish(&self, ticket: PaidTicket, receipt: &str) -> TicketOutcome {
        let note = ticket.note;
        match self.spender.finish(ticket, receipt).await {
            Ok(summary) => TicketOutcome::Settled(summary),
            Err(e @ ClientError::ReceiptOutsideLimits { .. }) => TicketOutcome::NeedsClose {
                note,
                code: e.code().to_owned(),
            },
            Err(e) => {
                tracing::warn!(note, error = %e, "the receipt was not accepted; the ticket stays for recovery");
                TicketOutcome::Pending {
                    note,
                    reason: e.to_string(),
                }
            }
        }
    }

    /// Recovery at start: for each ticket a crash left in flight, fetch its receipt;
    /// a ticket the gateway has no receipt for is retried after each of `waits`
    /// (the gateway may still be working on it) before its note is marked
    /// `needs_close(m = 1)`.
    pub async fn recover(
        &self,
        waits: &[Duration],
    ) -> Result<crate::spender::RecoveryReport, ClientError> {
        let gateway = self.gateway.clone();
        let waits = waits.to_vec();
        self.spender
            .recover(move |n| {
                let gateway = gateway.clone();
                let waits = waits.clone();
                async move {
                    let mut attempt = 0;
                    loop {
                        match gateway.receipt(&n).await {
                            Ok(Some(r)) => return Ok(Some(r)),
                            Ok(None) => {}
                            Err(e) => return Err(ClientError::Internal(e.to_string())),
                        }
                        match waits.get(attempt) {
                            Some(w) => tokio::time::sleep(*w).await,
                            None => return Ok(None),
                        }
                        attempt += 1;
                    }
                }
            })
            .await
    }
}
