//! The upstream adapters and the policies against real servers on loopback: the
//! deterministic dev LLM (`zkcredits_gateway::dev_llm`), a real anvil for JSON-RPC, and a
//! small moderation server of the test's own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use zkcredits_protocol::credits::Credits;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Method, StatusCode};
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zkcredits_gateway::dev_llm::{self, spawn_dev_llm};
use zkcredits_gateway::policy::Verdict;
use zkcredits_gateway::policy::config::PolicyConfig;
use zkcredits_gateway::upstream::jsonrpc::{JsonRpcConfig, JsonRpcUpstream};
use zkcredits_gateway::upstream::openai::meter::{self, ModelPrice, Rates, Tokenizer};
use zkcredits_gateway::upstream::openai::{OpenAiConfig, OpenAiUpstream};
use zkcredits_gateway::upstream::{PaidRequest, Refusal, Upstream, UpstreamError, UpstreamReply};

const C_MAX: u64 = 1_000;
/// dev-model: 1 credit unit per input token, 2 per output token.
const RATES: Rates = Rates {
    input: 1_000,
    output: 2_000,
};

fn price(input: u64, output: u64) -> ModelPrice {
    ModelPrice {
        input_per_1k: Some(input),
        output_per_1k: Some(output),
    }
}

fn config(addr: SocketAddr) -> OpenAiConfig {
    let mut models = BTreeMap::new();
    for m in ["dev-model", "dev-cut", "dev-error", "dev-slow"] {
        models.insert(m.to_owned(), price(RATES.input, RATES.output));
    }
    models.insert(
        "embed-only".to_owned(),
        ModelPrice {
            input_per_1k: Some(500),
            output_per_1k: None,
        },
    );
    toml_free_config(addr, models)
}

fn toml_free_config(addr: SocketAddr, models: BTreeMap<String, ModelPrice>) -> OpenAiConfig {
    let text = json!({
        "base_url": format!("http://{addr}/v1"),
        "api_key": "sk-test",
        "timeout_ms": 10_000,
        "models_price": 3,
        "models": models,
    });
    serde_json::from_value(text).unwrap()
}

async fn dev() -> (SocketAddr, OpenAiUpstream) {
    let (addr, _task) = spawn_dev_llm("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (addr, OpenAiUpstream::new(config(addr), C_MAX).unwrap())
}

fn post(path: &str, body: &Value) -> PaidRequest {
    PaidRequest {
        method: Method::POST,
        path_and_query: path.to_owned(),
        headers: HeaderMap::new(),
        body: Bytes::from(body.to_string()),
        c_max: zkcredits_protocol::credits::Credits::new(C_MAX),
    }
}

fn chat(model: &str, prompt: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt}]})
}

struct Done {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    cost: u64,
}

async fn complete(upstream: &dyn Upstream, request: PaidRequest) -> Done {
    upstream.prepare(&request).unwrap();
    match upstream.forward(request).await.unwrap() {
        UpstreamReply::Complete {
            status,
            headers,
            body,
            cost,
        } => Done {
            status,
            headers,
            body: serde_json::from_slice(&body).unwrap(),
            cost: cost.get(),
        },
        UpstreamReply::Stream { .. } => panic!("expected a complete answer"),
    }
}

struct Streamed {
    headers: HeaderMap,
    /// The `data:` payloads in the order relayed.
    data: Vec<String>,
    cost: u64,
}

async fn streamed(upstream: &dyn Upstream, request: PaidRequest) -> Streamed {
    upstream.prepare(&request).unwrap();
    match upstream.forward(request).await.unwrap() {
        UpstreamReply::Stream {
            status,
            headers,
            events,
            cost,
        } => {
            assert_eq!(status, StatusCode::OK);
            let frames: Vec<Bytes> = events.collect().await;
            let mut data = Vec::new();
            for frame in frames {
                let text = std::str::from_utf8(&frame).unwrap();
                assert!(text.ends_with("\n\n"), "one whole event per item: {text:?}");
                for line in text.lines().filter(|l| !l.is_empty()) {
                    data.push(line.strip_prefix("data: ").unwrap().to_owned());
                }
            }
            Streamed {
                headers,
                data,
                cost: cost.await.unwrap().get(),
            }
        }
        UpstreamReply::Complete { status, .. } => panic!("expected a stream, got {status}"),
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).unwrap().to_str().unwrap().to_owned()
}

