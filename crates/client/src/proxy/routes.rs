//! The proxy's routes and its OpenAI-shaped errors.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::payer::{PaidBody, PaidRequest, PayError, Payer, TicketOutcome};

/// How the proxy is set up.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The gateway's JSON-RPC route, where `POST /rpc` goes (default `/rpc`).
    pub rpc_path: String,
    /// The models the gateway prices (from its discovery document,
    /// [`crate::gateway_client::RequestRules::models`]), served at `GET /v1/models`.
    /// `None`: not published; `/v1/models` is then forwarded as a paid request.
    pub models: Option<Vec<String>>,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            rpc_path: "/rpc".into(),
            models: None,
            max_body: 8 << 20,
        }
    }
}

struct AppState {
    payer: Payer,
    config: ProxyConfig,
}

type Shared = State<Arc<AppState>>;

/// An OpenAI-style error answer.
pub(crate) fn error_response(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match status.as_u16() {
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    };
    let body = serde_json::json!({
        "error": {"message": message, "type": kind, "code": code, "param": null}
    });
    (status, axum::Json(body)).into_response()
}

fn pay_error(e: &PayError) -> Response {
    match e {
        // Exactly what the gateway would have answered.
        PayError::Invalid(refusal) => {
            (refusal.code.status(), axum::Json(refusal.body())).into_response()
        }
        _ => error_response(e.http_status(), e.code(), &e.to_string()),
    }
}

/// The proxy's router.
pub fn router(config: ProxyConfig, payer: Payer) -> Router {
    let max_body = config.max_body;
    let state = Arc::new(AppState { payer, config });
    Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/v1/completions", post(openai))
        .route("/v1/embeddings", post(openai))
        .route("/v1/models", get(models))
        .route("/rpc", post(rpc))
        .fallback(unknown_route)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Serves the proxy on `listener` until `shutdown` resolves; requests in flight are
/// finished (and their tickets settled) before it returns.
pub async fn serve_proxy(
    listener: tokio::net::TcpListener,
    config: ProxyConfig,
    payer: Payer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(config, payer))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn unknown_route(method: Method, uri: Uri) -> Response {
    error_response(
        404,
        "unknown_route",
        &format!(
            "{method} {} is not served by the zkcredits proxy; use /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models or /rpc",
            uri.path()
        ),
    )
}

/// The headers every paid request carries: the same for every application, so that
/// nothing app-specific (its SDK's user agent, accept, its own API key, tracing
/// headers) reaches the gateway or links requests. The body is JSON on every route the
/// proxy serves.
fn fixed_headers() -> HeaderMap {
    let mut out = HeaderMap::new();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out
}

fn check_json(body: &[u8]) -> Result<serde_json::Value, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error_response(
            400,
            "invalid_body",
            &format!("the request body is not JSON ({e}); nothing was spent"),
        ))
    })
}

async fn openai(State(state): Shared, uri: Uri, body: Bytes) -> Response {
    if let Err(r) = check_json(&body) {
        return *r;
    }
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    forward(&state, Method::POST, path, body, None).await
}

async fn rpc(State(state): Shared, uri: Uri, body: Bytes) -> Response {
    let json = match check_json(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let path = match uri.query() {
        Some(q) => format!("{}?{q}", state.config.rpc_path),
        None => state.config.rpc_path.clone(),
    };
    // The application's ids (often counters, timestamps or UUIDs) would link requests
    // and fingerprint the app: the gateway sees 1, 2, 3... and the answer gets them back.
    let (rewritten, ids) = super::jsonrpc_ids::rewrite(json);
    let body = Bytes::from(rewritten.to_string());
    forward(&state, Method::POST, path, body, Some(ids)).await
}

async fn models(State(state): Shared) -> Response {
    match &state.config.models {
        Some(models) => {
            let data: Vec<_> = models
                .iter()
                .map(|id| {
                    serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "zkcredits"})
                })
                .collect();
            axum::Json(serde_json::json!({"object": "list", "data": data})).into_response()
        }
        None => forward(&state, Method::GET, "/v1/models".into(), Bytes::new(), None).await,
    }
}

async fn forward(
    state: &AppState,
    method: Method,
    path_and_query: String,
    body: Bytes,
    ids: Option<super::jsonrpc_ids::OriginalIds>,
) -> Response {
    let request = PaidRequest {
        method,
        path_and_query,
        headers: fixed_headers(),
        body,
    };
    let reply = match state.payer.send(request).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(code = e.code(), error = %e, "paid request failed");
            return pay_error(&e);
        }
    };
    let mut response = match reply.body {
        PaidBody::Complete(bytes) => {
            // Settled before the answer goes back: the application's next request finds
            // the note free.
            match reply.outcome.resolve().await {
                TicketOutcome::Settled(s) => {
                    tracing::debug!(note = s.note, index = s.next_index, "settled")
                }
                other => tracing::warn!(?other, "request answered without a settled receipt"),
            }
            let bytes = match &ids {
                Some(ids) => super::jsonrpc_ids::restore(&bytes, ids),
                None => bytes,
            };
            Response::new(Body::from(bytes))
        }
        PaidBody::Stream(stream) => {
            tokio::spawn(async move {
                match reply.outcome.resolve().await {
                    TicketOutcome::Settled(s) => {
                        tracing::debug!(note = s.note, index = s.next_index, "stream settled")
                    }
                    other => tracing::warn!(?other, "stream ended without a settled receipt"),
                }
            });
            Response::new(Body::from_stream(stream))
        }
    };
    *response.status_mut() = reply.status;
    let mut headers = reply.headers;
    if ids.is_some() {
        // The body was rewritten: its length is not the gateway's.
        headers.remove(header::CONTENT_LENGTH);
    }
    *response.headers_mut() = headers;
    response
}
