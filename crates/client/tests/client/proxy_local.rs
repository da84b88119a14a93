//! The local proxy on real loopback HTTP with real proofs and a real journal, for what
//! needs no gateway answer: requests refused before a ticket is spent, a gateway that
//! is down (nothing sent, index free again), and a gateway that takes the request and
//! never answers (ticket kept, never reused; other requests get 429 while the only
//! note is busy). The full path against the real gateway is in `proxy_e2e.rs`.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use zkcredits_client::gateway_client::{GatewayClient, GatewayClientConfig, RequestRules};
use zkcredits_client::journal::{DepositInfo, Journal, NoteStatus};
use zkcredits_client::payer::{Payer, PayerConfig};
use zkcredits_client::proxy::{ProxyConfig, serve_proxy};
use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::{Spender, SpenderConfig, TreeView};
use zkcredits_protocol::Fr;
use zkcredits_protocol::merkle::LeanImt;
use zkcredits_protocol::note;

const DEPOSIT: u64 = 20_000;

fn deposit_offline(dir: &Path, notes: u64) -> LeanImt {
    let wallet = common::wallet();
    let seed = wallet.seed();
    let mut tree = LeanImt::new();
    tree.push(Fr::from(77u64)).unwrap();
    let mut journal = Journal::open(
        &dir.join("notes.sqlite"),
        wallet.storage_key(StoragePurpose::Journal),
    )
    .unwrap();
    for j in journal.reserve_notes(notes).unwrap() {
        let id = seed.note_secret(j).id();
        let leaf_index = tree
            .push(note::leaf(
                id,
                zkcredits_protocol::credits::Credits::new(DEPOSIT),
                40,
            ))
            .unwrap();
        journal
            .record_deposit(
                j,
                &DepositInfo {
                    id,
                    deposit: zkcredits_protocol::credits::Credits::new(DEPOSIT),
                    expiry_epoch: 40,
                    leaf_index,
                    tx_hash: [9; 32],
                },
            )
            .unwrap();
    }
    tree
}

async fn spender(dir: &Path, tree: &LeanImt) -> Arc<Spender> {
    let deployment = common::offline_deployment();
    Arc::new(
        Spender::new(
            &common::wallet(),
            SpenderConfig {
                journal_path: dir.join("notes.sqlite"),
                precompute_dir: None,
                gateway: common::gateway_constants(&deployment),
                deployment,
                prover: common::prover(),
                tree: TreeView::fixed(tree.clone()),
                server_key_check: zkcredits_client::ServerKeyCheck::UncheckedNoChain,
            },
        )
        .await
        .unwrap(),
    )
}

fn ticket_rows(dir: &Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("notes.sqlite")).unwrap();
    conn.query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get(0))
        .unwrap()
}

