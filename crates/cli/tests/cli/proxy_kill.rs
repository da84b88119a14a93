//! `zkcredits proxy` killed with SIGKILL while a slow paid request is in flight, then
//! started again: the write-ahead journal recovers the ticket's receipt from the real
//! gateway, the ticket index is never reused, and the note's balance is exactly what the
//! receipts say.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio_util::sync::CancellationToken;
use zkcredits_chain::IndexerConfig;
use zkcredits_chain::testing::{TestChain, test_server_key};
use zkcredits_client::deposit::deposit_notes;
use zkcredits_client::home::ClientHome;
use zkcredits_client::journal::{Journal, NoteStatus};
use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::wallet::{KdfParams, Wallet};
use zkcredits_gateway::keys::ServerKeys;
use zkcredits_gateway::store::sqlite::SqliteStore;
use zkcredits_gateway::upstream::{PaidRequest, Refusal, Upstream, UpstreamError, UpstreamReply};
use zkcredits_gateway::{GatewayBuilder, RootsSource, Settings};

const MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
const PASSPHRASE: &str = "kill test passphrase";
const COST: u64 = 250;

/// A model that answers after `delay_ms` (from the body) and tells the test when a
/// request has reached it.
struct SlowModel {
    arrived: tokio::sync::mpsc::UnboundedSender<()>,
    /// A request sent with `"hold": true` is answered only once this is true: the test
    /// releases it after the proxy is dead, however slowly the machine proved the others.
    release: tokio::sync::watch::Receiver<bool>,
}

#[async_trait]
impl Upstream for SlowModel {
    fn prepare(&self, _request: &PaidRequest) -> Result<(), Refusal> {
        Ok(())
    }

