//! The request path as a user's app and an operator meet it, against the real gateway on
//! a real anvil chain with real proofs (issue 15): bad requests cost no note, transient
//! refusals are retried with the same credential, a cut stream ends with an error the
//! OpenAI SDK raises and the note pays again without a restart, busy clients get no
//! 429, a redirecting gateway costs no note, and everything can go through SOCKS5.
//!
//! The gateway serves the dev LLM under `/v1` (its real OpenAI adapter) and anvil's
//! JSON-RPC under `/rpc` (its real JSON-RPC adapter, which does not price `eth_call`).

#![allow(clippy::unwrap_used)]

use crate::common;
use crate::common::net::{CutRelay, Socks5, redirector};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use zkcredits_chain::testing::{TestChain, test_server_key};
use zkcredits_chain::{Indexer, IndexerConfig};
use zkcredits_client::gateway_client::{
    Discovery, GatewayClient, GatewayClientConfig, GatewayError,
};
use zkcredits_client::journal::NoteStatus;
use zkcredits_client::payer::{Payer, PayerConfig};
use zkcredits_client::proxy::{ProxyConfig, serve_proxy};
use zkcredits_client::{NoteSummary, Spender, SpenderConfig, TreeView};
use zkcredits_gateway::keys::ServerKeys;
use zkcredits_gateway::store::sqlite::SqliteStore;
use zkcredits_gateway::upstream::jsonrpc::{JsonRpcConfig, JsonRpcUpstream};
use zkcredits_gateway::upstream::openai::{OpenAiConfig, OpenAiUpstream};
use zkcredits_gateway::{GatewayBuilder, RootsSource, Settings};

const DEPOSIT: u64 = 20_000;

/// A real gateway on a real chain, and a wallet's notes on it.
struct Stack {
    _chain: TestChain,
    dir: tempfile::TempDir,
    gateway: SocketAddr,
    shutdown: CancellationToken,
    spender: Arc<Spender>,
    discovery: Discovery,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn stack(notes: u64, settings: Settings) -> Stack {
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
        notes,
    )
    .await;
    let (llm, _llm_task) =
        zkcredits_gateway::dev_llm::spawn_dev_llm("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    // `embed-only` has no output price, so chat cannot use it (`missing_price`).
    let chat: OpenAiConfig = toml::from_str(&format!(
        "base_url = \"http://{llm}/v1\"\n\
         [models.dev-model]\ninput_per_1k = 1000\noutput_per_1k = 2000\n\
         [models.dev-trickle]\ninput_per_1k = 1000\noutput_per_1k = 2000\n\
         [models.embed-only]\ninput_per_1k = 100\n"
    ))
    .unwrap();
    let rpc: JsonRpcConfig = toml::from_str(&format!(
        "url = \"{}\"\n[prices]\neth_chainId = 1\neth_blockNumber = 2\n",
        deployment.rpc_url
    ))
    .unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("gateway.sqlite")).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let gateway = GatewayBuilder::new(
        deployment.clone(),
        common::prover().keys().verifying_key().clone(),
        ServerKeys::new(1, test_server_key(), Vec::new()),
        store,
    )
    .settings(Settings {
        roots_poll: Duration::from_millis(200),
        ..settings
    })
    .route("/v1", Arc::new(OpenAiUpstream::new(chat, c_max).unwrap()))
    .route("/rpc", Arc::new(JsonRpcUpstream::new(rpc, c_max).unwrap()))
    .roots(RootsSource::Chain(IndexerConfig::default()))
    .start(listener, shutdown.clone())
    .await
    .unwrap();
    common::accept_on_chain(&chain, &test_server_key()).await;
    let client = GatewayClient::new(&GatewayClientConfig::new(format!(
        "http://{}",
        gateway.addr
    )))
    .unwrap();
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
                journal_path,
                precompute_dir: None,
                gateway: discovery.constants.clone(),
                deployment,
                prover: common::prover(),
                tree: TreeView::from_indexer(indexer),
                server_key_check: zkcredits_client::ServerKeyCheck::Pool,
            },
        )
        .await
        .unwrap(),
    );
    spender.resync().await.unwrap();
    Stack {
        _chain: chain,
        dir,
        gateway: gateway.addr,
        shutdown,
        spender,
        discovery,
    }
}

