//! The admission pipeline of a paid request, in the order of `docs/PROTOCOL.md §4`:
//!
//! ```text
//! route, credential present (402), decoded (400), body within limit (413)
//!   -> Parsed     root recent (409 stale_root), key id known (400), adapter accepts
//!   -> Verified   proof checked against inputs the gateway computed (401)
//!   -> Admitted   (N, x, y) durably stored: fresh, else replay / double spend (409)
//!   -> policy (403 + penalty) -> upstream -> refund -> receipt stored, then answered
//! ```
//!
//! Each step is a type holding only what it earned, consumed by the next. From
//! `Admitted` on the ticket is spent, so every answer carries a receipt, stored first.
//! A refusal given before the body is read to its end closes the connection
//! (`Connection: close`): the unread rest of the body makes it unusable.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use zkcredits_circuits::prover::from_points;
use zkcredits_circuits::request::RequestPublicInputs;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::rln::{Nullifier, Share};
use zkcredits_protocol::wire::{Credential, WireFormat};
use zkcredits_protocol::{Fr, field};

use super::{AppState, Route};
use crate::api_error::{ApiError, Code, RECEIPT_HEADER};
use crate::policy::Verdict;
use crate::store::{Admission, CLEARANCE_X, SLASHED_X, StoredShare};
use crate::telemetry;
use crate::upstream::{PaidRequest, UpstreamError, UpstreamReply};
pub use zkcredits_api::AUTH_SCHEME;

/// A decoded credential on a known route, with the body read.
struct Parsed {
    credential: Credential,
    request: PaidRequest,
    route: Route,
}

/// A credential whose proof verified for this request's `x`.
struct Verified {
    credential: Credential,
    request: PaidRequest,
    route: Route,
    x: Fr,
}

/// A ticket durably recorded as spent on this request: from here on, the answer
/// carries a receipt.
struct Admitted {
    nullifier: Nullifier,
    next_commitment: Fr,
    request: PaidRequest,
    route: Route,
}

/// The fallback handler: every path that is not a gateway endpoint.
pub(crate) async fn handler(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let start = Instant::now();
    let response = match serve(state, request, start).await {
        Ok(r) => r,
        Err(e) => {
            metrics::counter!(telemetry::REJECTED, "code" => e.code.as_str()).increment(1);
            e.into_response()
        }
    };
    metrics::histogram!(telemetry::REQUEST_SECONDS).record(start.elapsed().as_secs_f64());
    response
}

async fn serve(
    state: Arc<AppState>,
    request: Request,
    start: Instant,
) -> Result<Response, ApiError> {
    if !state
        .key_accepted
        .load(std::sync::atomic::Ordering::Acquire)
    {
        return Err(ApiError::new(
            Code::ServerKeyNotAccepted,
            "the pool does not accept this gateway's receipt key yet, so its receipts could \
             not be used in a close; nothing was charged, retry later",
        )
        .before_body_read());
    }
    let parsed = parse(&state, request).await?;
    let verified = verify(&state, parsed).await?;
    // From the nullifier write on, the request runs to its stored receipt in a task of its
    // own: if the client hangs up, hyper drops this handler's future, and a ticket spent
    // without a receipt would leave the user only a close with m = 1 (losing the refund).
    let settling = tokio::spawn(async move {
        let admitted = admit(&state, verified).await?;
        metrics::counter!(telemetry::ADMITTED).increment(1);
        metrics::histogram!(telemetry::ADMISSION_SECONDS).record(start.elapsed().as_secs_f64());
        settle(&state, admitted).await
    });
    settling.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a paid request's task failed");
        Err(ApiError::new(
            Code::Internal,
            "the gateway failed while answering; fetch the receipt at /zkcredit/receipts/{N}",
        ))
    })
}

fn payment_required(state: &AppState, message: &str) -> ApiError {
    let mut e = ApiError::new(Code::PaymentRequired, message);
    e.www_authenticate = Some(format!(
        "{AUTH_SCHEME} realm=\"{}\", pool=\"{}\", c_max=\"{}\"",
        state.settings.realm, state.pool, state.limits.c_max
    ));
    e
}

