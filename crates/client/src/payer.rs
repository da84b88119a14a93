//! One paid request from start to end, shared by the local proxy and `zkcredits call`:
//! check it against the gateway's published rules, prove ([`Spender::begin`]), send,
//! keep the receipt ([`Spender::finish`]), and decide what happens to the ticket when
//! something goes wrong.
//!
//! The rule behind every branch: once a credential has left this process, its share
//! binds the ticket index to this request's bytes, so the index is never used for
//! other bytes. It may be sent again for the same bytes as often as needed: the gateway
//! then sees the same share, and at worst answers a replay with the stored receipt.
//! Every decision comes from the typed code of the refusal ([`zkcredits_api::Code`] and
//! its [`TicketFate`]), never from an HTTP status.
//!
//! | what happened | ticket |
//! |---|---|
//! | the request breaks the published rules | refused here, nothing proven or sent |
//! | answer with a receipt (200, 403 policy, 502 upstream, 409 replay) | finished |
//! | a transient refusal (`unavailable`, `store_unavailable`, ...) | same credential again, backing off; then in the background |
//! | `409 stale_root` | resync, same ticket proven again, sent again (once) |
//! | a final refusal without receipt (rare: the rules were checked) | [`Spender::refused`]: the note needs a close |
//! | the connection could not be made | [`Spender::release_unsent`]: index free again |
//! | sent, answer lost (or a stream cut) | same credential again; the receipt is collected in the background |
//!
//! Tickets whose receipt is owed stay busy (their note makes no other request) while a
//! background task collects it ([`Payer::owe`]), so a note comes back without a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::header::{self, HeaderMap, HeaderName};
use reqwest::{Method, StatusCode};
use zkcredits_api::{Code, Refusal, TicketFate};
use zkcredits_protocol::rln::Nullifier;

use crate::error::ClientError;
use crate::gateway_client::{
    GatewayClient, GatewayError, GatewayResponse, RequestRules, error_code,
};
use crate::spender::{NoteSummary, PaidTicket, Spender};
use crate::sse::SseFilter;

/// A request to pay for: sent to the gateway byte for byte.
#[derive(Clone, Debug)]
pub struct PaidRequest {
    /// HTTP method.
    pub method: Method,
    /// Path and query on the gateway (the credential binds them).
    pub path_and_query: String,
    /// Headers to pass on (content type).
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
    /// No valid receipt yet: the ticket stays in flight (its note busy) while a
    /// background task collects the receipt; a restart's recovery does the same.
    Pending {
        /// The note.
        note: u64,
        /// Why.
        reason: String,
    },
}

/// Why a relayed stream ended without its receipt: the application's stream ends with
/// this error (an aborted body), after an SSE error event it can read.
#[derive(Debug, thiserror::Error)]
#[error("the gateway's stream was cut before its end: {0}")]
pub struct StreamCut(pub String);

/// The body of an answer.
pub enum PaidBody {
    /// A complete body.
    Complete(Bytes),
    /// A server-sent-event stream with the receipt event taken out. The ticket is
    /// settled before the stream's last event (`[DONE]`) is passed on; a stream cut
    /// short ends with an SSE error event and then an error.
    Stream(BoxStream<'static, Result<Bytes, StreamCut>>),
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
    #[error(transparent)]
    Local(#[from] ClientError),
    /// The request breaks the gateway's published rules: refused here with the code and
    /// message the gateway would answer, before a ticket was spent.
    #[error("{0}; refused by the zkcredits client before paying: nothing was spent")]
    Invalid(Refusal),
    /// The gateway could not be reached; nothing was sent and the note is free again.
    #[error("{0}; nothing was sent or spent")]
    Unreachable(GatewayError),
    /// The request was sent but its answer is lost.
    #[error(
        "the gateway's answer was lost ({cause}); {}",
        match outcome {
            TicketOutcome::Settled(_) => "the receipt was fetched and the note charged; send the request again",
            _ => "the receipt is being collected in the background and the note is busy until then; send the request again",
        }
    )]
    AnswerLost {
        /// What failed (boxed: with the outcome beside it, the largest variant).
        #[source]
        cause: Box<GatewayError>,
        /// What became of the ticket.
        outcome: TicketOutcome,
    },
}

