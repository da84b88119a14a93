//! The proxy against the real gateway on a real anvil chain: the async-openai SDK talks
//! to the proxy (plain and streaming chat), a JSON-RPC call goes through to anvil
//! itself, and every note balance moves exactly as the receipts say. Then a gateway
//! that publishes other constants is refused, and a gateway that is down gets a clear
//! error with nothing lost.
//!
//! The chat upstream is the gateway's real OpenAI adapter in front of the deterministic
//! dev LLM, so costs come from the answers' `usage` and the price table; the JSON-RPC
//! upstream is anvil behind the gateway's flat adapter.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, ChatCompletionStreamOptions,
    CreateChatCompletionRequestArgs,
};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use zkcredits_chain::testing::{TestChain, test_server_key};
use zkcredits_chain::{Indexer, IndexerConfig};
use zkcredits_client::gateway_client::{GatewayClient, GatewayClientConfig};
use zkcredits_client::journal::NoteStatus;
use zkcredits_client::payer::{Payer, PayerConfig};
use zkcredits_client::proxy::{ProxyConfig, serve_proxy};
use zkcredits_client::{ClientError, NoteSummary, Spender, SpenderConfig, TreeView};
use zkcredits_gateway::keys::ServerKeys;
use zkcredits_gateway::store::sqlite::SqliteStore;
use zkcredits_gateway::upstream::flat::{FlatConfig, FlatUpstream};
use zkcredits_gateway::upstream::openai::meter::{Rates, price};
use zkcredits_gateway::upstream::openai::{OpenAiConfig, OpenAiUpstream};
use zkcredits_gateway::{GatewayBuilder, RootsSource, Settings};

const DEPOSIT: u64 = 20_000;
/// The dev model's prices, credit units per 1,000 tokens.
const INPUT_PER_1K: u64 = 1_000;
const OUTPUT_PER_1K: u64 = 2_000;

/// What the gateway charges for `usage` (prompt, completion tokens) at the table above.
fn charged(usage: (u32, u32), c_max: u64) -> u64 {
    price(
        Rates {
            input: INPUT_PER_1K,
            output: OUTPUT_PER_1K,
        },
        u64::from(usage.0),
        u64::from(usage.1),
        c_max,
    )
}
const RPC_PRICE: u64 = 10;