/// The paid route and the credential, read from the request head alone.
struct Head {
    route: Route,
    credential: Credential,
    parts: axum::http::request::Parts,
    path: String,
}

/// Route, credential, body, root, key id, adapter check.
async fn parse(state: &AppState, request: Request) -> Result<Parsed, ApiError> {
    let (head, body) = read_head(state, request).map_err(ApiError::before_body_read)?;
    let body = read_body(state, &head.parts, body)
        .await
        .map_err(ApiError::before_body_read)?;
    let Head {
        route,
        credential,
        parts,
        path,
    } = head;

    if !state.roots.accepts(&credential.root).await {
        return Err(ApiError::new(
            Code::StaleRoot,
            "the credential's root is not among the pool's recent roots; resync the note tree \
             and prove again (same ticket)",
        ));
    }
    if state.keys.by_id(credential.key_id).is_none() {
        return Err(ApiError::new(
            Code::UnknownServerKey,
            format!(
                "server key id {} is not accepted by this gateway; fetch \
                 /.well-known/zkcredits (a note whose last receipt used a retired key must be \
                 closed)",
                credential.key_id
            ),
        ));
    }

    let mut headers = parts.headers;
    strip_request_headers(&mut headers);
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(path, |p| p.as_str().to_owned());
    let request = PaidRequest {
        method: parts.method,
        path_and_query,
        headers,
        body,
        c_max: state.limits.c_max,
    };
    route.upstream.prepare(&request).map_err(ApiError::from)?;
    Ok(Parsed {
        credential,
        request,
        route,
    })
}

/// The route and the credential; the body is left unread.
fn read_head(state: &AppState, request: Request) -> Result<(Head, Body), ApiError> {
    let path = request.uri().path().to_owned();
    let route = state.route(&path).cloned().ok_or_else(|| {
        ApiError::new(
            Code::UnknownRoute,
            format!(
                "no paid route serves {path}; GET /.well-known/zkcredits lists the routes and prices"
            ),
        )
    })?;
    let (parts, body) = request.into_parts();
    let text = match parts.headers.get(header::AUTHORIZATION) {
        None => {
            return Err(payment_required(
                state,
                "this route is paid: send `Authorization: ZkCredit <credential>` (the zkcredits \
                 client or proxy makes one)",
            ));
        }
        Some(value) => {
            let value = value.to_str().unwrap_or("");
            match value.split_once(' ') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case(AUTH_SCHEME) => {
                    rest.trim().to_owned()
                }
                _ => {
                    return Err(payment_required(
                        state,
                        "the Authorization header is not a ZkCredit credential; send \
                         `Authorization: ZkCredit <credential>`",
                    ));
                }
            }
        }
    };
    let credential = Credential::from_base64url(&text).map_err(|e| {
        ApiError::new(
            Code::MalformedCredential,
            format!("the credential does not decode ({e}); update the client"),
        )
    })?;
    let head = Head {
        route,
        credential,
        parts,
        path,
    };
    Ok((head, body))
}

/// The whole body, refused past the size limit, whether it declares its length or not.
async fn read_body(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<Bytes, ApiError> {
    let limit = state.settings.body_limit;
    let too_large = || {
        ApiError::new(
            Code::BodyTooLarge,
            format!("the request body exceeds {limit} bytes; send a smaller request"),
        )
    };
    if let Some(len) = parts.headers.get(header::CONTENT_LENGTH)
        && len
            .to_str()
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|n| n > limit as u64)
    {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            too_large()
        } else {
            ApiError::new(
                Code::InvalidBody,
                format!("the request body could not be read ({e}); send it again"),
            )
        }
    })
}

/// The `Authorization` header and hop-by-hop headers never reach an upstream.
/// Whether reading a body stopped at the size limit: a [`LengthLimitError`] anywhere in
/// the error's chain (axum wraps the body's own error).
///
/// [`LengthLimitError`]: http_body_util::LengthLimitError
fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = err.source();
    }
    false
}

