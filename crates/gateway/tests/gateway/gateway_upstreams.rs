//! The admission pipeline and the upstream adapters together: a gateway started from a
//! `gateway.toml` text (`GatewayConfig::parse` + `server::start`, the path a provider
//! takes) with `[openai]` in front of the dev LLM, `[jsonrpc]` in front of the anvil node
//! and a `[policy]` blocklist, driven over loopback HTTP with real proofs of a note
//! deposited on that anvil. Each test walks one note along its chain of tickets: every
//! receipt is checked as a client checks it and advances the note.
//! Needs `npm ci` in `contracts/` (anvil).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use zkcredits_chain::alloy::providers::Provider;
use zkcredits_chain::alloy::rpc::types::Filter;
use zkcredits_chain::alloy::sol_types::SolEvent;
use zkcredits_chain::bindings::ZkCreditsPool;
use zkcredits_chain::testing::{PROVIDER, test_server_key};
use zkcredits_gateway::RunningGateway;
use zkcredits_gateway::config::GatewayConfig;
use zkcredits_gateway::dev_llm::{self, spawn_dev_llm};
use zkcredits_gateway::upstream::openai::meter::{self, Rates, Tokenizer};
use zkcredits_protocol::eddsa::PrivateKey;
use zkcredits_protocol::merkle::LeanImt;
use zkcredits_protocol::state::{Limits, Receipt};
use zkcredits_protocol::{Fr, field};

/// Every dev LLM model's price: 1.5 credit units per prompt token, 2.5 per output token.
const RATES: Rates = Rates {
    input: 1_500,
    output: 2_500,
};
const CHAT: &str = "/v1/chat/completions";
const RPC: &str = "/rpc";
/// JSON-RPC prices per call.
const CHAIN_ID_PRICE: u64 = 7;
const BLOCK_NUMBER_PRICE: u64 = 11;
const BALANCE_PRICE: u64 = 600;
/// The blocklist: a rule with a penalty below `P_max`, one far above it.
const WORD_RULE: (&str, u64) = ("forbidden-word", 70);
const KEY_RULE: (&str, u64) = ("private-keys", 999_999);

/// A gateway started from TOML, with its files.
struct ConfiguredGateway {
    url: String,
    shutdown: CancellationToken,
    running: Option<RunningGateway>,
    _dir: tempfile::TempDir,
}