impl Stack {
    /// A proxy paying the gateway at `gateway` (the real one, or something in front).
    async fn proxy(&self, gateway: GatewayClientConfig, config: PayerConfig) -> SocketAddr {
        let payer = Payer::new(
            self.spender.clone(),
            GatewayClient::new(&gateway).unwrap(),
            config,
        )
        .with_rules(self.discovery.rules.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_proxy(
            listener,
            ProxyConfig {
                models: self.discovery.rules.models(),
                ..ProxyConfig::default()
            },
            payer,
            std::future::pending::<()>(),
        ));
        addr
    }

    fn direct(&self) -> GatewayClientConfig {
        GatewayClientConfig::new(format!("http://{}", self.gateway))
    }

    async fn notes(&self) -> Vec<NoteSummary> {
        self.spender.notes().await.unwrap()
    }

    fn ticket_rows(&self) -> i64 {
        let conn = rusqlite::Connection::open(self.dir.path().join("notes.sqlite")).unwrap();
        conn.query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get(0))
            .unwrap()
    }
}

const CHAT: &str = r#"{"model":"dev-model","messages":[{"role":"user","content":"hi"}]}"#;

async fn post(proxy: SocketAddr, path: &str, body: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{proxy}{path}"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// The same request sent straight to the gateway with a credential the gateway accepts
/// up to its adapter: what the gateway itself answers. A proof for other bytes would be
/// refused as `invalid_proof` only after the adapter's checks, which run first.
/// What the gateway itself answers to `body` on `path` sent with `throwaway`, the
/// credential of a request the gateway never sees: its share is for other bytes and its
/// proof does not verify for these, so nothing can be admitted. One throwaway serves
/// many refusals, since a refused request spends nothing.
async fn gateway_refusal(
    stack: &Stack,
    throwaway: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value, Option<String>) {
    let r = reqwest::Client::new()
        .post(format!("http://{}{path}", stack.gateway))
        .header("content-type", "application/json")
        .header("authorization", throwaway)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let receipt = r
        .headers()
        .get("zkcredit-receipt")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, r.json().await.unwrap(), receipt)
}

