//! The proxy's routes and its OpenAI-shaped errors.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;

use crate::payer::{PaidBody, PaidRequest, PayError, Payer, TicketOutcome};

/// How the proxy is set up.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The gateway's JSON-RPC route, where `POST /rpc` goes (default `/rpc`).
    pub rpc_path: String,
    /// The models the gateway prices (from its discovery document), served at
    /// `GET /v1/models`; requests for other models are refused before a ticket is
    /// spent. `None`: not published; `/v1/models` is then forwarded as a paid request.
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

impl ProxyConfig {
    /// The model names in a discovery document's `prices`: the `models` table of each
    /// route that has one (`{"/v1": {"kind": "openai", "models": {name: ...}}}`).
    pub fn models_from_prices(prices: &serde_json::Value) -> Option<Vec<String>> {
        fn of(v: &serde_json::Value) -> Option<Vec<String>> {
            match v.get("models")? {
                serde_json::Value::Object(m) => Some(m.keys().cloned().collect()),
                serde_json::Value::Array(a) => Some(
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            }
        }
        if let Some(m) = of(prices) {
            return Some(m);
        }
        let mut all: Option<Vec<String>> = None;
        for route in prices.as_object()?.values() {
            if let Some(m) = of(route) {
                all.get_or_insert_with(Vec::new).extend(m);
            }
        }
        all
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
    error_response(e.http_status(), e.code(), &e.to_string())
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

fn forwarded_headers(headers: &HeaderMap) -> HeaderMap {
    // Only what describes the body; the application's own Authorization (an OpenAI
    // key), user agent and the like never leave this machine.
    let mut out = HeaderMap::new();
    out.insert(
        header::CONTENT_TYPE,
        headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("application/json")),
    );
    if let Some(accept) = headers.get(header::ACCEPT) {
        out.insert(header::ACCEPT, accept.clone());
    }
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

async fn openai(State(state): Shared, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let json = match check_json(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if let Some(models) = &state.config.models {
        match json.get("model").and_then(|m| m.as_str()) {
            Some(m) if models.iter().any(|x| x == m) => {}
            Some(m) => {
                return error_response(
                    400,
                    "unknown_model",
                    &format!(
                        "the gateway does not serve model {m:?} (GET /v1/models lists those it does); nothing was spent"
                    ),
                );
            }
            None => {
                return error_response(
                    400,
                    "invalid_body",
                    "`model` (a string) is required; nothing was spent",
                );
            }
        }
    }
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    forward(&state, Method::POST, path, &headers, body).await
}

async fn rpc(State(state): Shared, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = check_json(&body) {
        return *r;
    }
    let path = match uri.query() {
        Some(q) => format!("{}?{q}", state.config.rpc_path),
        None => state.config.rpc_path.clone(),
    };
    forward(&state, Method::POST, path, &headers, body).await
}

async fn models(State(state): Shared, headers: HeaderMap) -> Response {
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
        None => {
            forward(
                &state,
                Method::GET,
                "/v1/models".into(),
                &headers,
                Bytes::new(),
            )
            .await
        }
    }
}

async fn forward(
    state: &AppState,
    method: Method,
    path_and_query: String,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let request = PaidRequest {
        method,
        path_and_query,
        headers: forwarded_headers(headers),
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
            match reply.outcome.resolve().await {
                TicketOutcome::Settled(s) => {
                    tracing::debug!(note = s.note, index = s.next_index, "settled")
                }
                other => tracing::warn!(?other, "request answered without a settled receipt"),
            }
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
            Response::new(Body::from_stream(stream.map(Ok::<_, Infallible>)))
        }
    };
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers;
    response
}