impl ConfiguredGateway {
    /// Writes the deployment and key files next to a `gateway.toml` text, parses it as the
    /// binary does and starts the gateway: OpenAI adapter in front of `llm`, JSON-RPC in
    /// front of the fixture's anvil, the blocklist, duties with short intervals.
    async fn start(fx: &Fixture, llm: SocketAddr, refund_granularity: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        fx.deployment()
            .save(&dir.path().join("deployment.json"))
            .unwrap();
        std::fs::write(
            dir.path().join("provider.key"),
            hex::encode(fx.chain.signer(PROVIDER).to_bytes()),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("receipt.key"),
            hex::encode(test_server_key().to_bytes()),
        )
        .unwrap();
        let models: String = ["dev-model", "dev-cut", "dev-error", "dev-trickle"]
            .iter()
            .map(|m| {
                format!(
                    "[openai.models.\"{m}\"]\ninput_per_1k = {}\noutput_per_1k = {}\n",
                    RATES.input, RATES.output
                )
            })
            .collect();
        let text = format!(
            r#"
listen = "127.0.0.1:0"
deployment = "deployment.json"
keys_dir = "{keys}"
store = "sqlite:gateway.db"

[provider]
key_file = "provider.key"

[server_keys]
current = {{ id = {KEY_ID}, file = "receipt.key" }}

[admission]
refund_granularity = {refund_granularity}
upstream_timeout_secs = 30

[chain]
roots_poll_ms = 200
slash_poll_ms = 100
slash_backoff_ms = 200
violation_batch = 1
violation_interval_secs = 0

[openai]
base_url = "http://{llm}/v1"
timeout_ms = 10000
{models}
[jsonrpc]
url = "{rpc}"
timeout_ms = 10000

[jsonrpc.prices]
eth_chainId = {CHAIN_ID_PRICE}
eth_blockNumber = {BLOCK_NUMBER_PRICE}
eth_getBalance = {BALANCE_PRICE}

[[policy.blocklist]]
name = "{word}"
pattern = '(?i)forbidden\s+word'
penalty = {word_penalty}

[[policy.blocklist]]
name = "{key}"
pattern = '(?i)private\s+key'
penalty = {key_penalty}
"#,
            keys = keys_dir().display(),
            rpc = fx.chain.url(),
            word = WORD_RULE.0,
            word_penalty = WORD_RULE.1,
            key = KEY_RULE.0,
            key_penalty = KEY_RULE.1,
        );
        let config = GatewayConfig::parse(&text, dir.path()).unwrap();
        let shutdown = CancellationToken::new();
        let running = zkcredits_gateway::start(config, shutdown.clone())
            .await
            .unwrap();
        Self {
            url: format!("http://{}", running.addr),
            shutdown,
            running: Some(running),
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(r) = self.running.take() {
            r.wait().await.unwrap();
        }
    }
}

/// What a test needs to spend its note's tickets one after the other.
struct Walk {
    fx: Fixture,
    tree: LeanImt,
    limits: Limits,
    server: PrivateKey,
    http: reqwest::Client,
    url: String,
}

impl Walk {
    /// A walk over the fixture's first note against the gateway at `url`.
    async fn new(fx: Fixture, url: &str) -> Self {
        Self {
            tree: fx.tree().await,
            limits: fx.limits(),
            fx,
            server: test_server_key(),
            http: reqwest::Client::new(),
            url: url.to_owned(),
        }
    }

    /// Proves a `POST path` with `body` on the note's next ticket.
    fn prove(&self, path: &str, body: &Value) -> Paid {
        let bytes = serde_json::to_vec(body).unwrap();
        self.fx.notes[0].prove(&self.tree, path, &bytes, self.limits, &self.server)
    }

    /// Checks `receipt` as the client does and moves the note to its next ticket.
    fn accept(&mut self, paid: &Paid, receipt: &Receipt) {
        self.fx.notes[0].accept(paid, receipt, &self.server);
    }

    async fn send(&self, paid: &Paid) -> (u16, Option<Receipt>, Value) {
        let (status, receipt, json) = send(&self.http, &self.url, paid).await;
        (status, receipt.as_deref().map(decode_receipt), json)
    }

    /// `GET /zkcredit/receipts/{N}`: the status, and the receipt when there is one.
    async fn stored_receipt(&self, paid: &Paid) -> (u16, Option<Receipt>) {
        let r = self
            .http
            .get(format!(
                "{}/zkcredit/receipts/{}",
                self.url,
                paid.nullifier_hex()
            ))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let json: Value = r.json().await.unwrap();
        (status, json["receipt"].as_str().map(decode_receipt))
    }

    /// `C_max - cost`, rounded down to `granularity`, as the gateway refunds.
    fn refund(&self, cost: u64, granularity: u64) -> u64 {
        assert!(cost <= self.limits.c_max.get(), "cost {cost} above C_max");
        let raw = self.limits.c_max.get() - cost;
        raw - raw % granularity
    }
}

fn chat(model: &str, prompt: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt}]})
}

fn streamed_chat(model: &str, prompt: &str) -> Value {
    let mut body = chat(model, prompt);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body
}

/// Cost of a `usage` object at [`RATES`], as METERING.md defines it.
fn usage_cost(usage: &Value, c_max: u64) -> u64 {
    meter::price(
        RATES,
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
        c_max,
    )
}

/// One server-sent event: its `event:` name (empty for a plain message) and its data.
#[derive(Debug)]
struct Sse {
    event: String,
    data: String,
}

