//! The checks a paid request must pass before its ticket is spent: the route serves
//! it, the method and body are what the route takes, everything it asks for is priced,
//! and its worst case fits `C_max`.
//!
//! The gateway's adapters run them before verifying a proof (a refusal then stores no
//! nullifier); the client runs the very same functions on the published price table
//! before it proves, so that a request the gateway would refuse never carries a share
//! out of the client (`docs/GATEWAY.md`, "Refusals before admission").

use std::collections::BTreeMap;

use http::Method;
use serde_json::{Map, Value};

use crate::code::{Code, Refusal};
use crate::meter::{self, Rates};
use crate::prices::{Endpoint, JsonRpcPrices, OpenAiPrices, RoutePrices, route_for};

/// A request as it will be sent, byte for byte.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// Path and query.
    pub path_and_query: &'a str,
    /// The body.
    pub body: &'a [u8],
    /// The deployment's `C_max`.
    pub c_max: u64,
}

impl RequestView<'_> {
    fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or_default()
    }
}

/// Checks `request` against a whole published price table (route prefix -> prices) and
/// the gateway's body limit: what the gateway would refuse before admission.
pub fn check(
    prices: &BTreeMap<String, RoutePrices>,
    body_limit: Option<usize>,
    request: RequestView<'_>,
) -> Result<(), Refusal> {
    let path = request.path();
    let prefix = route_for(prices.keys().map(String::as_str), path).ok_or_else(|| {
        Refusal::new(
            Code::UnknownRoute,
            format!(
                "no paid route serves {path}; GET /.well-known/zkcredits lists the routes and prices"
            ),
        )
    })?;
    if let Some(limit) = body_limit
        && request.body.len() > limit
    {
        return Err(Refusal::new(
            Code::BodyTooLarge,
            format!("the request body exceeds {limit} bytes; send a smaller request"),
        ));
    }
    match &prices[prefix] {
        RoutePrices::Flat(flat) => flat_cost(flat.per_request, request.c_max).map(drop),
        RoutePrices::Openai(table) => plan_openai(table, request).map(drop),
        RoutePrices::Jsonrpc(table) => jsonrpc_cost(table, request).map(drop),
    }
}

/// A flat route's cost, if it fits `c_max`.
pub fn flat_cost(price: u64, c_max: u64) -> Result<u64, Refusal> {
    if price > c_max {
        return Err(Refusal::new(
            Code::PriceOverCMax,
            format!("this route costs {price} credit units, more than C_max {c_max}"),
        ));
    }
    Ok(price)
}

/// What [`plan_openai`] found out about a request: what the gateway needs to rewrite
/// and meter it.
#[derive(Clone, Debug)]
pub struct OpenAiPlan {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The parsed body (`None` for `GET /v1/models`).
    pub body: Option<Map<String, Value>>,
    /// The model's rates for this endpoint.
    pub rates: Rates,
    /// The estimated input.
    pub input_tokens: u64,
    /// Most output tokens per choice (`None`: output is free or there is none).
    pub output_cap: Option<u64>,
    /// Whether the answer is streamed.
    pub stream: bool,
}

/// An optional non-negative integer field of the body.
fn count_field(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, Refusal> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            Refusal::invalid_body(format!("`{key}` must be a non-negative integer"))
        }),
    }
}

fn openai_endpoint(table: &OpenAiPrices, request: &RequestView<'_>) -> Result<Endpoint, Refusal> {
    let path = request.path().trim_end_matches('/');
    let endpoint = Endpoint::ALL
        .into_iter()
        .find(|e| path.strip_prefix("/v1") == Some(e.path()))
        .filter(|e| table.endpoints.contains(e))
        .ok_or_else(|| {
            Refusal::new(
                Code::UnknownRoute,
                format!(
                    "{path} is not served here; the priced endpoints are listed under `prices` \
                     in GET /.well-known/zkcredits"
                ),
            )
        })?;
    if *request.method != endpoint.method() {
        return Err(Refusal::new(
            Code::MethodNotAllowed,
            format!("use {} for {path}", endpoint.method()),
        ));
    }
    Ok(endpoint)
}