impl Stack {
    /// A well-formed credential with a recent root and the gateway's key whose proof is
    /// for bytes never sent: any request carrying it is refused (by the adapter, or as
    /// `invalid_proof`) and nothing is admitted.
    async fn throwaway_credential(&self) -> String {
        let ticket = self
            .spender
            .begin("POST", "/never-sent", b"{}")
            .await
            .unwrap();
        let authorization = ticket.authorization.clone();
        // This spender's index is now bound to /never-sent: release it as unsent, which
        // is true, so the note is not disturbed.
        self.spender.release_unsent(ticket).await.unwrap();
        authorization
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_gateway_would_refuse_are_refused_here_and_cost_no_note() {
    let stack = stack(1, Settings::default()).await;
    let proxy = stack.proxy(stack.direct(), PayerConfig::default()).await;
    let batch = {
        let calls = vec![r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#; 101];
        format!("[{}]", calls.join(","))
    };
    let bad: [(&str, String, u16, &str); 7] = [
        (
            "/rpc",
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_call","params":[]}"#.into(),
            400,
            "method_not_priced",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"dev-model","messages":[{"role":"user","content":"hi"}],"max_tokens":16.0}"#
                .into(),
            400,
            "invalid_body",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"dev-model","messages":[{"role":"user","content":"hi"}],"max_tokens":"ten"}"#
                .into(),
            400,
            "invalid_body",
        ),
        (
            "/v1/embeddings",
            r#"{"model":"embed-only","input":"hi","stream":true}"#.into(),
            400,
            "invalid_body",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"embed-only","messages":[{"role":"user","content":"hi"}]}"#.into(),
            400,
            "missing_price",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"dev-model"}"#.into(),
            400,
            "invalid_body",
        ),
        ("/rpc", batch, 400, "batch_too_large"),
    ];
    let throwaway = stack.throwaway_credential().await;
    for (path, body, status, code) in &bad {
        let (got, answer) = post(proxy, path, body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str().unwrap_or("")),
            (*status, *code),
            "{path} {body:.80}: {answer}"
        );
        // Exactly what the gateway answers for the same request, and the gateway
        // admitted nothing for it.
        let (g_status, g_answer, receipt) = gateway_refusal(&stack, &throwaway, path, body).await;
        assert_eq!(g_status, got, "{g_answer}");
        assert_eq!(g_answer["error"], answer["error"]);
        assert!(receipt.is_none());
        // Nothing was proven or journaled for the refused request.
        assert_eq!(stack.ticket_rows(), 0, "a ticket was journaled for {code}");
        let n = &stack.notes().await[0];
        assert_eq!((n.status, n.next_index), (NoteStatus::Free, 0), "{code}");
    }
    // The note pays for the next request.
    let (status, answer) = post(proxy, "/v1/chat/completions", CHAT).await;
    assert_eq!(status, 200, "{answer}");
    let n = &stack.notes().await[0];
    assert_eq!((n.status, n.next_index), (NoteStatus::Free, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_flooded_with_garbage_retires_no_honest_note() {
    // One verifier thread with a small queue: a flood of credentials that decode, name
    // a recent root and the gateway's key, but carry proofs for other bytes.
    let stack = stack(
        2,
        Settings {
            verify_threads: 1,
            verify_batch_max: 1,
            ..Settings::default()
        },
    )
    .await;
    let proxy = stack.proxy(stack.direct(), PayerConfig::default()).await;
    let garbage = stack.throwaway_credential().await;
    let stop = CancellationToken::new();
    let unavailable = Arc::new(AtomicUsize::new(0));
    let mut flooders = Vec::new();
    for i in 0..160 {
        let stop = stop.clone();
        let unavailable = Arc::clone(&unavailable);
        let garbage = garbage.clone();
        let url = format!("http://{}/v1/chat/completions", stack.gateway);
        flooders.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u64;
            while !stop.is_cancelled() {
                n += 1;
                let body = format!(
                    r#"{{"model":"dev-model","messages":[{{"role":"user","content":"flood {i} {n}"}}]}}"#
                );
                if let Ok(r) = http
                    .post(&url)
                    .header("authorization", &garbage)
                    .body(body)
                    .send()
                    .await
                    && r.status() == 503
                {
                    unavailable.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    // Honest requests while the flood runs; it stops after a while, as floods do, and
    // the proxy's retries of the same credential outlast it.
    let honest = tokio::spawn(async move {
        let mut answers = Vec::new();
        for _ in 0..4 {
            answers.push(post(proxy, "/v1/chat/completions", CHAT).await);
        }
        answers
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.cancel();
    for f in flooders {
        f.await.unwrap();
    }
    let answers = honest.await.unwrap();
    assert!(
        unavailable.load(Ordering::SeqCst) > 0,
        "the flood never filled the verifier queue; the test proves nothing"
    );
    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
    }
    for n in stack.notes().await {
        assert!(
            !matches!(n.status, NoteStatus::NeedsClose { .. }),
            "note {} was retired by the flood",
            n.note
        );
    }
    let paid: u64 = stack.notes().await.iter().map(|n| n.next_index).sum();
    assert_eq!(paid, 4);
}

/// A Python interpreter with the `openai` package (`scripts/test.sh` makes one in
/// `.demo/venv`, as the demo does).
fn python_with_openai() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("ZKCREDITS_TEST_PYTHON") {
        return p.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.demo/venv/bin/python");
    assert!(
        venv.exists(),
        "this test runs the openai Python SDK: run scripts/test.sh (it makes .demo/venv) or set ZKCREDITS_TEST_PYTHON to a python with `openai` installed"
    );
    venv
}

const SDK_STREAM: &str = r#"
import sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-local", max_retries=0)
chunks = 0
try:
    stream = client.chat.completions.create(
        model="dev-trickle", messages=[{"role": "user", "content": "hi"}],
        stream=True, max_tokens=400)
    for chunk in stream:
        chunks += 1
        if chunks == 5:
            print("STREAMING", flush=True)
except Exception as e:
    print("RAISED", type(e).__name__, str(e).replace("\n", " "), flush=True)
    sys.exit(3)
print("ENDED", chunks, flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_way_raises_in_the_openai_sdk_and_the_note_pays_again() {
    use tokio::io::AsyncBufReadExt;
    let stack = stack(1, Settings::default()).await;
    // The gateway's connection dies mid-stream, as when its process is killed.
    let relay = CutRelay::start(stack.gateway).await;
    let config = PayerConfig {
        owed_first_delay: Duration::from_millis(200),
        ..PayerConfig::default()
    };
    let proxy = stack
        .proxy(
            GatewayClientConfig::new(format!("http://{}", relay.addr)),
            config,
        )
        .await;
    let mut sdk = tokio::process::Command::new(python_with_openai())
        .arg("-c")
        .arg(SDK_STREAM)
        .arg(format!("http://{proxy}/v1"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(sdk.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert_eq!(first, "STREAMING", "{first}");
    relay.cut();
    let last = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let status = sdk.wait().await.unwrap();
    assert!(
        last.starts_with("RAISED"),
        "the SDK saw a clean end: {last}"
    );
    assert_eq!(status.code(), Some(3), "{last}");
    assert!(last.contains("cut"), "{last}");

    // Without a restart, the receipt comes back in the background and the note pays
    // again (the gateway metered what it relayed before the cut).
    let mut settled = None;
    for _ in 0..100 {
        let n = stack.notes().await[0].clone();
        if n.status == NoteStatus::Free {
            settled = Some(n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n = settled.expect("the note came back");
    assert_eq!(n.next_index, 1);
    assert!(
        n.refunds.get() > 0,
        "a cut stream is charged for what it relayed only"
    );
    let (status, answer) = post(proxy, "/v1/chat/completions", CHAT).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(stack.notes().await[0].next_index, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_client_sees_an_error_event_and_an_aborted_body() {
    let stack = stack(1, Settings::default()).await;
    let relay = CutRelay::start(stack.gateway).await;
    let proxy = stack
        .proxy(
            GatewayClientConfig::new(format!("http://{}", relay.addr)),
            PayerConfig::default(),
        )
        .await;
    let response = reqwest::Client::new()
        .post(format!("http://{proxy}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(r#"{"model":"dev-trickle","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":400}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut seen = Vec::new();
    let mut failed = false;
    let mut cut = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => {
                seen.extend_from_slice(&c);
                if !cut && seen.windows(6).filter(|w| w == b"data: ").count() >= 3 {
                    relay.cut();
                    cut = true;
                }
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(failed, "the body ended cleanly: {text}");
    assert!(text.contains(r#""code":"stream_cut""#), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_clients_on_four_notes_never_see_429() {
    let stack = stack(4, Settings::default()).await;
    let proxy = stack.proxy(stack.direct(), PayerConfig::default()).await;
    // 48 requests from four clients on four notes, half of them streamed: enough for
    // every note to be freed late several times over if a stream's end still held it
    // (each such request would be a 429).
    const PER_CLIENT: usize = 12;
    let mut clients = Vec::new();
    for c in 0..4 {
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut busy = 0;
            for i in 0..PER_CLIENT {
                // Half streamed: a stream's end is where the note used to be freed late.
                let stream = i % 2 == 0;
                let body = format!(
                    r#"{{"model":"dev-model","messages":[{{"role":"user","content":"client {c} request {i}"}}],"stream":{stream}}}"#
                );
                let r = http
                    .post(format!("http://{proxy}/v1/chat/completions"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                if status == 429 {
                    busy += 1;
                    continue;
                }
                assert_eq!(status, 200);
                if stream {
                    // As the OpenAI SDKs do: the answer is over at `data: [DONE]`, and
                    // the next request goes out without waiting for the body's end.
                    let mut body = r.bytes_stream();
                    let mut text = Vec::new();
                    while let Some(chunk) = body.next().await {
                        text.extend_from_slice(&chunk.unwrap());
                        if text.windows(12).any(|w| w == b"data: [DONE]") {
                            break;
                        }
                    }
                    let text = String::from_utf8_lossy(&text);
                    assert!(text.contains("data: [DONE]"), "{text}");
                } else {
                    r.bytes().await.unwrap();
                }
            }
            busy
        }));
    }
    let mut busy = 0;
    for c in clients {
        busy += c.await.unwrap();
    }
    assert_eq!(
        busy,
        0,
        "{busy} of {} requests got 429 all_notes_busy",
        4 * PER_CLIENT
    );
    let paid: u64 = stack.notes().await.iter().map(|n| n.next_index).sum();
    assert_eq!(paid, 4 * PER_CLIENT as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_gateway_costs_no_note() {
    let stack = stack(1, Settings::default()).await;
    // Where the redirect points: it must never see a request.
    let (elsewhere, elsewhere_hits) = redirector("http://127.0.0.1:9/".into()).await;
    let (redirecting, hits) = redirector(format!("http://{elsewhere}/")).await;

    // A gateway URL that redirects is found out at discovery, before any ticket.
    let client =
        GatewayClient::new(&GatewayClientConfig::new(format!("http://{redirecting}"))).unwrap();
    let e = client.discover().await.unwrap_err();
    assert!(matches!(e, GatewayError::Redirected { .. }), "{e}");
    assert_eq!(e.code(), "gateway_redirects");

    // A gateway that starts redirecting paid requests after the proxy started: the
    // request is not sent on, the note is not retired, and once the gateway answers
    // properly again the same credential gets its receipt and the note pays again.
    let switch = switchable(stack.gateway).await;
    let config = PayerConfig {
        retry_delays: vec![],
        owed_first_delay: Duration::from_millis(200),
        owed_max_delay: Duration::from_millis(400),
        ..PayerConfig::default()
    };
    let proxy = stack
        .proxy(
            GatewayClientConfig::new(format!("http://{}", switch.addr)),
            config,
        )
        .await;
    let (status, answer) = post(proxy, "/v1/chat/completions", CHAT).await;
    assert_eq!(status, 200, "{answer}");
    switch.to(redirecting);
    let (status, answer) = post(proxy, "/v1/chat/completions", CHAT).await;
    assert_eq!(status, 504, "{answer}");
    assert_eq!(answer["error"]["code"], "gateway_answer_lost");
    assert!(hits.load(Ordering::SeqCst) >= 2);
    assert_eq!(
        elsewhere_hits.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    let n = stack.notes().await[0].clone();
    assert_eq!(
        n.status,
        NoteStatus::InFlight,
        "the note was retired: {n:?}"
    );
    switch.to(stack.gateway);
    let mut back = false;
    for _ in 0..100 {
        if stack.notes().await[0].status == NoteStatus::Free {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the note never came back");
    assert_eq!(stack.notes().await[0].next_index, 2);
    let (status, answer) = post(proxy, "/v1/chat/completions", CHAT).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(stack.notes().await[0].next_index, 3);
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0);
}

/// A TCP relay to whatever `target` holds at the time a connection opens; [`Switch::to`]
/// also drops the connections open to the old target, so pooled connections do not
/// keep reaching it.
struct Switch {
    addr: SocketAddr,
    target: Arc<std::sync::Mutex<SocketAddr>>,
    relay: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Switch {
    fn to(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = target;
        for task in self.relay.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

async fn switchable(target: SocketAddr) -> Switch {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let target = Arc::new(std::sync::Mutex::new(target));
    let relay: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
    let (to, open) = (Arc::clone(&target), Arc::clone(&relay));
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = *to.lock().unwrap();
            let task = tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
            open.lock().unwrap().push(task);
        }
    });
    Switch {
        addr,
        target,
        relay,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_requests_receipts_and_discovery_go_through_socks5() {
    let stack = stack(1, Settings::default()).await;
    // The gateway is known by a name only the SOCKS5 server resolves (as a .onion
    // name is only resolved inside Tor): a request that bypassed the proxy could not
    // even find it.
    let name = "zkcreditsgatewaytestxyz.onion";
    let socks = Socks5::start(HashMap::from([(name.to_owned(), stack.gateway)])).await;
    let mut config = GatewayClientConfig::new(format!("http://{name}:{}", stack.gateway.port()));
    config.socks5 = Some(format!("socks5h://{}", socks.addr));
    let client = GatewayClient::new(&config).unwrap();
    let discovery = client.discover().await.unwrap();
    assert_eq!(discovery.constants, stack.discovery.constants);
    let before = socks.relayed.load(Ordering::SeqCst);
    assert!(before >= 1);

    let proxy = stack.proxy(config.clone(), PayerConfig::default()).await;
    let (status, answer) = post(proxy, "/v1/chat/completions", CHAT).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(
        proxy,
        "/rpc",
        r#"{"jsonrpc":"2.0","id":"app-7","method":"eth_chainId","params":[]}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], "app-7", "the app's id comes back");
    // A receipt fetched by nullifier goes through it too.
    let n = stack.notes().await[0].clone();
    assert_eq!(n.next_index, 2);
    let missing =
        zkcredits_protocol::rln::Nullifier::from_field(zkcredits_protocol::Fr::from(1u64));
    assert_eq!(client.receipt(missing).await.unwrap(), None);
    assert!(socks.relayed.load(Ordering::SeqCst) > before);

    // Without the SOCKS5 server the name does not resolve: nothing went direct.
    let direct = GatewayClient::new(&GatewayClientConfig {
        socks5: None,
        allow_plain_http: true,
        ..config
    })
    .unwrap();
    assert!(matches!(
        direct.discover().await,
        Err(GatewayError::Connect { .. })
    ));
}

/// The document a running gateway serves, read as the gateway's type and parsed by the
/// client from the same bytes: every field arrives where the client keeps it, so a field
/// one side renames fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_the_gateway_serves_is_the_one_the_client_parses() {
    use zkcredits_client::gateway_client::DISCOVERY_PATH;
    use zkcredits_client::{GatewayConstants, ServerKey};
    use zkcredits_protocol::merkle::Root;

    let stack = stack(
        1,
        Settings {
            refund_granularity: zkcredits_protocol::credits::Credits::new(10),
            body_limit: 4096,
            ..Settings::default()
        },
    )
    .await;
    let body = reqwest::get(format!("http://{}{DISCOVERY_PATH}", stack.gateway))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let served: zkcredits_gateway::Discovery = serde_json::from_slice(&body).unwrap();
    let parsed = Discovery::parse(&body).unwrap();

    let key = |k: &zkcredits_gateway::DiscoveryKey| ServerKey {
        id: k.id,
        key: zkcredits_gateway::service::decode_key(k).unwrap(),
    };
    let vk_hash: [u8; 32] = hex::decode(served.verifying_key_hash.trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(
        parsed.constants,
        GatewayConstants {
            chain_id: served.chain_id,
            pool: served.pool,
            c_max: zkcredits_protocol::credits::Credits::new(served.c_max),
            p_max: zkcredits_protocol::credits::Credits::new(served.p_max),
            verifying_key_hash: Some(vk_hash),
            current_key: key(&served.current_key),
            accepted_keys: served.accepted_keys.iter().map(key).collect(),
            refund_granularity: Some(served.refund_granularity),
        }
    );
    assert_eq!(
        parsed.accepted_roots,
        served
            .accepted_roots
            .iter()
            .map(|r| r.parse::<Root>().unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(parsed.rules.prices, served.prices);
    assert_eq!(parsed.rules.body_limit, Some(served.body_limit));
    assert_eq!(parsed.protocol_version, served.protocol_version);
    assert_eq!(parsed.unit, served.unit);
    assert_eq!(parsed.deployment, served.deployment);
    assert_eq!(parsed.relay, served.relay);

    // And what was served is this gateway's: its settings, its key, its pool.
    assert_eq!((served.refund_granularity, served.body_limit), (10, 4096));
    assert_eq!(parsed.constants.current_key.id, 1);
    assert_eq!(
        parsed.constants.current_key.key,
        test_server_key().public_key()
    );
    assert_eq!(parsed.constants.pool, parsed.deployment.pool);
    assert!(parsed.deployment.rpc_url.is_empty());
    assert!(!parsed.accepted_roots.is_empty());
}