fn note(notes: &[NoteSummary], j: u64) -> NoteSummary {
    notes.iter().find(|n| n.note == j).unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_pays_the_real_gateway() {
    let chain = TestChain::start().await.unwrap();
    let deployment = chain.deployment().clone();
    let c_max = deployment.constants.c_max.get();
    let dir = tempfile::tempdir().unwrap();
    let wallet = common::wallet();
    let journal_path = dir.path().join("notes.sqlite");
    common::deposit_into_journal(
        &chain,
        2,
        &wallet,
        &journal_path,
        zkcredits_protocol::credits::Credits::new(DEPOSIT),
        2,
    )
    .await;

    // The real gateway: SQLite store, roots from the chain, the test model under /v1
    // and anvil's JSON-RPC under /rpc.
    let vk = common::prover().keys().verifying_key().clone();
    let store = Arc::new(SqliteStore::open(dir.path().join("gateway.sqlite")).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let rpc = FlatUpstream::new(
        &FlatConfig {
            prefix: "/rpc".into(),
            base_url: deployment.rpc_url.clone(),
            price: RPC_PRICE,
            timeout_secs: Some(10),
        },
        c_max,
        Duration::from_secs(10),
    )
    .unwrap();
    let (llm, _llm_task) =
        zkcredits_gateway::dev_llm::spawn_dev_llm("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let chat: OpenAiConfig = toml::from_str(&format!(
        "base_url = \"http://{llm}/v1\"\n[models.dev-model]\ninput_per_1k = {INPUT_PER_1K}\noutput_per_1k = {OUTPUT_PER_1K}\n"
    ))
    .unwrap();
    let chat = OpenAiUpstream::new(chat, c_max).unwrap();
    let gateway = GatewayBuilder::new(
        deployment.clone(),
        vk.clone(),
        ServerKeys::new(1, test_server_key(), Vec::new()),
        store,
    )
    .settings(Settings {
        roots_poll: Duration::from_millis(200),
        ..Settings::default()
    })
    .route("/v1", Arc::new(chat))
    .route("/rpc", Arc::new(rpc))
    .roots(RootsSource::Chain(IndexerConfig::default()))
    .start(listener, shutdown.clone())
    .await
    .unwrap();
    let gateway_url = format!("http://{}", gateway.addr);

    // The provider registered the receipt key on the pool (the client checks it).
    common::accept_on_chain(&chain, &test_server_key()).await;

    // The client: discovery checked against the deployment, the spender, the proxy.
    let client = GatewayClient::new(&GatewayClientConfig::new(gateway_url.clone())).unwrap();
    let discovery = client.discover().await.unwrap();
    let indexer = Indexer::connect(
        &deployment,
        IndexerConfig {
            state_path: Some(dir.path().join("tree.bin")),
            ..IndexerConfig::default()
        },
    )
    .unwrap();
    let spender = Arc::new(
        Spender::new(
            &wallet,
            SpenderConfig {
                journal_path: journal_path.clone(),
                precompute_dir: None,
                gateway: discovery.constants.clone(),
                deployment: deployment.clone(),
                prover: common::prover(),
                tree: TreeView::from_indexer(indexer),
                server_key_check: zkcredits_client::ServerKeyCheck::Pool,
            },
        )
        .await
        .unwrap(),
    );
    spender.resync().await.unwrap();
    let models = discovery.rules.models();
    assert_eq!(models, Some(vec!["dev-model".to_owned()]));
    let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = proxy_listener.local_addr().unwrap();
    tokio::spawn(serve_proxy(
        proxy_listener,
        ProxyConfig {
            models,
            ..ProxyConfig::default()
        },
        Payer::new(spender.clone(), client.clone(), PayerConfig::default())
            .with_rules(discovery.rules.clone()),
        std::future::pending::<()>(),
    ));

    // Plain chat through the SDK.
    let sdk = Client::with_config(
        OpenAIConfig::new()
            .with_api_base(format!("http://{proxy}/v1"))
            .with_api_key("sk-local"),
    );
    let request = CreateChatCompletionRequestArgs::default()
        .model("dev-model")
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content("hi")
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap();
    let answer = sdk.chat().create(request.clone()).await.unwrap();
    let said = answer.choices[0]
        .message
        .content
        .clone()
        .unwrap_or_default();
    assert!(!said.is_empty(), "the dev LLM answered nothing");
    let usage = answer.usage.as_ref().expect("the dev LLM reports usage");
    let cost = charged((usage.prompt_tokens, usage.completion_tokens), c_max);
    assert!(cost > 0 && cost < c_max);
    let n0 = note(&spender.notes().await.unwrap(), 0);
    let refunds = c_max - cost;
    assert_eq!(
        (
            n0.status,
            n0.next_index,
            n0.refunds.get(),
            n0.penalties.get()
        ),
        (NoteStatus::Free, 1, refunds, 0)
    );
    assert_eq!(n0.remaining, i128::from(DEPOSIT + refunds - c_max));

    // Streaming chat: the deltas arrive, the receipt event does not reach the SDK, and
    // the note is settled when the stream ends.
    let mut stream_request = request.clone();
    stream_request.stream = Some(true);
    stream_request.stream_options = Some(ChatCompletionStreamOptions {
        include_usage: Some(true),
        include_obfuscation: None,
    });
    let mut stream = sdk.chat().create_stream(stream_request).await.unwrap();
    let mut text = String::new();
    let mut stream_usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if let Some(c) = chunk.choices.first().and_then(|c| c.delta.content.clone()) {
            text.push_str(&c);
        }
        if let Some(u) = chunk.usage {
            stream_usage = Some((u.prompt_tokens, u.completion_tokens));
        }
    }
    assert_eq!(text, said, "the stream says what the plain answer said");
    let stream_cost = charged(stream_usage.expect("usage was asked for"), c_max);
    let refunds = refunds + c_max - stream_cost;
    let n0 = note(&spender.notes().await.unwrap(), 0);
    assert_eq!(
        (n0.status, n0.next_index, n0.refunds.get()),
        (NoteStatus::Free, 2, refunds)
    );

    // JSON-RPC through the gateway to anvil.
    let http = reqwest::Client::new();
    let rpc_answer: serde_json::Value = http
        .post(format!("http://{proxy}/rpc"))
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":7,"method":"eth_chainId","params":[]}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rpc_answer["result"], format!("{:#x}", deployment.chain_id));
    let refunds = refunds + c_max - RPC_PRICE;
    let n0 = note(&spender.notes().await.unwrap(), 0);
    assert_eq!((n0.next_index, n0.refunds.get()), (3, refunds));
    // Note 1 was never needed.
    let n1 = note(&spender.notes().await.unwrap(), 1);
    assert_eq!((n1.status, n1.next_index), (NoteStatus::Free, 0));

    // A gateway whose constants differ from the deployment is refused before any proof.
    let mut other = deployment.clone();
    other.constants.c_max = zkcredits_protocol::credits::Credits::new(c_max + 1);
    let other_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_shutdown = CancellationToken::new();
    let other_gateway = GatewayBuilder::new(
        other,
        vk,
        ServerKeys::new(1, test_server_key(), Vec::new()),
        Arc::new(SqliteStore::open(dir.path().join("other.sqlite")).unwrap()),
    )
    .roots(RootsSource::Fixed(Vec::new()))
    .start(other_listener, other_shutdown.clone())
    .await
    .unwrap();
    let other_client = GatewayClient::new(&GatewayClientConfig::new(format!(
        "http://{}",
        other_gateway.addr
    )))
    .unwrap();
    let published = other_client.discover().await.unwrap();
    let err = published
        .constants
        .check(&deployment, common::prover().verifying_key_hash())
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::GatewayConstantsMismatch { what: "C_max", .. }
        ),
        "{err}"
    );
    assert_eq!(err.code(), "gateway_constants_mismatch");
    other_shutdown.cancel();
    other_gateway.wait().await.unwrap();

    // The gateway goes down: a clear error, and nothing is spent or lost.
    shutdown.cancel();
    gateway.wait().await.unwrap();
    let r = http
        .post(format!("http://{proxy}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(r#"{"model":"dev-model","messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "gateway_unreachable");
    let n0 = note(&spender.notes().await.unwrap(), 0);
    assert_eq!(
        (n0.status, n0.next_index, n0.refunds.get()),
        (NoteStatus::Free, 3, refunds)
    );
}