impl PayError {
    /// The stable code.
    pub fn code(&self) -> &str {
        match self {
            Self::Local(e) => e.code(),
            Self::Invalid(refusal) => refusal.code.as_str(),
            Self::Unreachable(e) => match e {
                GatewayError::Redirected { .. } | GatewayError::Config(_) => e.code(),
                _ => "gateway_unreachable",
            },
            Self::AnswerLost { .. } => "gateway_answer_lost",
        }
    }

    /// The HTTP status the local proxy answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Local(e) => e.http_status(),
            Self::Invalid(refusal) => refusal.code.status().as_u16(),
            Self::Unreachable(_) => 502,
            Self::AnswerLost { .. } => 504,
        }
    }
}

/// Retry and recovery timing.
#[derive(Clone, Debug)]
pub struct PayerConfig {
    /// Waits before sending the identical credential again, while the application
    /// waits: after a transient refusal (`unavailable`, `store_unavailable`,
    /// `server_key_not_accepted`) or a lost answer. Then the ticket is handed to the
    /// background.
    pub retry_delays: Vec<Duration>,
    /// The background's first wait before asking for an owed receipt; it doubles up to
    /// `owed_max_delay`.
    pub owed_first_delay: Duration,
    /// The background's longest wait between two attempts.
    pub owed_max_delay: Duration,
    /// How long the gateway must keep answering "no receipt" for a ticket that cannot be
    /// sent again before its note is marked `needs_close(m = 1)`. A gateway restarted
    /// after a crash refunds the tickets it never answered, so a receipt normally comes.
    pub lost_after: Duration,
    /// Before a note's first request in this process, ask the gateway whether its next
    /// ticket is already spent ([`Spender::locate`]). Turned off only to demonstrate a
    /// double spend from a restored journal (`zkcredits call --i-want-to-double-spend`).
    pub check_note_positions: bool,
}