fn expected_cost(body: &Value) -> u64 {
    let usage = &body["usage"];
    meter::price(
        RATES,
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap_or(0),
        C_MAX,
    )
}

fn content_of(data: &[String]) -> String {
    let mut text = String::new();
    for d in data {
        let v: Value = serde_json::from_str(d).unwrap();
        meter::collect_text(&v, &mut text);
    }
    text
}

#[tokio::test]
async fn plain_chat_is_capped_and_charged_from_usage() {
    let (_, upstream) = dev().await;
    let body = chat("dev-model", "What is a zk credit?");
    let estimate = meter::chat_prompt_tokens(Tokenizer::Cl100kBase, &body);
    let done = complete(&upstream, post("/v1/chat/completions", &body)).await;
    assert_eq!(done.status, StatusCode::OK);
    let answer = done.body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    assert_eq!(answer, dev_llm::answer("What is a zk credit?\n"));
    // The dev LLM counts like the adapter, so usage is what the adapter estimated.
    assert_eq!(done.body["usage"]["prompt_tokens"], estimate);
    let output = Tokenizer::Cl100kBase.count(answer);
    assert_eq!(done.cost, estimate + 2 * output);
    assert_eq!(done.cost, expected_cost(&done.body));
    // No cap of its own: the adapter set max_tokens to what fits C_max.
    let cap = (C_MAX - estimate) / 2;
    assert_eq!(
        header(&done.headers, "x-dev-llm-max-tokens"),
        cap.to_string()
    );
    assert_eq!(
        header(&done.headers, "x-dev-llm-max-completion-tokens"),
        "none"
    );
    assert_eq!(header(&done.headers, "x-dev-llm-auth"), "bearer");

    // A client cap above the budget is lowered; one below it is kept and honoured.
    let mut greedy = body.clone();
    greedy["max_completion_tokens"] = json!(1_000_000);
    let done = complete(&upstream, post("/v1/chat/completions", &greedy)).await;
    assert_eq!(
        header(&done.headers, "x-dev-llm-max-completion-tokens"),
        cap.to_string()
    );
    assert_eq!(header(&done.headers, "x-dev-llm-max-tokens"), "none");
    let mut modest = body.clone();
    modest["max_tokens"] = json!(3);
    let done = complete(&upstream, post("/v1/chat/completions", &modest)).await;
    assert_eq!(header(&done.headers, "x-dev-llm-max-tokens"), "3");
    assert_eq!(done.body["usage"]["completion_tokens"], 3);
    assert_eq!(done.cost, estimate + 6);

    // With n choices each one gets a share of the budget.
    let mut many = body.clone();
    many["n"] = json!(4);
    let done = complete(&upstream, post("/v1/chat/completions", &many)).await;
    assert_eq!(
        header(&done.headers, "x-dev-llm-max-tokens"),
        ((C_MAX - estimate) / 8).to_string()
    );
    assert!(done.cost <= C_MAX);
}