/// Checks an OpenAI-compatible request: endpoint and method, a JSON object body with a
/// served model priced for the endpoint, well-typed counting fields, and an estimated
/// input that leaves room for at least one output token within `C_max`.
pub fn plan_openai(table: &OpenAiPrices, request: RequestView<'_>) -> Result<OpenAiPlan, Refusal> {
    let endpoint = openai_endpoint(table, &request)?;
    if endpoint == Endpoint::Models {
        return Ok(OpenAiPlan {
            endpoint,
            body: None,
            rates: Rates {
                input: 0,
                output: 0,
            },
            input_tokens: 0,
            output_cap: None,
            stream: false,
        });
    }
    let c_max = request.c_max;
    let body: Map<String, Value> = serde_json::from_slice(request.body)
        .map_err(|e| Refusal::invalid_body(format!("the body must be a JSON object: {e}")))?;
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::invalid_body("`model` (a string) is required"))?;
    let price = table.models.get(model).ok_or_else(|| {
        Refusal::new(
            Code::UnknownModel,
            format!("model {model:?} is not served here; GET /v1/models lists the models on offer"),
        )
    })?;
    let missing = || {
        Refusal::new(
            Code::MissingPrice,
            format!(
                "model {model:?} has no price for {}; use another model or endpoint",
                endpoint.name()
            ),
        )
    };
    let input_rate = price.input_per_1k.ok_or_else(missing)?;
    let output_rate = match endpoint {
        Endpoint::Embeddings => 0,
        _ => price.output_per_1k.ok_or_else(missing)?,
    };
    let rates = Rates {
        input: input_rate,
        output: output_rate,
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Refusal::invalid_body("`stream` must be a boolean")),
    };
    if stream && endpoint == Endpoint::Embeddings {
        return Err(Refusal::invalid_body("embeddings cannot be streamed"));
    }
    let n = count_field(&body, "n")?.unwrap_or(1);
    if n == 0 {
        return Err(Refusal::invalid_body("`n` must be at least 1"));
    }
    for key in ["max_tokens", "max_completion_tokens", "best_of"] {
        count_field(&body, key)?;
    }
    let tokenizer = table.tokenizer;
    let (input_tokens, prompts) = match endpoint {
        Endpoint::Chat => {
            if !body.get("messages").is_some_and(Value::is_array) {
                return Err(Refusal::invalid_body("`messages` (an array) is required"));
            }
            let whole = Value::Object(body.clone());
            (meter::chat_prompt_tokens(tokenizer, &whole), 1)
        }
        Endpoint::Completions | Endpoint::Embeddings => {
            let key = if endpoint == Endpoint::Embeddings {
                "input"
            } else {
                "prompt"
            };
            let field = body
                .get(key)
                .ok_or_else(|| Refusal::invalid_body(format!("`{key}` is required")))?;
            meter::prompt_tokens(tokenizer, field).ok_or_else(|| {
                Refusal::invalid_body(format!(
                    "`{key}` must be a string, an array of strings or an array of token ids"
                ))
            })?
        }
        Endpoint::Models => (0, 0),
    };
    let too_large = || {
        Refusal::new(
            Code::PromptTooLarge,
            format!(
                "the input (about {input_tokens} tokens) leaves no room for an answer within \
                 C_max = {c_max} credit units; shorten it, or ask for fewer choices"
            ),
        )
    };
    let output_cap = match endpoint {
        Endpoint::Embeddings => {
            if !meter::input_fits(rates, input_tokens, c_max) {
                return Err(too_large());
            }
            None
        }
        _ => {
            let best_of = count_field(&body, "best_of")?.unwrap_or(1);
            let choices = n.max(best_of).saturating_mul(prompts.max(1));
            match meter::output_budget(rates, input_tokens, choices, c_max) {
                Some(0) => return Err(too_large()),
                None if !meter::input_fits(rates, input_tokens, c_max) => {
                    return Err(too_large());
                }
                cap => cap,
            }
        }
    };
    Ok(OpenAiPlan {
        endpoint,
        body: Some(body),
        rates,
        input_tokens,
        output_cap,
        stream,
    })
}