/// Sends a paid streamed request; returns the status, the content type and the events.
async fn send_stream(walk: &Walk, paid: &Paid) -> (u16, String, Vec<Sse>) {
    let resp = walk
        .http
        .post(format!("{}{}", walk.url, paid.path))
        .header("authorization", &paid.authorization)
        .body(paid.body.clone())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        resp.headers().get("zkcredit-receipt").is_none(),
        "a stream's receipt comes at its end, not in a header"
    );
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("\n\n"), "the stream ends with a whole event");
    let events = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut sse = Sse {
                event: String::new(),
                data: String::new(),
            };
            for line in e.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    sse.event = name.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    if !sse.data.is_empty() {
                        sse.data.push('\n');
                    }
                    sse.data.push_str(d);
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            sse
        })
        .collect();
    (status, content_type, events)
}

/// Checks the stream's tail (exactly one receipt event, right before the one `[DONE]`,
/// which ends the stream) and returns the receipt and the upstream's events.
fn split_receipt(events: &[Sse]) -> (Receipt, &[Sse]) {
    let n = events.len();
    assert!(n >= 2, "{events:?}");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event == "zkcredit-receipt")
            .count(),
        1,
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| e.data == "[DONE]").count(),
        1,
        "{events:?}"
    );
    assert_eq!(events[n - 2].event, "zkcredit-receipt");
    assert_eq!(
        (events[n - 1].event.as_str(), events[n - 1].data.as_str()),
        ("", "[DONE]")
    );
    (decode_receipt(&events[n - 2].data), &events[..n - 2])
}

