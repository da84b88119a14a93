//! A deterministic OpenAI-compatible server: the LLM upstream of the test suite and of
//! the end-to-end demo. Same prompt, same answer; token counts come from the same
//! tiktoken encoding (cl100k_base) and the same chat estimate as the gateway's adapter,
//! so a test can predict every cost exactly.
//!
//! Test knobs, chosen by the model name:
//! - `dev-cut`: a streamed answer breaks off half-way, without usage and without
//!   `[DONE]` (the connection is aborted);
//! - `dev-error`: answers 500;
//! - `dev-slow`: waits [`SLOW`] before answering;
//! - `dev-trickle`: a streamed answer long enough to fill its `max_tokens` (the answer's
//!   tokens over and over, [`TRICKLE_DEFAULT_TOKENS`] without a cap), one token every
//!   [`TRICKLE_EVERY`]: a client can leave while the generation runs.
//!
//! Every answer echoes what the server received in headers, so tests can check how the
//! gateway rewrote the request: `x-dev-llm-max-tokens`, `x-dev-llm-max-completion-tokens`,
//! `x-dev-llm-include-usage` (each the received value or `none`) and `x-dev-llm-auth`
//! (`bearer` or `none`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::upstream::openai::meter::{self, Tokenizer};

/// How long `dev-slow` waits before answering.
pub const SLOW: Duration = Duration::from_secs(5);
/// How often `dev-trickle` sends a token.
pub const TRICKLE_EVERY: Duration = Duration::from_millis(50);
/// Tokens `dev-trickle` generates when the request sets no cap.
pub const TRICKLE_DEFAULT_TOKENS: u64 = 1_000;
/// Models the server lists (any other name is served too, like `dev-model`).
pub const MODELS: [&str; 4] = ["dev-model", "dev-cut", "dev-error", "dev-slow"];
/// Words the answers are made of.
const WORDS: [&str; 32] = [
    "the", "credit", "note", "proof", "gateway", "receipt", "token", "model", "answer", "chain",
    "pool", "key", "field", "tree", "root", "hash", "fair", "quick", "small", "large", "open",
    "blue", "green", "red", "river", "stone", "light", "dark", "north", "south", "east", "west",
];
/// Words in a full answer.
const ANSWER_WORDS: usize = 24;
const TOKENIZER: Tokenizer = Tokenizer::Cl100kBase;

/// The routes, for embedding in another server.
pub fn router() -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
}

/// Serves [`router`] on `addr` (use port 0 for a free one). Returns the bound address
/// and the server task (abort it to stop the server).
pub async fn spawn_dev_llm(addr: SocketAddr) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router()).await {
            tracing::error!(error = %e, "dev LLM server stopped");
        }
    });
    Ok((bound, task))
}

/// The full deterministic answer to `prompt` (before any `max_tokens` cut).
pub fn answer(prompt: &str) -> String {
    let digest = Sha256::digest(prompt.as_bytes());
    let words: Vec<&str> = (0..ANSWER_WORDS)
        .map(|i| WORDS[usize::from(digest[i % digest.len()]).wrapping_add(i) % WORDS.len()])
        .collect();
    words.join(" ")
}

/// The answer to `prompt` cut to `max_tokens`, as its tokens' texts, and whether it was
/// cut.
fn answer_tokens(prompt: &str, max_tokens: Option<u64>) -> (Vec<String>, bool) {
    let bpe = TOKENIZER.bpe();
    let ids = bpe.encode_ordinary(&answer(prompt));
    let keep = max_tokens
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(usize::MAX)
        .min(ids.len());
    let pieces = ids[..keep]
        .iter()
        .map(|id| bpe.decode(&[*id]).unwrap_or_default())
        .collect();
    (pieces, keep < ids.len())
}

/// `dev-trickle`'s answer: the answer's tokens repeated up to `max_tokens`.
fn trickle_tokens(prompt: &str, max_tokens: Option<u64>) -> (Vec<String>, bool) {
    let (one, _) = answer_tokens(prompt, None);
    let want = max_tokens.unwrap_or(TRICKLE_DEFAULT_TOKENS);
    let pieces = one
        .iter()
        .cycle()
        .take(usize::try_from(want).unwrap_or(usize::MAX))
        .cloned()
        .collect();
    (pieces, true)
}