fn method_price(table: &JsonRpcPrices, call: &Value) -> Result<u64, Refusal> {
    let method = call
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::invalid_body("every JSON-RPC call needs a string `method`"))?;
    table
        .methods
        .get(method)
        .copied()
        .or(table.default_price)
        .ok_or_else(|| {
            Refusal::new(
                Code::MethodNotPriced,
                format!(
                    "{method} is not offered here; the priced methods are listed under `prices` \
                     in GET /.well-known/zkcredits"
                ),
            )
        })
}

/// The price of a JSON-RPC request (the sum over a batch), checked against `C_max` and
/// the batch limit.
pub fn jsonrpc_cost(table: &JsonRpcPrices, request: RequestView<'_>) -> Result<u64, Refusal> {
    if *request.method != Method::POST {
        return Err(Refusal::new(
            Code::MethodNotAllowed,
            "JSON-RPC calls are sent with POST",
        ));
    }
    let c_max = request.c_max;
    let body: Value = serde_json::from_slice(request.body)
        .map_err(|e| Refusal::invalid_body(format!("the body is not JSON: {e}")))?;
    match &body {
        Value::Object(_) => {
            let price = method_price(table, &body)?;
            if price > c_max {
                return Err(Refusal::new(
                    Code::PriceOverCMax,
                    format!(
                        "this method costs {price} credit units, more than C_max = {c_max}; it \
                         cannot be paid with one ticket"
                    ),
                ));
            }
            Ok(price)
        }
        Value::Array(calls) => {
            if calls.is_empty() {
                return Err(Refusal::invalid_body(
                    "an empty batch is not a JSON-RPC request",
                ));
            }
            if calls.len() > table.max_batch {
                return Err(Refusal::new(
                    Code::BatchTooLarge,
                    format!(
                        "a batch may hold at most {} calls; split it",
                        table.max_batch
                    ),
                ));
            }
            let mut total: u64 = 0;
            for call in calls {
                if !call.is_object() {
                    return Err(Refusal::invalid_body(
                        "every batch entry must be a JSON-RPC call object",
                    ));
                }
                total = total.saturating_add(method_price(table, call)?);
            }
            if total > c_max {
                return Err(Refusal::new(
                    Code::BatchOverCMax,
                    format!(
                        "this batch costs {total} credit units, more than C_max = {c_max}; split \
                         it into several paid requests"
                    ),
                ));
            }
            Ok(total)
        }
        _ => Err(Refusal::invalid_body(
            "a JSON-RPC request is an object or an array of objects",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::{ModelPrice, Tokenizer};
    use crate::prices::FlatPrices;

    fn table() -> BTreeMap<String, RoutePrices> {
        let models = [
            (
                "m".to_owned(),
                ModelPrice {
                    input_per_1k: Some(1000),
                    output_per_1k: Some(2000),
                },
            ),
            (
                "embed-only".to_owned(),
                ModelPrice {
                    input_per_1k: Some(100),
                    output_per_1k: None,
                },
            ),
        ]
        .into();
        [
            (
                "/v1".to_owned(),
                RoutePrices::Openai(OpenAiPrices::new(
                    Tokenizer::Cl100kBase,
                    Endpoint::ALL.to_vec(),
                    0,
                    models,
                )),
            ),
            (
                "/rpc".to_owned(),
                RoutePrices::Jsonrpc(JsonRpcPrices::new(
                    [
                        ("eth_blockNumber".to_owned(), 1),
                        ("eth_call".to_owned(), 3),
                    ]
                    .into(),
                    None,
                    100,
                )),
            ),
            (
                "/api".to_owned(),
                RoutePrices::Flat(FlatPrices { per_request: 5 }),
            ),
        ]
        .into()
    }

    fn code_of(path: &str, body: &str) -> Option<Code> {
        check(
            &table(),
            Some(16_384),
            RequestView {
                method: &Method::POST,
                path_and_query: path,
                body: body.as_bytes(),
                c_max: 100,
            },
        )
        .err()
        .map(|e| e.code)
    }

    #[test]
    fn every_refusal_before_admission_has_its_code() {
        let chat = "/v1/chat/completions";
        let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
        assert_eq!(code_of(chat, &format!(r#"{{"model":"m",{msgs}}}"#)), None);
        assert_eq!(
            code_of(
                chat,
                &format!(r#"{{"model":"m",{msgs},"max_tokens":16.0}}"#)
            ),
            Some(Code::InvalidBody)
        );
        assert_eq!(
            code_of(
                chat,
                &format!(r#"{{"model":"m",{msgs},"max_tokens":"ten"}}"#)
            ),
            Some(Code::InvalidBody)
        );
        assert_eq!(code_of(chat, r#"{"model":"m"}"#), Some(Code::InvalidBody));
        assert_eq!(
            code_of(chat, &format!(r#"{{"model":"embed-only",{msgs}}}"#)),
            Some(Code::MissingPrice)
        );
        assert_eq!(
            code_of(chat, &format!(r#"{{"model":"other",{msgs}}}"#)),
            Some(Code::UnknownModel)
        );
        assert_eq!(
            code_of(
                "/v1/embeddings",
                r#"{"model":"embed-only","input":"x","stream":true}"#
            ),
            Some(Code::InvalidBody)
        );
        assert_eq!(
            code_of("/v1/embeddings", r#"{"model":"embed-only","input":"x"}"#),
            None
        );
        let long = "word ".repeat(200);
        assert_eq!(
            code_of(
                chat,
                &format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{long}"}}]}}"#)
            ),
            Some(Code::PromptTooLarge)
        );
        assert_eq!(code_of("/v2/x", "{}"), Some(Code::UnknownRoute));
        assert_eq!(
            code_of("/v1/images", r#"{"model":"m"}"#),
            Some(Code::UnknownRoute)
        );
        assert_eq!(
            code_of("/rpc", r#"{"jsonrpc":"2.0","id":1,"method":"eth_call"}"#),
            None
        );
        assert_eq!(
            code_of("/rpc", r#"{"jsonrpc":"2.0","id":1,"method":"eth_sign"}"#),
            Some(Code::MethodNotPriced)
        );
        let batch = |n: usize| {
            let calls = vec![r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}"#; n];
            format!("[{}]", calls.join(","))
        };
        assert_eq!(code_of("/rpc", &batch(100)), None);
        assert_eq!(code_of("/rpc", &batch(101)), Some(Code::BatchTooLarge));
        let expensive = vec![r#"{"jsonrpc":"2.0","id":1,"method":"eth_call"}"#; 34];
        assert_eq!(
            code_of("/rpc", &format!("[{}]", expensive.join(","))),
            Some(Code::BatchOverCMax)
        );
        assert_eq!(code_of("/rpc", "[]"), Some(Code::InvalidBody));
        assert_eq!(code_of("/api/anything", ""), None);
        assert_eq!(
            code_of("/api/x", &"a".repeat(20_000)),
            Some(Code::BodyTooLarge)
        );
        let get = check(
            &table(),
            None,
            RequestView {
                method: &Method::GET,
                path_and_query: "/rpc",
                body: b"",
                c_max: 100,
            },
        );
        assert_eq!(get.map_err(|e| e.code), Err(Code::MethodNotAllowed));
    }
}