fn data_json(events: &[Sse]) -> Vec<Value> {
    events
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_route_meters_plain_streamed_cut_and_failed_chats_into_receipts() {
    const GRANULARITY: u64 = 10;
    let fx = Fixture::start(1, 20_000).await;
    let (llm, _llm_task) = spawn_dev_llm("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let gw = ConfiguredGateway::start(&fx, llm, GRANULARITY).await;
    let mut walk = Walk::new(fx, &gw.url).await;
    let c_max = walk.limits.c_max.get();

    // The discovery document publishes both adapters' price tables.
    let d: Value = walk
        .http
        .get(format!("{}/.well-known/zkcredits", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["prices"]["/v1"]["kind"], "openai", "{d}");
    assert_eq!(
        d["prices"]["/v1"]["models"]["dev-model"]["output_per_1k"],
        RATES.output
    );
    assert_eq!(d["prices"][RPC]["kind"], "jsonrpc", "{d}");

    // Ticket 0: a plain chat, charged from the upstream's usage.
    let prompt = "What does a zk credit buy?";
    let body = chat("dev-model", prompt);
    let paid = walk.prove(CHAT, &body);
    let resp = walk
        .http
        .post(format!("{}{CHAT}", gw.url))
        .header("authorization", &paid.authorization)
        .body(paid.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let header = |name: &str| resp.headers()[name].to_str().unwrap().to_owned();
    let receipt = decode_receipt(&header("zkcredit-receipt"));
    // The adapter capped the output at what fits C_max after the estimated prompt.
    let estimate = meter::chat_prompt_tokens(Tokenizer::Cl100kBase, &body);
    let cap = meter::output_budget(RATES, estimate, 1, c_max).unwrap();
    assert_eq!(header("x-dev-llm-max-tokens"), cap.to_string());
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        dev_llm::answer(&format!("{prompt}\n"))
    );
    let cost = usage_cost(&answer["usage"], c_max);
    assert!(
        cost > GRANULARITY,
        "a cost the rounding cannot hide: {cost}"
    );
    assert_eq!(
        (receipt.refund.get(), receipt.penalty.get()),
        (walk.refund(cost, GRANULARITY), 0)
    );
    assert_ne!(
        receipt.refund.get(),
        c_max - cost,
        "the refund is rounded down to the granularity"
    );
    walk.accept(&paid, &receipt);
    assert_eq!(walk.stored_receipt(&paid).await, (200, Some(receipt)));

    // Ticket 1: the same chat streamed; the receipt ends the stream.
    let body = streamed_chat("dev-model", "Stream me an answer.");
    let paid = walk.prove(CHAT, &body);
    let (status, content_type, events) = send_stream(&walk, &paid).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let (receipt, upstream) = split_receipt(&events);
    let chunks = data_json(upstream);
    let usage: Vec<&Value> = chunks
        .iter()
        .filter(|c| c["usage"].is_object())
        .map(|c| &c["usage"])
        .collect();
    assert_eq!(usage.len(), 1, "the client asked for usage: {chunks:?}");
    let mut text = String::new();
    for c in &chunks {
        meter::collect_text(c, &mut text);
    }
    assert_eq!(text, dev_llm::answer("Stream me an answer.\n"));
    assert_eq!(
        usage[0]["completion_tokens"],
        Tokenizer::Cl100kBase.count(&text)
    );
    let cost = usage_cost(usage[0], c_max);
    assert_eq!(
        (receipt.refund.get(), receipt.penalty.get()),
        (walk.refund(cost, GRANULARITY), 0)
    );
    walk.accept(&paid, &receipt);
    // The stream's receipt was stored before it was sent.
    assert_eq!(walk.stored_receipt(&paid).await, (200, Some(receipt)));

    // Ticket 2: a stream the upstream cuts half-way: no usage came, so the prompt
    // estimate plus the text actually relayed is charged, and still a receipt ends it.
    let prompt = "Cut me off.";
    let body = streamed_chat("dev-cut", prompt);
    let paid = walk.prove(CHAT, &body);
    let (status, _, events) = send_stream(&walk, &paid).await;
    assert_eq!(status, 200);
    let (receipt, upstream) = split_receipt(&events);
    let chunks = data_json(upstream);
    assert!(chunks.iter().all(|c| c["usage"].is_null()), "{chunks:?}");
    // The cut reaches the client as an error event before the receipt, never as a
    // finished answer.
    assert_eq!(
        chunks.last().unwrap()["error"]["code"],
        "upstream_failed",
        "{chunks:?}"
    );
    let mut text = String::new();
    for c in &chunks {
        meter::collect_text(c, &mut text);
    }
    let full = dev_llm::answer(&format!("{prompt}\n"));
    assert!(
        !text.is_empty() && text.len() < full.len() && full.starts_with(&text),
        "half of the answer was relayed: {text:?}"
    );
    let estimate = meter::chat_prompt_tokens(Tokenizer::Cl100kBase, &body);
    let cost = meter::price(RATES, estimate, Tokenizer::Cl100kBase.count(&text), c_max);
    assert!(cost <= c_max);
    assert_eq!(
        (receipt.refund.get(), receipt.penalty.get()),
        (walk.refund(cost, GRANULARITY), 0)
    );
    walk.accept(&paid, &receipt);

    // Ticket 3: the upstream fails: 502 and a receipt refunding all of C_max.
    let paid = walk.prove(CHAT, &chat("dev-error", "Fail, please."));
    let (status, receipt, json) = walk.send(&paid).await;
    assert_eq!((status, code(&json)), (502, "upstream_failed"), "{json}");
    let receipt = receipt.expect("a spent ticket always gets a receipt");
    assert_eq!((receipt.refund.get(), receipt.penalty.get()), (c_max, 0));
    walk.accept(&paid, &receipt);

    // Ticket 4, first try: a model not in the price table is refused before the ticket
    // is spent: no receipt, none stored, and the same ticket then serves another request
    // (a stored nullifier would make that a double spend).
    let refused = walk.prove(CHAT, &chat("no-such-model", "Hello?"));
    let (status, receipt, json) = walk.send(&refused).await;
    assert_eq!((status, code(&json)), (404, "unknown_model"), "{json}");
    assert!(receipt.is_none());
    assert_eq!(walk.stored_receipt(&refused).await, (404, None));
    let paid = walk.prove(CHAT, &chat("dev-model", "Hello?"));
    assert_eq!(paid.credential.nullifier, refused.credential.nullifier);
    let (status, receipt, json) = walk.send(&paid).await;
    assert_eq!(status, 200, "{json}");
    let receipt = receipt.unwrap();
    assert_eq!(
        receipt.refund.get(),
        walk.refund(usage_cost(&json["usage"], c_max), GRANULARITY)
    );
    walk.accept(&paid, &receipt);

    // Ticket 5: the client leaves a long stream after three tokens. The gateway stops
    // reading the upstream (which ends the generation) and charges what it relayed, not
    // the whole answer; the receipt, never sent, is fetched by nullifier.
    let body = streamed_chat("dev-trickle", "Take your time.");
    let estimate = meter::chat_prompt_tokens(Tokenizer::Cl100kBase, &body);
    let cap = meter::output_budget(RATES, estimate, 1, c_max).unwrap();
    let paid = walk.prove(CHAT, &body);
    let mut resp = walk
        .http
        .post(format!("{}{CHAT}", gw.url))
        .header("authorization", &paid.authorization)
        .body(paid.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut seen = String::new();
    while seen.matches("\"content\"").count() < 4 {
        let chunk = resp.chunk().await.unwrap().expect("the stream goes on");
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    drop(resp);
    let receipt = eventually("the left stream's receipt is stored", || {
        let walk = &walk;
        let paid = &paid;
        async move { walk.stored_receipt(paid).await.1 }
    })
    .await;
    let charged = c_max - receipt.refund.get();
    let whole = meter::price(RATES, estimate, cap, c_max);
    assert!(
        charged < meter::price(RATES, estimate, cap / 2, c_max),
        "charged {charged} for a stream left after three of its {cap} tokens (all: {whole})"
    );
    assert_eq!(receipt.penalty.get(), 0);
    walk.accept(&paid, &receipt);
    assert_eq!(walk.fx.notes[0].state.index, 6);
    gw.stop().await;
}

/// Polls `done` until it holds; a deadline keeps a broken duty from hanging the suite.
async fn eventually<F, Fut, T>(what: &str, mut done: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(t) = done().await {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jsonrpc_route_charges_its_price_table_and_policy_violations_reach_the_chain() {
    let fx = Fixture::start(1, 20_000).await;
    let (llm, _llm_task) = spawn_dev_llm("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let from_block = fx.chain.block_number().await.unwrap();
    let gw = ConfiguredGateway::start(&fx, llm, 1).await;
    let chain_id = fx.deployment().chain_id;
    let mut walk = Walk::new(fx, &gw.url).await;
    let limits = walk.limits;
    let c_max = limits.c_max.get();

    // Ticket 0: one call, answered by the node, charged its listed price.
    let paid = walk.prove(
        RPC,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}),
    );
    let (status, receipt, json) = walk.send(&paid).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["result"], format!("{chain_id:#x}"));
    let receipt = receipt.unwrap();
    assert_eq!(
        (receipt.refund.get(), receipt.penalty.get()),
        (c_max - CHAIN_ID_PRICE, 0)
    );
    walk.accept(&paid, &receipt);

    // Ticket 1: a batch costs the sum of its calls.
    let account = walk.fx.chain.address(2).to_string();
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": [account, "latest"]},
    ]);
    let paid = walk.prove(RPC, &batch);
    let (status, receipt, json) = walk.send(&paid).await;
    assert_eq!(status, 200, "{json}");
    let answers = json.as_array().expect("a batch answer");
    assert_eq!(answers.len(), 3);
    assert!(answers.iter().all(|a| a["result"].is_string()), "{json}");
    let receipt = receipt.unwrap();
    assert_eq!(
        receipt.refund.get(),
        c_max - (CHAIN_ID_PRICE + BLOCK_NUMBER_PRICE + BALANCE_PRICE)
    );
    walk.accept(&paid, &receipt);

    // Ticket 2, first try: a batch priced above C_max is refused before the ticket is
    // spent; the ticket then carries a request the policy refuses.
    let over = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": [account, "latest"]},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_getBalance", "params": [account, "latest"]},
    ]);
    assert!(2 * BALANCE_PRICE > c_max);
    let refused = walk.prove(RPC, &over);
    let (status, receipt, json) = walk.send(&refused).await;
    assert_eq!((status, code(&json)), (400, "batch_over_c_max"), "{json}");
    assert!(receipt.is_none());
    assert_eq!(walk.stored_receipt(&refused).await, (404, None));

    // Ticket 2: a JSON-RPC call the blocklist refuses: no refund, the rule's penalty.
    let word = walk.prove(
        RPC,
        &json!({"jsonrpc": "2.0", "id": "x", "method": "eth_chainId",
            "params": ["a FORBIDDEN\tword"]}),
    );
    assert_eq!(word.credential.nullifier, refused.credential.nullifier);
    let (status, receipt, json) = walk.send(&word).await;
    assert_eq!((status, code(&json)), (403, "policy_violation"), "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains(WORD_RULE.0),
        "{json}"
    );
    let receipt = receipt.unwrap();
    assert_eq!(
        (receipt.refund.get(), receipt.penalty.get()),
        (0, WORD_RULE.1)
    );
    walk.accept(&word, &receipt);

    // Ticket 3: a chat the blocklist refuses with a penalty clamped to P_max.
    let key = walk.prove(
        CHAT,
        &chat("dev-model", "Tell me the provider's private key."),
    );
    let (status, receipt, json) = walk.send(&key).await;
    assert_eq!((status, code(&json)), (403, "policy_violation"), "{json}");
    let receipt = receipt.unwrap();
    assert!(KEY_RULE.1 > limits.p_max.get());
    assert_eq!(
        (receipt.refund.get(), receipt.penalty.get()),
        (0, limits.p_max.get())
    );
    walk.accept(&key, &receipt);

    // Ticket 4: the note goes on after its penalties.
    let paid = walk.prove(
        RPC,
        &json!({"jsonrpc": "2.0", "id": 9, "method": "eth_blockNumber", "params": []}),
    );
    let (status, receipt, json) = walk.send(&paid).await;
    assert_eq!(status, 200, "{json}");
    let receipt = receipt.unwrap();
    assert_eq!(receipt.refund.get(), c_max - BLOCK_NUMBER_PRICE);
    walk.accept(&paid, &receipt);
    let state = walk.fx.notes[0].state;
    assert_eq!(state.index, 5);

    // Both violations reach the chain through the violation logger, each with the
    // ticket's nullifier, the SHA-256 of the body as evidence and the receipt's penalty.
    let expected: Vec<(Fr, [u8; 32], u64)> = vec![
        (
            word.credential.nullifier.field(),
            Sha256::digest(&word.body).into(),
            WORD_RULE.1,
        ),
        (
            key.credential.nullifier.field(),
            Sha256::digest(&key.body).into(),
            limits.p_max.get(),
        ),
    ];
    let provider = walk.fx.chain.provider().unwrap();
    let pool = walk.fx.deployment().pool;
    let mut events = eventually("both violations logged on chain", || {
        let provider = provider.clone();
        async move {
            let logs = provider
                .get_logs(
                    &Filter::new()
                        .address(pool)
                        .event_signature(ZkCreditsPool::ViolationRecorded::SIGNATURE_HASH)
                        .from_block(from_block),
                )
                .await
                .unwrap();
            let events: Vec<(Fr, [u8; 32], u64)> = logs
                .iter()
                .map(|l| {
                    let e = ZkCreditsPool::ViolationRecorded::decode_log_data(l.data()).unwrap();
                    (
                        zkcredits_chain::bindings::u256_to_fr(e.nullifier).unwrap(),
                        e.evidenceHash.0,
                        e.penalty,
                    )
                })
                .collect();
            (events.len() >= 2).then_some(events)
        }
    })
    .await;
    events.sort_by_key(|e| field::to_hex(&e.0));
    let mut expected = expected;
    expected.sort_by_key(|e| field::to_hex(&e.0));
    assert_eq!(events, expected);
    gw.stop().await;
}