fn prompt_of_chat(body: &Value) -> String {
    let mut text = String::new();
    for message in body["messages"].as_array().into_iter().flatten() {
        match &message["content"] {
            Value::String(s) => text.push_str(s),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .for_each(|s| text.push_str(s)),
            _ => {}
        }
        text.push('\n');
    }
    text
}

fn prompt_of_completion(body: &Value) -> String {
    match &body["prompt"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn echo(headers: &HeaderMap, body: &Value) -> HeaderMap {
    let field = |v: &Value| match v {
        Value::Null => "none".to_owned(),
        other => other.to_string(),
    };
    let auth = if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "))
    {
        "bearer"
    } else {
        "none"
    };
    let mut out = HeaderMap::new();
    for (name, value) in [
        ("x-dev-llm-max-tokens", field(&body["max_tokens"])),
        (
            "x-dev-llm-max-completion-tokens",
            field(&body["max_completion_tokens"]),
        ),
        (
            "x-dev-llm-include-usage",
            field(&body["stream_options"]["include_usage"]),
        ),
        ("x-dev-llm-auth", auth.to_owned()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            out.insert(name, v);
        }
    }
    out
}

/// Applies the `dev-error` and `dev-slow` knobs.
async fn knobs(model: &str) -> Option<Response> {
    match model {
        "dev-error" => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": {"message": "dev-error always fails",
                    "type": "server_error", "code": "dev_error"}})),
            )
                .into_response(),
        ),
        "dev-slow" => {
            tokio::time::sleep(SLOW).await;
            None
        }
        _ => None,
    }
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(
            json!({"error": {"message": message, "type": "invalid_request_error",
            "code": "invalid_body"}}),
        ),
    )
        .into_response()
}

async fn models() -> Response {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "zkcredits-dev"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completion,
}

fn max_tokens(body: &Value) -> Option<u64> {
    body["max_completion_tokens"]
        .as_u64()
        .or_else(|| body["max_tokens"].as_u64())
}

async fn chat(headers: HeaderMap, body: Bytes) -> Response {
    generate(Kind::Chat, headers, body).await
}

async fn completions(headers: HeaderMap, body: Bytes) -> Response {
    generate(Kind::Completion, headers, body).await
}

async fn generate(kind: Kind, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the body is not JSON");
    };
    let model = body["model"].as_str().unwrap_or("dev-model").to_owned();
    if let Some(response) = knobs(&model).await {
        return response;
    }
    let (prompt, prompt_tokens) = match kind {
        Kind::Chat => (
            prompt_of_chat(&body),
            meter::chat_prompt_tokens(TOKENIZER, &body),
        ),
        Kind::Completion => {
            let Some((tokens, _)) = meter::prompt_tokens(TOKENIZER, &body["prompt"]) else {
                return bad_request("`prompt` has an unknown shape");
            };
            (prompt_of_completion(&body), tokens)
        }
    };
    let (pieces, cut) = if model == "dev-trickle" {
        trickle_tokens(&prompt, max_tokens(&body))
    } else {
        answer_tokens(&prompt, max_tokens(&body))
    };
    let finish = if cut { "length" } else { "stop" };
    let n = body["n"].as_u64().unwrap_or(1).max(1);
    let echoed = echo(&headers, &body);
    let (id, object) = match kind {
        Kind::Chat => ("chatcmpl-dev", "chat.completion"),
        Kind::Completion => ("cmpl-dev", "text_completion"),
    };
    if body["stream"].as_bool() == Some(true) {
        let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
        let events = stream_events(kind, &model, &pieces, finish, prompt_tokens, include_usage);
        let stream: futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>> =
            if model == "dev-cut" {
                let half = events.len() / 2;
                let head: Vec<Bytes> = events.into_iter().take(half.max(1)).collect();
                Box::pin(futures::stream::unfold(
                    (head.into_iter(), false),
                    |(mut it, failed)| async move {
                        if failed {
                            return None;
                        }
                        // Let each event reach the client before the connection dies.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        match it.next() {
                            Some(event) => Some((Ok(event), (it, false))),
                            None => Some((
                                Err(std::io::Error::other("dev-cut breaks the stream")),
                                (it, true),
                            )),
                        }
                    },
                ))
            } else if model == "dev-trickle" {
                Box::pin(futures::stream::unfold(
                    events.into_iter(),
                    |mut it| async move {
                        tokio::time::sleep(TRICKLE_EVERY).await;
                        it.next().map(|event| (Ok(event), it))
                    },
                ))
            } else {
                Box::pin(futures::stream::iter(events.into_iter().map(Ok)))
            };
        let mut response = Response::new(Body::from_stream(stream));
        *response.headers_mut() = echoed;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        return response;
    }
    let text: String = pieces.concat();
    let completion_tokens = pieces.len() as u64 * n;
    let choices: Vec<Value> = (0..n)
        .map(|index| match kind {
            Kind::Chat => json!({"index": index, "finish_reason": finish,
                "message": {"role": "assistant", "content": text}}),
            Kind::Completion => json!({"index": index, "finish_reason": finish, "text": text}),
        })
        .collect();
    let reply = json!({
        "id": id, "object": object, "created": 0, "model": model, "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens},
    });
    (echoed, axum::Json(reply)).into_response()
}