#[tokio::test]
async fn streamed_chat_relays_events_in_order_and_charges_usage() {
    let (_, upstream) = dev().await;
    let mut body = chat("dev-model", "Stream me an answer");
    let plain = complete(&upstream, post("/v1/chat/completions", &body)).await;
    body["stream"] = json!(true);

    // The client did not ask for usage: forced upstream, metered, not relayed.
    let s = streamed(&upstream, post("/v1/chat/completions", &body)).await;
    assert!(
        s.data.iter().all(|d| !d.contains("\"error\"")),
        "a finished stream carries no error event"
    );
    assert_eq!(header(&s.headers, "x-dev-llm-include-usage"), "true");
    assert!(s.data.iter().all(|d| d.trim() != "[DONE]"));
    assert!(s.data.iter().all(|d| !d.contains("\"usage\"")));
    assert_eq!(
        content_of(&s.data),
        plain.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
    );
    // role chunk + one per token + finish chunk
    let tokens = plain.body["usage"]["completion_tokens"].as_u64().unwrap();
    assert_eq!(s.data.len() as u64, tokens + 2);
    assert_eq!(s.cost, plain.cost);

    // The client asked for usage: the usage chunk is relayed and prices the request.
    body["stream_options"] = json!({"include_usage": true});
    let s = streamed(&upstream, post("/v1/chat/completions", &body)).await;
    let last: Value = serde_json::from_str(s.data.last().unwrap()).unwrap();
    assert_eq!(s.cost, expected_cost(&last));
    assert_eq!(s.cost, plain.cost);

    // Completions stream the same way.
    let completion = json!({"model": "dev-model", "prompt": "Once upon a time", "stream": true,
        "max_tokens": 5});
    let s = streamed(&upstream, post("/v1/completions", &completion)).await;
    assert_eq!(
        Tokenizer::Cl100kBase.count(&content_of(&s.data)),
        5,
        "the client's own cap is kept"
    );
    let estimate = Tokenizer::Cl100kBase.count("Once upon a time");
    assert_eq!(s.cost, estimate + 10);
}

#[tokio::test]
async fn stream_cut_midway_is_charged_for_what_was_relayed() {
    let (_, upstream) = dev().await;
    let body = json!({"model": "dev-cut", "stream": true,
        "messages": [{"role": "user", "content": "This answer will break"}]});
    let estimate = meter::chat_prompt_tokens(Tokenizer::Cl100kBase, &body);
    let s = streamed(&upstream, post("/v1/chat/completions", &body)).await;
    let relayed = content_of(&s.data);
    assert!(!relayed.is_empty(), "some events came before the cut");
    // The cut is said, in the OpenAI error shape SDKs raise on, as the last event.
    let last: Value = serde_json::from_str(s.data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_failed", "{last}");
    let full = dev_llm::answer("This answer will break\n");
    assert!(full.starts_with(&relayed) && relayed.len() < full.len());
    let counted = Tokenizer::Cl100kBase.count(&relayed);
    assert_eq!(s.cost, meter::price(RATES, estimate, counted, C_MAX));
    assert!(s.cost < estimate + 2 * Tokenizer::Cl100kBase.count(&full));
    assert!(s.cost <= C_MAX);
}

#[tokio::test]
async fn upstream_failures_are_errors() {
    let (addr, upstream) = dev().await;
    let err = upstream
        .forward(post("/v1/chat/completions", &chat("dev-error", "hi")))
        .await
        .err()
        .unwrap();
    assert!(matches!(
        err,
        UpstreamError::ServerError(StatusCode::INTERNAL_SERVER_ERROR)
    ));

    let mut quick = config(addr);
    quick.timeout_ms = 300;
    let quick = OpenAiUpstream::new(quick, C_MAX).unwrap();
    let err = quick
        .forward(post("/v1/chat/completions", &chat("dev-slow", "hi")))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, UpstreamError::Timeout(_)), "{err:?}");

    // Nobody listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gone = OpenAiUpstream::new(config(port), C_MAX).unwrap();
    let err = gone
        .forward(post("/v1/chat/completions", &chat("dev-model", "hi")))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, UpstreamError::Unreachable(_)), "{err:?}");
}

fn refused(upstream: &dyn Upstream, request: &PaidRequest) -> Refusal {
    upstream.prepare(request).err().unwrap()
}