impl Default for PayerConfig {
    fn default() -> Self {
        Self {
            retry_delays: [250, 500, 1000, 2000, 4000]
                .map(Duration::from_millis)
                .to_vec(),
            owed_first_delay: Duration::from_secs(1),
            owed_max_delay: Duration::from_secs(30),
            lost_after: Duration::from_secs(600),
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
    rules: Option<Arc<RequestRules>>,
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

/// The typed code of an answer without receipt, if it carries one this client knows.
fn code_of(body: &[u8]) -> (Option<Code>, String) {
    match error_code(body) {
        Some((wire, _)) => (Code::parse(&wire), wire),
        None => (None, "no error code".to_owned()),
    }
}

/// How long the error event of a cut stream is given to reach the application before
/// its body is aborted.
const CUT_FLUSH: Duration = Duration::from_millis(100);

/// The SSE event that tells an application its stream was cut (OpenAI SDKs raise on an
/// event whose data is an error object), in the proxy's own error shape.
fn cut_event(why: &str) -> Bytes {
    let body = serde_json::json!({"error": {
        "message": format!("the answer was cut before its end ({why}); the receipt is collected in the background"),
        "type": "server_error",
        "code": "stream_cut",
        "param": null,
    }});
    Bytes::from(format!("data: {body}\n\n"))
}

impl Payer {
    /// A payer for `spender` through `gateway`. Without [`Payer::with_rules`] requests
    /// are not checked before proving.
    pub fn new(spender: Arc<Spender>, gateway: GatewayClient, config: PayerConfig) -> Self {
        Self {
            spender,
            gateway,
            config,
            rules: None,
        }
    }

    /// Checks every request against `rules` (the gateway's discovery document) before
    /// a ticket is spent on it.
    #[must_use]
    pub fn with_rules(mut self, rules: RequestRules) -> Self {
        self.rules = Some(Arc::new(rules));
        self
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
                async move { gateway.receipt(n).await.map_err(ClientError::ReceiptFetch) }
            })
            .await
    }

    /// Refuses here what the gateway would refuse before admission.
    pub fn check(&self, request: &PaidRequest) -> Result<(), PayError> {
        match &self.rules {
            Some(rules) => rules
                .check(
                    &request.method,
                    &request.path_and_query,
                    &request.body,
                    self.spender.limits().c_max.get(),
                )
                .map_err(PayError::Invalid),
            None => Ok(()),
        }
    }

    /// Pays for `request` and returns the gateway's answer.
    pub async fn send(&self, request: PaidRequest) -> Result<PaidReply, PayError> {
        self.check(&request)?;
        if self.config.check_note_positions {
            let located = self.locate().await?;
            if located.unreachable > 0 {
                // A note whose next ticket may already be spent is not used blind.
                return Err(PayError::Unreachable(GatewayError::TicketsUnchecked {
                    url: self.gateway.base_url().to_owned(),
                    notes: located.unreachable,
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
        let mut lost: Option<GatewayError> = None;
        let mut reproved = false;
        let mut delays = self.config.retry_delays.iter();
        loop {
            let response = match self.send_ticket(&ticket, &request).await {
                Ok(r) => r,
                Err(e @ GatewayError::Connect { .. }) if !sent => {
                    self.spender.release_unsent(ticket).await?;
                    return Err(PayError::Unreachable(e));
                }
                Err(e) => {
                    // The request may have reached the gateway: only these bytes may go
                    // out under this ticket again, and sending them again is safe.
                    sent = true;
                    if let Some(delay) = delays.next() {
                        tracing::info!(note = ticket.note, error = %e, "answer lost; sending the same credential again");
                        lost = Some(e);
                        tokio::time::sleep(*delay).await;
                        continue;
                    }
                    let outcome = self.owe(ticket, Some(request), &e.to_string());
                    return Err(PayError::AnswerLost {
                        cause: Box::new(e),
                        outcome,
                    });
                }
            };
            sent = true;
            if response.receipt().is_some()
                || (response.status.is_success() && response.is_event_stream())
            {
                if let Some(cause) = lost
                    && response.status == StatusCode::CONFLICT
                {
                    // The first copy was admitted and answered; its answer is what was
                    // lost. The replay brings its receipt.
                    let outcome = match response.receipt() {
                        Some(receipt) => self.finish(ticket, &receipt).await,
                        None => self.owe(ticket, None, &cause.to_string()),
                    };
                    return Err(PayError::AnswerLost {
                        cause: Box::new(cause),
                        outcome,
                    });
                }
                return self.settle(ticket, response).await;
            }
            let status = response.status;
            if status.is_redirection() {
                // Never followed: the credential went to the gateway's address only, and
                // the gateway itself never redirects, so nothing was admitted: the same
                // bytes are sent again in the background until a gateway answers.
                let e = self.gateway.redirected(&response.headers);
                let outcome = self.owe(ticket, Some(request), &e.to_string());
                return Err(PayError::AnswerLost {
                    cause: Box::new(e),
                    outcome,
                });
            }
            let mut headers = response.headers.clone();
            let body = match response.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    if let Some(delay) = delays.next() {
                        lost = Some(e);
                        tokio::time::sleep(*delay).await;
                        continue;
                    }
                    let outcome = self.owe(ticket, Some(request), &e.to_string());
                    return Err(PayError::AnswerLost {
                        cause: Box::new(e),
                        outcome,
                    });
                }
            };
            let (code, wire) = code_of(&body);
            let fate = code.map(Code::fate);
            match fate {
                Some(TicketFate::Retry) => {
                    if let Some(delay) = delays.next() {
                        tracing::info!(note = ticket.note, code = %wire, "transient refusal; sending the same credential again");
                        tokio::time::sleep(*delay).await;
                        continue;
                    }
                }
                Some(TicketFate::Reprove) if !reproved => {
                    reproved = true;
                    tracing::info!(
                        note = ticket.note,
                        "stale root: resyncing and proving the same ticket again"
                    );
                    self.spender.resync().await?;
                    ticket = self.spender.reprove(ticket).await?;
                    continue;
                }
                _ => {}
            }
            strip(&mut headers);
            let reason = format!("answer {status} without receipt ({wire})");
            let outcome = match fate {
                Some(TicketFate::Refused | TicketFate::Reprove) => {
                    self.refused(ticket, code.map_or(wire, |c| c.as_str().to_owned()))
                        .await
                }
                // Still transient after every retry: keep sending in the background.
                Some(TicketFate::Retry) => self.owe(ticket, Some(request), &reason),
                // The gateway may hold the ticket (a replay still being answered, a
                // double spend, something in front of the gateway): collect its
                // receipt; the same bytes may be sent again where the gateway never
                // said it had them.
                Some(TicketFate::Spent | TicketFate::Conflict) => self.owe(ticket, None, &reason),
                None => self.owe(ticket, Some(request), &reason),
            };
            return Ok(PaidReply {
                status,
                headers,
                body: PaidBody::Complete(body),
                outcome: Outcome::Ready(outcome),
            });
        }
    }

    /// A final refusal before admission: the share is out, the note needs a close.
    async fn refused(&self, ticket: PaidTicket, code: String) -> TicketOutcome {
        let note = ticket.note;
        match self.spender.refused(ticket, &code).await {
            Ok(()) => TicketOutcome::NeedsClose { note, code },
            Err(e) => TicketOutcome::Pending {
                note,
                reason: e.to_string(),
            },
        }
    }

    /// Hands a ticket whose receipt is owed to a background task, which asks the gateway
    /// for it (and, with `resend`, sends the identical request again) with growing
    /// pauses until it comes. The ticket's note stays busy meanwhile.
    pub fn owe(
        &self,
        ticket: PaidTicket,
        resend: Option<PaidRequest>,
        reason: &str,
    ) -> TicketOutcome {
        let note = ticket.note;
        tracing::warn!(
            note,
            reason,
            "no receipt yet; collecting it in the background"
        );
        let payer = self.clone();
        tokio::spawn(async move { payer.collect(ticket, resend).await });
        TicketOutcome::Pending {
            note,
            reason: reason.to_owned(),
        }
    }

    async fn collect(self, ticket: PaidTicket, mut resend: Option<PaidRequest>) -> TicketOutcome {
        let mut delay = self.config.owed_first_delay;
        let mut missing_since: Option<Instant> = None;
        loop {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.config.owed_max_delay);
            match self.gateway.receipt(ticket.nullifier).await {
                Ok(Some(receipt)) => return self.finish(ticket, &receipt).await,
                Ok(None) => {
                    missing_since.get_or_insert_with(Instant::now);
                }
                Err(e) => {
                    tracing::debug!(note = ticket.note, error = %e, "receipt fetch failed; retrying later");
                    missing_since = None;
                    continue;
                }
            }
            if let Some(request) = &resend {
                match self.resend(&ticket, request).await {
                    Resent::Receipt(receipt) => return self.finish(ticket, &receipt).await,
                    Resent::Refused(code) => return self.refused(ticket, code).await,
                    Resent::Admitted => resend = None,
                    Resent::Again => {}
                }
            }
            if resend.is_none()
                && missing_since.is_some_and(|t| t.elapsed() >= self.config.lost_after)
            {
                let note = ticket.note;
                if let Err(e) = self.spender.lose(ticket).await {
                    tracing::warn!(note, error = %e, "could not mark a lost ticket");
                }
                return TicketOutcome::NeedsClose {
                    note,
                    code: "receipt_lost".to_owned(),
                };
            }
        }
    }

    /// Sends `request` paid with `ticket`'s credential: the first time, and every time
    /// after (the bytes and the credential are always the same).
    async fn send_ticket(
        &self,
        ticket: &PaidTicket,
        request: &PaidRequest,
    ) -> Result<GatewayResponse, GatewayError> {
        self.gateway
            .send_paid(
                request.method.clone(),
                &request.path_and_query,
                request.headers.clone(),
                request.body.clone(),
                &ticket.authorization,
            )
            .await
    }

    /// Sends an owed request again, with its identical credential, and reads what came.
    async fn resend(&self, ticket: &PaidTicket, request: &PaidRequest) -> Resent {
        let Ok(response) = self.send_ticket(ticket, request).await else {
            return Resent::Again;
        };
        if let Some(receipt) = response.receipt() {
            return Resent::Receipt(receipt);
        }
        if response.status.is_success() && response.is_event_stream() {
            // Admitted: read the stream to its receipt (the application has gone).
            let mut filter = SseFilter::new();
            let mut stream = response.stream().boxed();
            while let Some(Ok(chunk)) = stream.next().await {
                filter.push(&chunk);
            }
            return match filter.finish().1 {
                Some(receipt) => Resent::Receipt(receipt),
                None => Resent::Admitted,
            };
        }
        let Ok(body) = response.bytes().await else {
            return Resent::Again;
        };
        let (code, wire) = code_of(&body);
        match code.map(Code::fate) {
            Some(TicketFate::Refused) => Resent::Refused(wire),
            Some(TicketFate::Retry | TicketFate::Reprove) | None => Resent::Again,
            Some(TicketFate::Spent | TicketFate::Conflict) => Resent::Admitted,
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
                        cause: Box::new(e),
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
        // reading the gateway even if the application goes away, settles the ticket,
        // and only then passes on the stream's end.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, StreamCut>>(32);
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
                            && tx.send(Ok(out)).await.is_err()
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
            let outcome = match receipt {
                Some(r) => {
                    let outcome = payer.finish(ticket, &r).await;
                    if !rest.is_empty()
                        && let Some(tx) = &app
                    {
                        let _ = tx.send(Ok(rest)).await;
                    }
                    outcome
                }
                None => {
                    let why = broken.unwrap_or_else(|| "the stream ended without a receipt".into());
                    if let Some(tx) = &app {
                        let _ = tx.send(Ok(cut_event(&why))).await;
                        // The server writes the event out while it waits for the next
                        // item; an error right behind it would abort the connection with
                        // the event still in its buffer.
                        tokio::time::sleep(CUT_FLUSH).await;
                        let _ = tx.send(Err(StreamCut(why.clone()))).await;
                    }
                    payer.owe(ticket, None, &why)
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

    /// Recovery at start, waiting for it: for each ticket a crash left in flight, fetch
    /// its receipt; a ticket the gateway has no receipt for is retried after each of
    /// `waits` (the gateway may still be working on it) before its note is marked
    /// `needs_close(m = 1)`. `zkcredits call` uses this; the proxy recovers in the
    /// background ([`Payer::recover_in_background`]).
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
                async move { fetch_waiting(&gateway, n, &waits).await }
            })
            .await
    }

    /// Recovery without waiting for it: every ticket a crash left in flight gets a task
    /// of its own that fetches its receipt (a gateway that is down is asked again, with
    /// growing pauses, until it answers), so start-up is not held up by the gateway and
    /// the tickets' notes are simply busy until their receipts come. Returns how many
    /// tickets are being recovered.
    pub async fn recover_in_background(&self, waits: &[Duration]) -> Result<usize, ClientError> {
        let (pending, _) = self.spender.take_pending().await?;
        let count = pending.len();
        for ticket in pending {
            let payer = self.clone();
            let waits = waits.to_vec();
            tokio::spawn(async move {
                let mut delay = payer.config.owed_first_delay;
                loop {
                    match fetch_waiting(&payer.gateway, ticket.nullifier, &waits).await {
                        Ok(Some(receipt)) => {
                            let note = ticket.note;
                            match payer.spender.settle_pending(ticket, &receipt).await {
                                Ok(s) => tracing::info!(
                                    note,
                                    index = s.next_index,
                                    "recovered a ticket's receipt"
                                ),
                                Err(e) => {
                                    tracing::warn!(note, error = %e, "a recovered receipt was not applied")
                                }
                            }
                            return;
                        }
                        Ok(None) => {
                            let note = ticket.note;
                            if let Err(e) = payer.spender.lose_pending(ticket).await {
                                tracing::warn!(note, error = %e, "could not mark a lost ticket");
                            }
                            return;
                        }
                        Err(e) => {
                            tracing::debug!(note = ticket.note, error = %e, "gateway unreachable; recovery retries later");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(payer.config.owed_max_delay);
                        }
                    }
                }
            });
        }
        Ok(count)
    }
}

/// What sending an owed request again brought.
enum Resent {
    /// Its receipt.
    Receipt(String),
    /// A final refusal before admission.
    Refused(String),
    /// The gateway has the ticket: only its receipt is awaited now.
    Admitted,
    /// Nothing conclusive: try again later.
    Again,
}

/// The receipt of `n`, asking again after each of `waits` while the gateway has none.
async fn fetch_waiting(
    gateway: &GatewayClient,
    n: Nullifier,
    waits: &[Duration],
) -> Result<Option<String>, ClientError> {
    let mut attempt = 0;
    loop {
        match gateway.receipt(n).await {
            Ok(Some(r)) => return Ok(Some(r)),
            Ok(None) => {}
            Err(e) => return Err(ClientError::ReceiptFetch(e)),
        }
        match waits.get(attempt) {
            Some(w) => tokio::time::sleep(*w).await,
            None => return Ok(None),
        }
        attempt += 1;
    }
}