fn strip_request_headers(headers: &mut HeaderMap) {
    for name in [
        header::AUTHORIZATION,
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::HOST,
        header::CONTENT_LENGTH,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// Checks the proof with the public inputs the gateway computes itself.
async fn verify(state: &AppState, parsed: Parsed) -> Result<Verified, ApiError> {
    let Parsed {
        credential,
        request,
        route,
    } = parsed;
    let x = zkcredits_protocol::request::request_x(
        request.method.as_str(),
        &request.path_and_query,
        &request.body,
    );
    let server_key = state
        .keys
        .by_id(credential.key_id)
        .ok_or_else(|| ApiError::new(Code::UnknownServerKey, "server key id not accepted"))?;
    let public = RequestPublicInputs {
        root: credential.root,
        x,
        y: credential.y,
        nullifier: credential.nullifier,
        next_commitment: credential.next_commitment,
        c_max: state.limits.c_max,
        p_max: state.limits.p_max,
        server_key: server_key.point(),
    };
    let ok = state
        .verifier
        .verify(from_points(&credential.proof), public.to_field_elements())
        .await
        .map_err(|e| {
            ApiError::new(
                Code::Unavailable,
                format!("proof verification is unavailable ({e}); retry shortly with the same credential"),
            )
        })?;
    if !ok {
        return Err(ApiError::new(
            Code::InvalidProof,
            "the proof does not verify for this request, the deployment's C_max and P_max and \
             the named server key; check the client against /.well-known/zkcredits",
        ));
    }
    Ok(Verified {
        credential,
        request,
        route,
        x,
    })
}

/// Records the ticket as spent, or says why it cannot be.
async fn admit(state: &AppState, verified: Verified) -> Result<Admitted, ApiError> {
    let Verified {
        credential,
        request,
        route,
        x,
    } = verified;
    let n = credential.nullifier.to_bytes();
    let share = StoredShare {
        x: field::to_be_bytes(&x),
        y: field::to_be_bytes(&credential.y),
    };
    let next = field::to_be_bytes(&credential.next_commitment);
    let admission = state.store.admit(n, share, Some(next)).await.map_err(|e| {
        tracing::error!(error = %e, "nullifier store failed");
        ApiError::new(
            Code::StoreUnavailable,
            "the gateway cannot record tickets right now; nothing was charged, retry with the \
             same credential",
        )
    })?;
    match admission {
        Admission::Fresh => Ok(Admitted {
            nullifier: credential.nullifier,
            next_commitment: credential.next_commitment,
            request,
            route,
        }),
        Admission::Replay { receipt } => {
            let e = ApiError::new(
                Code::Replay,
                "this ticket was already used for this exact request; the receipt it got is \
                 attached when issued (else fetch it from /zkcredit/receipts/{N}); continue \
                 with the note's next ticket",
            );
            Err(match receipt.map(|r| encode_stored(&r)) {
                Some(Some(b64)) => e.with_receipt(b64),
                _ => e,
            })
        }
        Admission::DoubleSpend { first } => {
            if first.x == CLEARANCE_X {
                return Err(ApiError::new(
                    Code::DoubleSpend,
                    "this ticket was spent by a cooperative close of its note; the note is closed",
                ));
            }
            if first.x == SLASHED_X {
                return Err(ApiError::new(
                    Code::DoubleSpend,
                    "this note was slashed on chain (its secret is public): none of its tickets \
                     can be spent again",
                ));
            }
            punish(
                state,
                credential.nullifier,
                first,
                Share { x, y: credential.y },
            )
            .await;
            Err(ApiError::new(
                Code::DoubleSpend,
                "this ticket was already used for another request: the note's key is recovered \
                 and the note will be slashed",
            ))
        }
    }
}

/// Recovers `k` from two shares of one ticket and queues `slash(k)`.
async fn punish(state: &AppState, nullifier: Nullifier, first: StoredShare, second: Share) {
    let recovered = match first.recover_with(second, nullifier.field()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot recover the key of a double spend; not slashing");
            return;
        }
    };
    // Whether H(ID, k) is a deposit is checked by the slasher against the chain, which
    // knows every note's (D, E); the tree alone only holds H(LEAF, ID, D, E).
    match state
        .store
        .enqueue_slash(field::to_be_bytes(&recovered.k))
        .await
    {
        Ok(()) => {
            metrics::counter!("zkcredits_double_spends_total").increment(1);
            tracing::warn!("double spend: note key recovered, slash queued");
        }
        Err(e) => tracing::error!(error = %e, "cannot queue a slash; the key is lost"),
    }
}

fn encode_stored(bytes: &[u8]) -> Option<String> {
    zkcredits_protocol::state::Receipt::decode(bytes)
        .ok()
        .map(|r| r.to_base64url())
}

/// Signs `(T_next, r, p)`, stores the receipt under `N` and returns its text.
pub(crate) async fn issue_receipt(
    state: &AppState,
    nullifier: Nullifier,
    next_commitment: Fr,
    refund: Credits,
    penalty: Credits,
) -> Result<String, (String, ApiError)> {
    let receipt = state.keys.sign_receipt(next_commitment, refund, penalty);
    let text = receipt.to_base64url();
    match state
        .store
        .put_receipt(nullifier.to_bytes(), &receipt.encode())
        .await
    {
        Ok(()) => Ok(text),
        Err(e) => {
            tracing::error!(error = %e, "cannot store a receipt");
            let err = ApiError::new(
                Code::StoreUnavailable,
                "the gateway could not store this request's receipt; it is attached: keep it, \
                 it cannot be fetched again",
            )
            .with_receipt(text.clone());
            Err((text, err))
        }
    }
}

/// `r = C_max - c`, rounded down to the granularity (a cost above `C_max` refunds
/// nothing).
pub(crate) fn refund(c_max: Credits, cost: Credits, granularity: Credits) -> Credits {
    let raw = c_max.checked_sub(cost).unwrap_or(Credits::ZERO).get();
    // The remainder is at most `raw`, so this cannot underflow.
    Credits::new(raw - raw % granularity.get().max(1))
}

/// Policy, upstream, refund, receipt.
async fn settle(state: &AppState, admitted: Admitted) -> Result<Response, ApiError> {
    let Admitted {
        nullifier,
        next_commitment,
        request,
        route,
    } = admitted;
    let c_max = state.limits.c_max;
    let receipt =
        |refund, penalty| issue_receipt(state, nullifier, next_commitment, refund, penalty);

    if let Some(policy) = &state.policy {
        match policy.check(&request).await {
            Ok(Verdict::Allow) => {}
            Ok(Verdict::Violation {
                penalty,
                rule,
                evidence_hash,
            }) => {
                let p = penalty.min(state.limits.p_max);
                if let Err(e) = state
                    .store
                    .record_violation(nullifier.to_bytes(), evidence_hash, p)
                    .await
                {
                    tracing::error!(error = %e, "cannot record a violation");
                }
                let text = receipt(Credits::ZERO, p).await.map_err(|(_, e)| e)?;
                return Err(ApiError::new(
                    Code::PolicyViolation,
                    format!(
                        "the request violates the provider's policy (rule {rule}); it was charged \
                         in full with a penalty of {p} credit units (see the receipt)"
                    ),
                )
                .with_receipt(text));
            }
            Err(e) => {
                tracing::warn!(error = %e, "policy check failed");
                let text = receipt(c_max, Credits::ZERO).await.map_err(|(_, e)| e)?;
                return Err(ApiError::new(
                    Code::PolicyUnavailable,
                    "the provider's policy check is unavailable; the request was refunded in \
                     full (see the receipt), retry later with the note's next ticket",
                )
                .with_receipt(text));
            }
        }
    }

    let timeout = state.settings.upstream_timeout;
    let forwarded = match tokio::time::timeout(timeout, route.upstream.forward(request)).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::Timeout(timeout)),
    };
    match forwarded {
        Ok(UpstreamReply::Complete {
            status,
            headers,
            body,
            cost,
        }) => {
            let r = refund(c_max, cost, state.settings.refund_granularity);
            let text = receipt(r, Credits::ZERO).await.map_err(|(_, e)| e)?;
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            copy_response_headers(&headers, response.headers_mut());
            insert_receipt(response.headers_mut(), &text);
            Ok(response)
        }
        Ok(UpstreamReply::Stream {
            status,
            headers,
            events,
            cost,
        }) => Ok(stream_response(
            state,
            nullifier,
            next_commitment,
            status,
            &headers,
            events,
            cost,
        )),
        Err(e) => {
            let code = match e {
                UpstreamError::Timeout(_) => Code::UpstreamTimeout,
                _ => Code::UpstreamFailed,
            };
            tracing::warn!(error = %e, "upstream failed");
            let text = receipt(c_max, Credits::ZERO).await.map_err(|(_, e)| e)?;
            Err(ApiError::new(
                code,
                format!(
                    "the upstream failed ({e}); the request was refunded in full (see the \
                     receipt), retry with the note's next ticket"
                ),
            )
            .with_receipt(text))
        }
    }
}