/// Starts the proxy for `spender` paying the gateway at `gateway`; returns its address.
async fn start_proxy(
    spender: Arc<Spender>,
    gateway: SocketAddr,
    models: Option<Vec<String>>,
    check_note_positions: bool,
) -> SocketAddr {
    let mut config = GatewayClientConfig::new(format!("http://{gateway}"));
    config.read_timeout = Duration::from_secs(2);
    config.short_timeout = Duration::from_secs(1);
    let payer = Payer::new(
        spender,
        GatewayClient::new(&config).unwrap(),
        PayerConfig {
            retry_delays: vec![],
            check_note_positions,
            ..PayerConfig::default()
        },
    );
    let payer = match &models {
        Some(models) => payer.with_rules(rules_for(models)),
        None => payer,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let proxy = ProxyConfig {
        models,
        ..ProxyConfig::default()
    };
    tokio::spawn(serve_proxy(
        listener,
        proxy,
        payer,
        std::future::pending::<()>(),
    ));
    addr
}

/// Published rules serving `models` at `/v1` and JSON-RPC at `/rpc`.
fn rules_for(models: &[String]) -> RequestRules {
    use zkcredits_api::meter::{ModelPrice, Tokenizer};
    use zkcredits_api::prices::{Endpoint, JsonRpcPrices, OpenAiPrices, RoutePrices};
    let price = ModelPrice {
        input_per_1k: Some(1),
        output_per_1k: Some(1),
    };
    RequestRules {
        prices: [
            (
                "/v1".to_owned(),
                RoutePrices::Openai(OpenAiPrices::new(
                    Tokenizer::Cl100kBase,
                    Endpoint::ALL.to_vec(),
                    0,
                    models.iter().map(|m| (m.clone(), price)).collect(),
                )),
            ),
            (
                "/rpc".to_owned(),
                RoutePrices::Jsonrpc(JsonRpcPrices::new(
                    [("eth_chainId".to_owned(), 1)].into(),
                    None,
                    100,
                )),
            ),
        ]
        .into(),
        body_limit: Some(1 << 20),
    }
}

/// A loopback port where nothing listens.
async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

async fn post(proxy: SocketAddr, path: &str, body: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{proxy}{path}"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-app-key-that-must-not-leave")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

fn code(body: &serde_json::Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_gateway_cannot_take_are_refused_before_a_ticket_is_spent() {
    let dir = tempfile::tempdir().unwrap();
    let tree = deposit_offline(dir.path(), 1);
    let s = spender(dir.path(), &tree).await;
    let proxy = start_proxy(
        s.clone(),
        closed_port().await,
        Some(vec!["m1".into()]),
        true,
    )
    .await;

    let (status, body) = post(proxy, "/v1/chat/completions", "{not json").await;
    assert_eq!((status, code(&body)), (400, "invalid_body"));
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let (status, body) = post(proxy, "/v1/chat/completions", r#"{"model":"m2"}"#).await;
    assert_eq!((status, code(&body)), (404, "unknown_model"));
    let (status, body) = post(proxy, "/v1/chat/completions", r#"{"model":"m1"}"#).await;
    assert_eq!((status, code(&body)), (400, "invalid_body"));
    let (status, body) = post(
        proxy,
        "/rpc",
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_call"}"#,
    )
    .await;
    assert_eq!((status, code(&body)), (400, "method_not_priced"));
    let (status, body) = post(proxy, "/rpc", "[1,").await;
    assert_eq!((status, code(&body)), (400, "invalid_body"));
    let (status, body) = post(proxy, "/v1/images/generations", "{}").await;
    assert_eq!((status, code(&body)), (404, "unknown_route"));

    // /v1/models is answered from the discovery document, for free.
    let models: serde_json::Value = reqwest::get(format!("http://{proxy}/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "m1");

    assert_eq!(ticket_rows(dir.path()), 0);
    let notes = s.notes().await.unwrap();
    assert_eq!(
        (notes[0].status, notes[0].next_index),
        (NoteStatus::Free, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_is_down_gets_a_clear_error_and_the_index_stays_free() {
    let dir = tempfile::tempdir().unwrap();
    let tree = deposit_offline(dir.path(), 1);
    let s = spender(dir.path(), &tree).await;
    let proxy = start_proxy(s.clone(), closed_port().await, None, true).await;

    for _ in 0..2 {
        let (status, body) = post(proxy, "/v1/chat/completions", r#"{"model":"m"}"#).await;
        assert_eq!((status, code(&body)), (502, "gateway_unreachable"));
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nothing was sent")
        );
        // The credential never left: the ticket is forgotten and the note is free at
        // the same index.
        let notes = s.notes().await.unwrap();
        assert_eq!(
            (notes[0].status, notes[0].next_index),
            (NoteStatus::Free, 0)
        );
        assert_eq!(ticket_rows(dir.path()), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_never_answers_keeps_the_ticket_and_busy_notes_get_429() {
    let dir = tempfile::tempdir().unwrap();
    let tree = deposit_offline(dir.path(), 1);
    let s = spender(dir.path(), &tree).await;
    // A server that reads requests and never answers (a hung gateway).
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut sock, _) = hung.accept().await.unwrap();
            let seen = seen_tx.clone();
            held.push(tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 65536];
                let mut all = Vec::new();
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    all.extend_from_slice(&buf[..n]);
                    if all.windows(4).any(|w| w == b"\r\n\r\n") {
                        let _ = seen.send(all.clone());
                    }
                }
            }));
        }
    });
    // A hung gateway would hang the position check's receipt look-up too (a 504 before
    // anything is sent); this test is about the paid request itself.
    let proxy = start_proxy(s.clone(), hung_addr, None, false).await;

    let first = tokio::spawn(post(proxy, "/v1/chat/completions", r#"{"model":"m"}"#));
    // The gateway has the request (so the credential left): the only note is busy.
    let request = seen_rx.recv().await.unwrap();
    let text = String::from_utf8_lossy(&request).to_lowercase();
    assert!(text.contains("authorization: zkcredit "));
    assert!(!text.contains("sk-app-key"), "the app's key must not leave");
    let (status, body) = post(proxy, "/v1/chat/completions", r#"{"model":"m"}"#).await;
    assert_eq!((status, code(&body)), (429, "all_notes_busy"));
    assert_eq!(body["error"]["type"], "rate_limit_error");

    let (status, body) = first.await.unwrap();
    assert_eq!((status, code(&body)), (504, "gateway_answer_lost"));
    // The ticket is kept in flight while this process collects its receipt in the
    // background: a recovery leaves it to that task.
    let notes = s.notes().await.unwrap();
    assert_eq!(
        (notes[0].status, notes[0].next_index),
        (NoteStatus::InFlight, 0)
    );
    let report = s
        .recover(|_| async {
            Err(zkcredits_client::ClientError::ReceiptFetch(
                zkcredits_client::gateway_client::GatewayError::Unexpected("unreachable".into()),
            ))
        })
        .await
        .unwrap();
    assert_eq!((report.unreachable, report.skipped_live), (0, 1));
    assert_eq!(ticket_rows(dir.path()), 1);
    let (status, body) = post(proxy, "/v1/chat/completions", r#"{"model":"m"}"#).await;
    assert_eq!((status, code(&body)), (429, "all_notes_busy"));
    assert_eq!(ticket_rows(dir.path()), 1);
}