#[tokio::test]
async fn prepare_refuses_what_cannot_be_served() {
    let (_, upstream) = dev().await;
    let e = refused(
        &upstream,
        &post("/v1/chat/completions", &chat("gpt-9", "hi")),
    );
    assert_eq!(
        (e.code.status(), e.code.as_str()),
        (StatusCode::NOT_FOUND, "unknown_model")
    );
    let e = refused(
        &upstream,
        &post("/v1/chat/completions", &chat("embed-only", "hi")),
    );
    assert_eq!(
        (e.code.status(), e.code.as_str()),
        (StatusCode::BAD_REQUEST, "missing_price")
    );
    // 1,000 credit units buy at most ~997 prompt tokens here: "hello " is one token.
    let long = "hello ".repeat(1_200);
    let e = refused(
        &upstream,
        &post("/v1/chat/completions", &chat("dev-model", &long)),
    );
    assert_eq!(
        (e.code.status(), e.code.as_str()),
        (StatusCode::BAD_REQUEST, "prompt_too_large")
    );
    // Just small enough for one output token: accepted.
    let fits = "hello ".repeat(990);
    let body = chat("dev-model", fits.trim_end());
    let estimate = meter::chat_prompt_tokens(Tokenizer::Cl100kBase, &body);
    assert!(estimate + 2 <= C_MAX);
    upstream
        .prepare(&post("/v1/chat/completions", &body))
        .unwrap();

    let mut bad = post("/v1/chat/completions", &json!({}));
    bad.body = Bytes::from_static(b"{not json");
    assert_eq!(refused(&upstream, &bad).code.as_str(), "invalid_body");
    let e = refused(
        &upstream,
        &post("/v1/chat/completions", &json!({"model": "dev-model"})),
    );
    assert_eq!(e.code.as_str(), "invalid_body");
    let e = refused(
        &upstream,
        &post("/v1/images/generations", &chat("dev-model", "hi")),
    );
    assert_eq!(
        (e.code.status(), e.code.as_str()),
        (StatusCode::NOT_FOUND, "unknown_route")
    );
    let mut get = post("/v1/chat/completions", &chat("dev-model", "hi"));
    get.method = Method::GET;
    assert_eq!(
        refused(&upstream, &get).code.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn embeddings_and_models() {
    let (_, upstream) = dev().await;
    let body = json!({"model": "embed-only", "input": ["alpha beta", "gamma"]});
    let done = complete(&upstream, post("/v1/embeddings", &body)).await;
    assert_eq!(done.body["data"].as_array().unwrap().len(), 2);
    let tokens = done.body["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(
        tokens,
        Tokenizer::Cl100kBase.count("alpha beta") + Tokenizer::Cl100kBase.count("gamma")
    );
    assert_eq!(done.cost, (tokens * 500).div_ceil(1000));

    let request = PaidRequest {
        method: Method::GET,
        path_and_query: "/v1/models".into(),
        headers: HeaderMap::new(),
        body: Bytes::new(),
        c_max: zkcredits_protocol::credits::Credits::new(C_MAX),
    };
    let done = complete(&upstream, request).await;
    assert_eq!(done.cost, 3);
    let ids: Vec<&str> = done.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    // Only priced models are listed (embed-only is priced but not served by the dev LLM).
    assert_eq!(ids, ["dev-model", "dev-cut", "dev-error", "dev-slow"]);
    let prices = serde_json::to_value(upstream.prices()).unwrap();
    assert_eq!(prices["models"]["dev-model"]["output_per_1k"], 2_000);
}

#[tokio::test]
async fn config_is_checked_and_parsed_from_toml() {
    let text = r#"
        base_url = "http://127.0.0.1:8000/v1"
        timeout_ms = 30000
        tokenizer = "o200k_base"
        endpoints = ["chat", "models"]
        [models."llama-3.1-8b"]
        input_per_1k = 100
        output_per_1k = 300
    "#;
    let config: OpenAiConfig = toml::from_str(text).unwrap();
    assert!(!format!("{config:?}").contains("sk-"));
    let upstream = OpenAiUpstream::new(config, C_MAX).unwrap();
    let e = refused(
        &upstream,
        &post(
            "/v1/embeddings",
            &json!({"model": "llama-3.1-8b", "input": "x"}),
        ),
    );
    assert_eq!(e.code.as_str(), "unknown_route");
    assert!(toml::from_str::<OpenAiConfig>("base_url = \"x\"\nmodels = {}\nbogus = 1").is_err());
    let empty: OpenAiConfig = toml::from_str("base_url = \"http://h/v1\"\nmodels = {}").unwrap();
    assert!(OpenAiUpstream::new(empty, C_MAX).is_err());
}

// ---- JSON-RPC against a real anvil ----

fn rpc(body: &Value, c_max: u64) -> PaidRequest {
    PaidRequest {
        c_max: zkcredits_protocol::credits::Credits::new(c_max),
        ..post("/", body)
    }
}

#[tokio::test]
async fn jsonrpc_against_anvil() {
    let anvil = zkcredits_chain::anvil::AnvilProcess::start_free()
        .await
        .unwrap();
    let config: JsonRpcConfig = toml::from_str(&format!(
        r#"
        url = "{}"
        timeout_ms = 10000
        [prices]
        eth_blockNumber = 1
        eth_chainId = 1
        eth_getBalance = 3
        eth_call = 5
        "#,
        anvil.url()
    ))
    .unwrap();
    let upstream = JsonRpcUpstream::new(config, 10).unwrap();

    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []});
    let done = complete(&upstream, rpc(&call, 10)).await;
    let chain_id = u64::from_str_radix(
        done.body["result"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    assert_eq!(chain_id, anvil.chain_id());
    assert_eq!(done.cost, 1);

    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []});
    let done = complete(&upstream, rpc(&call, 10)).await;
    assert!(done.body["result"].as_str().unwrap().starts_with("0x"));
    assert_eq!(done.cost, 1);

    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_getBalance",
         "params": ["0x0000000000000000000000000000000000000001", "latest"]},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_chainId", "params": []},
    ]);
    let done = complete(&upstream, rpc(&batch, 10)).await;
    assert_eq!(done.body.as_array().unwrap().len(), 3);
    assert_eq!(done.cost, 5);

    // An error object from the node still costs the price (it did the work).
    let bad = json!({"jsonrpc": "2.0", "id": 4, "method": "eth_getBalance", "params": ["nope"]});
    let done = complete(&upstream, rpc(&bad, 10)).await;
    assert!(done.body["error"].is_object());
    assert_eq!(done.cost, 3);

    let e = refused(&upstream, &rpc(&batch, 4));
    assert_eq!(
        (e.code.status(), e.code.as_str()),
        (StatusCode::BAD_REQUEST, "batch_over_c_max")
    );
    let unpriced = json!({"jsonrpc": "2.0", "id": 5, "method": "anvil_setBalance", "params": []});
    let e = refused(&upstream, &rpc(&unpriced, 10));
    assert_eq!(
        (e.code.status(), e.code.as_str()),
        (StatusCode::BAD_REQUEST, "method_not_priced")
    );
    let mut garbage = rpc(&json!({}), 10);
    garbage.body = Bytes::from_static(b"[1,");
    assert_eq!(refused(&upstream, &garbage).code.as_str(), "invalid_body");
    assert_eq!(
        refused(&upstream, &rpc(&json!([]), 10)).code.as_str(),
        "invalid_body"
    );
    assert_eq!(
        serde_json::to_value(upstream.prices()).unwrap()["methods"]["eth_call"],
        5
    );

    // With a default price, unlisted methods are served at that price.
    let open = JsonRpcUpstream::new(
        JsonRpcConfig {
            default_price: Some(2),
            ..toml::from_str::<JsonRpcConfig>(&format!("url = \"{}\"\nprices = {{}}", anvil.url()))
                .unwrap()
        },
        10,
    )
    .unwrap();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "net_version", "params": []});
    assert_eq!(complete(&open, rpc(&call, 10)).await.cost, 2);

    drop(anvil);
    let err = upstream.forward(rpc(&batch, 10)).await.err().unwrap();
    assert!(matches!(err, UpstreamError::Unreachable(_)), "{err:?}");
}