    async fn forward(&self, request: PaidRequest) -> Result<UpstreamReply, UpstreamError> {
        let _ = self.arrived.send(());
        let v: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        if v["hold"].as_bool() == Some(true) {
            let mut release = self.release.clone();
            let _ = release.wait_for(|released| *released).await;
        }
        tokio::time::sleep(Duration::from_millis(v["delay_ms"].as_u64().unwrap_or(0))).await;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(UpstreamReply::Complete {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(br#"{"ok":true}"#),
            cost: zkcredits_protocol::credits::Credits::new(COST),
        })
    }

    fn prices(&self) -> zkcredits_api::prices::RoutePrices {
        zkcredits_api::prices::RoutePrices::Flat(zkcredits_api::prices::FlatPrices {
            per_request: COST,
        })
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test leaves
/// no proxy behind.
struct Killed(Child);

impl Killed {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `zkcredits proxy` and returns it with the address it listens on.
fn start_proxy(home: &Path, deployment: &Path, gateway: &str) -> (Killed, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_zkcredits"))
        .arg("--dev")
        .args(["proxy", "--listen", "127.0.0.1:0", "--gateway", gateway])
        .arg("--deployment")
        .arg(deployment)
        .args(["--recover-wait-secs", "15"])
        .env("ZKCREDITS_HOME", home)
        .env("ZKCREDITS_KEYS", common::keys_dir())
        .env("ZKCREDITS_PASSPHRASE", PASSPHRASE)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("the proxy exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split('/').next().unwrap().to_owned();
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return (child, addr);
        }
    }
}

fn note(
    home: &ClientHome,
    deployment: &zkcredits_chain::Deployment,
    j: u64,
) -> (NoteStatus, u64, u64) {
    let wallet = Wallet::from_mnemonic(MNEMONIC).unwrap();
    let journal = Journal::open(
        &home.journal(deployment),
        wallet.storage_key(StoragePurpose::Journal),
    )
    .unwrap();
    let n = journal.note(j).unwrap();
    (n.status, n.state.index, n.state.refunds.get())
}

fn note0(home: &ClientHome, deployment: &zkcredits_chain::Deployment) -> (NoteStatus, u64, u64) {
    note(home, deployment, 0)
}

/// A chain, and a user's home (wallet, deployment file, journal) holding `notes` notes
/// deposited on it.
async fn user_with_notes(
    notes: u64,
) -> (TestChain, tempfile::TempDir, ClientHome, std::path::PathBuf) {
    let chain = TestChain::start().await.unwrap();
    let deployment = chain.deployment().clone();
    let dir = tempfile::tempdir().unwrap();
    let home = ClientHome::new(dir.path().join("home"));
    std::fs::create_dir_all(home.dir()).unwrap();
    let deployment_path = dir.path().join("deployment.json");
    deployment.save(&deployment_path).unwrap();
    let wallet = Wallet::from_mnemonic(MNEMONIC).unwrap();
    wallet
        .save(&home.wallet(), PASSPHRASE, KdfParams::INSECURE_TEST, false)
        .unwrap();
    let pool = chain.client(2).await.unwrap();
    let mut journal = Journal::open(
        &home.journal(&deployment),
        wallet.storage_key(StoragePurpose::Journal),
    )
    .unwrap();
    deposit_notes(
        &pool,
        &mut journal,
        &wallet.seed(),
        zkcredits_protocol::credits::Credits::new(20_000),
        notes,
    )
    .await
    .unwrap();
    (chain, dir, home, deployment_path)
}

/// Polls `done` for up to 60 s.
async fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..600 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn post(proxy: &str, delay_ms: u64) -> (u16, serde_json::Value) {
    send_body(proxy, format!(r#"{{"delay_ms":{delay_ms}}}"#)).await
}

/// A request the slow model holds until the test releases it.
async fn post_held(proxy: &str) -> (u16, serde_json::Value) {
    send_body(proxy, r#"{"hold":true}"#.to_owned()).await
}

async fn send_body(proxy: &str, body: String) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{proxy}/rpc"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match r {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or_default()),
        Err(_) => (0, serde_json::Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_proxy_recovers_its_ticket_and_never_reuses_the_index() {
    let (chain, dir, home, deployment_path) = user_with_notes(1).await;
    let deployment = chain.deployment().clone();
    let c_max = deployment.constants.c_max.get();

    // The provider registered the receipt key on the pool (the client checks it).
    common::accept_test_key(&chain).await;
    let vk = zkcredits_circuits::keys::load_verifying_key(&common::keys_dir()).unwrap();
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let gateway = GatewayBuilder::new(
        deployment.clone(),
        vk,
        ServerKeys::new(1, test_server_key(), Vec::new()),
        Arc::new(SqliteStore::open(dir.path().join("gateway.sqlite")).unwrap()),
    )
    .settings(Settings {
        roots_poll: Duration::from_millis(200),
        ..Settings::default()
    })
    .route(
        "/rpc",
        Arc::new(SlowModel {
            arrived: arrived_tx,
            release: tokio::sync::watch::channel(true).1,
        }),
    )
    .roots(RootsSource::Chain(IndexerConfig::default()))
    .start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let gateway_url = format!("http://{}", gateway.addr);

    // A slow request reaches the gateway; the proxy is killed while it is in flight.
    let (mut child, proxy) = start_proxy(home.dir(), &deployment_path, &gateway_url);
    let slow = tokio::spawn({
        let proxy = proxy.clone();
        async move { post(&proxy, 3000).await }
    });
    arrived.recv().await.unwrap();
    child.kill();
    let (status, _) = slow.await.unwrap();
    assert_eq!(status, 0, "the application lost its answer with the proxy");
    assert_eq!(note0(&home, &deployment), (NoteStatus::InFlight, 0, 0));

    // Restarted, the proxy asks the gateway for the ticket's receipt. The gateway finishes
    // an admitted request even when its client hung up, so the receipt exists: the note
    // advances past index 0 with the refund, and the next request uses index 1.
    let (mut child, proxy) = start_proxy(home.dir(), &deployment_path, &gateway_url);
    // Recovery runs in the background once the proxy listens.
    let recovered =
        wait_for(|| note(&home, &deployment, 0) == (NoteStatus::Free, 1, c_max - COST)).await;
    assert!(
        recovered,
        "the killed request's receipt was not recovered: {:?}",
        note(&home, &deployment, 0)
    );
    let (status, body) = post(&proxy, 0).await;
    assert_eq!((status, &body), (200, &serde_json::json!({"ok": true})));
    assert_eq!(
        note0(&home, &deployment),
        (NoteStatus::Free, 2, 2 * (c_max - COST))
    );
    child.kill();
    shutdown.cancel();
    gateway.wait().await.unwrap();
}

/// Starts the test gateway (the slow model under `/rpc`) on `listener`.
async fn slow_gateway(
    deployment: &zkcredits_chain::Deployment,
    store: &Path,
    listener: tokio::net::TcpListener,
    arrived: tokio::sync::mpsc::UnboundedSender<()>,
    release: tokio::sync::watch::Receiver<bool>,
    shutdown: CancellationToken,
) -> zkcredits_gateway::RunningGateway {
    let vk = zkcredits_circuits::keys::load_verifying_key(&common::keys_dir()).unwrap();
    GatewayBuilder::new(
        deployment.clone(),
        vk,
        ServerKeys::new(1, test_server_key(), Vec::new()),
        Arc::new(SqliteStore::open(store).unwrap()),
    )
    .settings(Settings {
        roots_poll: Duration::from_millis(200),
        ..Settings::default()
    })
    .route("/rpc", Arc::new(SlowModel { arrived, release }))
    .roots(RootsSource::Chain(IndexerConfig::default()))
    .start(listener, shutdown)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_with_eight_lost_tickets_listens_at_once_and_recovers_them_in_the_background() {
    const NOTES: u64 = 8;
    let (chain, dir, home, deployment_path) = user_with_notes(NOTES).await;
    let deployment = chain.deployment().clone();
    let c_max = deployment.constants.c_max.get();
    common::accept_test_key(&chain).await;
    let store = dir.path().join("gateway.sqlite");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_addr = listener.local_addr().unwrap();
    let gateway_url = format!("http://{gateway_addr}");
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let (release, held) = tokio::sync::watch::channel(false);
    let gateway = slow_gateway(
        &deployment,
        &store,
        listener,
        arrived_tx,
        held,
        shutdown.clone(),
    )
    .await;

    // Eight requests reach the gateway, one per note, and are held there until the proxy
    // is killed: a fixed delay was not enough on a loaded 2-core machine (the first answer
    // came back before the eighth request was proven).
    let (mut child, proxy) = start_proxy(home.dir(), &deployment_path, &gateway_url);
    let mut slow = Vec::new();
    for _ in 0..NOTES {
        let proxy = proxy.clone();
        slow.push(tokio::spawn(async move { post_held(&proxy).await }));
    }
    for _ in 0..NOTES {
        arrived.recv().await.unwrap();
    }
    child.kill();
    for s in slow {
        assert_eq!(s.await.unwrap().0, 0);
    }
    release.send_replace(true);
    // The gateway answers them (its client hung up) and then goes down.
    shutdown.cancel();
    gateway.wait().await.unwrap();
    for j in 0..NOTES {
        assert_eq!(note(&home, &deployment, j).0, NoteStatus::InFlight);
    }

    // With the gateway down the proxy starts from the saved discovery document and
    // listens at once: the eight notes are busy, not in the way.
    let started = std::time::Instant::now();
    let (mut child, proxy) = start_proxy(home.dir(), &deployment_path, &gateway_url);
    let listening = started.elapsed();
    println!(
        "proxy listening {listening:?} after start with {NOTES} lost tickets and the gateway down"
    );
    assert!(
        listening < Duration::from_secs(20),
        "start-up waited for recovery: {listening:?}"
    );
    let (status, body) = post(&proxy, 0).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("all_notes_busy")),
        "{body}"
    );

    // The gateway comes back: the running proxy recovers every receipt, no restart.
    let (arrived_tx, _arrived) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(gateway_addr).await.unwrap();
    let gateway = slow_gateway(
        &deployment,
        &store,
        listener,
        arrived_tx,
        tokio::sync::watch::channel(true).1,
        shutdown.clone(),
    )
    .await;
    // Each ticket's receipt is the one its answer got (the gateway finished it after the
    // proxy died) or, for one the gateway's shutdown cut off, the full refund it issues
    // for unanswered tickets at its next start.
    let all_back = wait_for(|| {
        (0..NOTES).all(|j| {
            let (status, index, refunds) = note(&home, &deployment, j);
            status == NoteStatus::Free && index == 1 && [c_max - COST, c_max].contains(&refunds)
        })
    })
    .await;
    assert!(
        all_back,
        "not every lost ticket was recovered: {:?}",
        (0..NOTES)
            .map(|j| note(&home, &deployment, j))
            .collect::<Vec<_>>()
    );
    let (status, body) = post(&proxy, 0).await;
    assert_eq!((status, &body), (200, &serde_json::json!({"ok": true})));
    child.kill();
    shutdown.cancel();
    gateway.wait().await.unwrap();
}