fn copy_response_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !matches!(
            name.as_str(),
            "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "upgrade"
        ) {
            to.append(name.clone(), value.clone());
        }
    }
}

fn insert_receipt(headers: &mut HeaderMap, text: &str) {
    if let Ok(v) = HeaderValue::from_str(text) {
        headers.insert(RECEIPT_HEADER, v);
    }
}

/// Relays an SSE stream and appends the receipt event. The relay runs in its own task, so
/// the receipt is signed and stored even when the client goes away mid-stream. When it
/// does, the adapter's events are dropped: the adapter then stops reading the upstream
/// (ending the generation) and meters what it relayed, so the client pays for what it
/// received rather than for the whole answer (`docs/METERING.md`).
fn stream_response(
    state: &AppState,
    nullifier: Nullifier,
    next_commitment: Fr,
    status: StatusCode,
    headers: &HeaderMap,
    mut events: crate::upstream::EventStream,
    cost: tokio::sync::oneshot::Receiver<Credits>,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let store = Arc::clone(&state.store);
    let keys = state.keys.clone();
    let c_max = state.limits.c_max;
    let granularity = state.settings.refund_granularity;
    tokio::spawn(async move {
        while let Some(chunk) = events.next().await {
            if tx.send(chunk).await.is_err() {
                // The client left.
                break;
            }
        }
        drop(events);
        // A dropped sender means the adapter could not meter: charge nothing.
        let spent = cost.await.unwrap_or(Credits::ZERO);
        let receipt = keys.sign_receipt(
            next_commitment,
            refund(c_max, spent, granularity),
            Credits::ZERO,
        );
        if let Err(e) = store
            .put_receipt(nullifier.to_bytes(), &receipt.encode())
            .await
        {
            tracing::error!(error = %e, "cannot store a streamed request's receipt");
        }
        let tail = format!(
            "event: zkcredit-receipt\ndata: {}\n\ndata: [DONE]\n\n",
            receipt.to_base64url()
        );
        let _ = tx.send(Bytes::from(tail)).await;
    });
    let body = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    copy_response_headers(headers, response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::refund;
    use zkcredits_protocol::credits::Credits;

    fn c(n: u64) -> Credits {
        Credits::new(n)
    }

    #[test]
    fn refunds_round_down_to_the_granularity() {
        assert_eq!(refund(c(1000), c(0), c(1)), c(1000));
        assert_eq!(refund(c(1000), c(1), c(1)), c(999));
        assert_eq!(refund(c(1000), c(1), c(10)), c(990));
        assert_eq!(refund(c(1000), c(999), c(10)), c(0));
        assert_eq!(refund(c(1000), c(5000), c(10)), c(0));
        assert_eq!(refund(c(1000), c(0), c(7)), c(994));
    }
}