fn sse(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

fn stream_events(
    kind: Kind,
    model: &str,
    pieces: &[String],
    finish: &str,
    prompt_tokens: u64,
    include_usage: bool,
) -> Vec<Bytes> {
    let (id, object) = match kind {
        Kind::Chat => ("chatcmpl-dev", "chat.completion.chunk"),
        Kind::Completion => ("cmpl-dev", "text_completion"),
    };
    let chunk = |choice: Value| {
        sse(
            &json!({"id": id, "object": object, "created": 0, "model": model,
            "choices": [choice]}),
        )
    };
    let mut events = Vec::with_capacity(pieces.len() + 4);
    if kind == Kind::Chat {
        events.push(chunk(json!({"index": 0, "finish_reason": null,
            "delta": {"role": "assistant", "content": ""}})));
    }
    for piece in pieces {
        events.push(chunk(match kind {
            Kind::Chat => json!({"index": 0, "finish_reason": null, "delta": {"content": piece}}),
            Kind::Completion => json!({"index": 0, "finish_reason": null, "text": piece}),
        }));
    }
    events.push(chunk(match kind {
        Kind::Chat => json!({"index": 0, "finish_reason": finish, "delta": {}}),
        Kind::Completion => json!({"index": 0, "finish_reason": finish, "text": ""}),
    }));
    if include_usage {
        let completion = pieces.len() as u64;
        events.push(sse(
            &json!({"id": id, "object": object, "created": 0, "model": model,
            "choices": [], "usage": {"prompt_tokens": prompt_tokens,
            "completion_tokens": completion, "total_tokens": prompt_tokens + completion}}),
        ));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

async fn embeddings(body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the body is not JSON");
    };
    let model = body["model"].as_str().unwrap_or("dev-model").to_owned();
    if let Some(response) = knobs(&model).await {
        return response;
    }
    let Some((tokens, _)) = meter::prompt_tokens(TOKENIZER, &body["input"]) else {
        return bad_request("`input` has an unknown shape");
    };
    let inputs: Vec<String> = match &body["input"] {
        Value::Array(items) if !items.iter().all(Value::is_u64) => {
            items.iter().map(Value::to_string).collect()
        }
        other => vec![other.to_string()],
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let digest = Sha256::digest(text.as_bytes());
            let vector: Vec<f64> = digest[..8]
                .iter()
                .map(|b| f64::from(*b) / 255.0 - 0.5)
                .collect();
            json!({"object": "embedding", "index": index, "embedding": vector})
        })
        .collect();
    axum::Json(json!({"object": "list", "model": model, "data": data,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_deterministic_and_capped() {
        assert_eq!(answer("hello"), answer("hello"));
        assert_ne!(answer("hello"), answer("hello!"));
        let (full, cut) = answer_tokens("hello", None);
        assert!(!cut);
        assert_eq!(full.concat(), answer("hello"));
        assert_eq!(full.len() as u64, TOKENIZER.count(&answer("hello")));
        let (five, cut) = answer_tokens("hello", Some(5));
        assert!(cut);
        assert_eq!(five.len(), 5);
        assert_eq!(TOKENIZER.count(&five.concat()), 5);
    }
}