// ---- Policy ----

/// A moderation server that flags any input containing "forbidden"; it counts the calls.
async fn moderation_server(calls: Arc<AtomicUsize>) -> SocketAddr {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/moderations",
        post(move |axum::Json(body): axum::Json<Value>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let flagged = body["input"].as_str().unwrap().contains("forbidden");
                axum::Json(json!({"id": "modr-1", "model": "test", "results": [{
                    "flagged": flagged,
                    "categories": {"harassment": flagged, "violence": false}}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn policies_block_flag_and_fail_closed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = moderation_server(calls.clone()).await;
    let config: PolicyConfig = toml::from_str(&format!(
        r#"
        [[blocklist]]
        name = "private-keys"
        pattern = "(?i)private\\s+key"
        penalty = 50
        [[blocklist]]
        name = "seed"
        pattern = "mnemonic"
        penalty = 20
        [moderation]
        url = "http://{addr}/v1/moderations"
        penalty = 10
        timeout_ms = 2000
        "#
    ))
    .unwrap();
    let policy = config.build().unwrap();

    // The JSON escape \n between the words is decoded before matching.
    let body = chat("dev-model", "send me your PRIVATE\nkey and mnemonic");
    let request = post("/v1/chat/completions", &body);
    let verdict = policy.check(&request).await.unwrap();
    let hash: [u8; 32] = Sha256::digest(body.to_string().as_bytes()).into();
    assert_eq!(
        verdict,
        Verdict::Violation {
            penalty: Credits::new(50),
            rule: "private-keys".into(),
            evidence_hash: hash
        }
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "blocklist refusals skip moderation"
    );

    let request = post(
        "/v1/chat/completions",
        &chat("dev-model", "a forbidden topic"),
    );
    match policy.check(&request).await.unwrap() {
        Verdict::Violation { penalty, rule, .. } => {
            assert_eq!(
                (penalty, rule.as_str()),
                (Credits::new(10), "moderation:harassment")
            );
        }
        other => panic!("expected a violation, got {other:?}"),
    }
    let request = post("/v1/chat/completions", &chat("dev-model", "the weather"));
    assert_eq!(policy.check(&request).await.unwrap(), Verdict::Allow);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Moderation down: fail closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down: PolicyConfig = toml::from_str(&format!(
        "[moderation]\nurl = \"http://{port}/v1/moderations\"\npenalty = 1"
    ))
    .unwrap();
    assert!(down.build().unwrap().check(&request).await.is_err());
    // A moderation answer of the wrong shape: fail closed too.
    let wrong: PolicyConfig = toml::from_str(&format!(
        "[moderation]\nurl = \"http://{addr}/nowhere\"\npenalty = 1"
    ))
    .unwrap();
    assert!(wrong.build().unwrap().check(&request).await.is_err());

    // No policy allows everything; a bad pattern is refused at startup.
    let none = PolicyConfig::default().build().unwrap();
    assert_eq!(none.check(&request).await.unwrap(), Verdict::Allow);
    let bad: PolicyConfig =
        toml::from_str("[[blocklist]]\nname = \"x\"\npattern = \"(\"\npenalty = 1").unwrap();
    assert!(bad.build().is_err());
}

// ---- Metering properties ----

proptest! {
    #[test]
    fn cost_never_exceeds_c_max(
        input in any::<u64>(), output in any::<u64>(),
        rate_in in 0u64..10_000_000, rate_out in 0u64..10_000_000,
        c_max in 0u64..u64::MAX,
    ) {
        let rates = Rates { input: rate_in, output: rate_out };
        prop_assert!(meter::price(rates, input, output, c_max) <= c_max);
    }

    #[test]
    fn the_output_cap_keeps_the_worst_case_within_c_max(
        input in 0u64..100_000, choices in 1u64..8,
        rate_in in 0u64..100_000, rate_out in 1u64..100_000,
        c_max in 1u64..10_000_000,
    ) {
        let rates = Rates { input: rate_in, output: rate_out };
        let cap = meter::output_budget(rates, input, choices, c_max).unwrap();
        let budget = u128::from(c_max) * 1000;
        let spent = u128::from(input) * u128::from(rate_in);
        let per_step = u128::from(choices) * u128::from(rate_out);
        if spent > budget {
            prop_assert_eq!(cap, 0);
        } else {
            let worst = spent + u128::from(cap) * per_step;
            prop_assert!(worst <= budget);
            // ...and it is the largest such cap.
            prop_assert!(worst + per_step > budget);
            prop_assert!(meter::price(rates, input, cap * choices, u64::MAX) <= c_max);
        }
    }
}
