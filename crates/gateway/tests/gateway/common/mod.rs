//! The gateway test harness: development keys (made once per machine), notes deposited on
//! a real anvil (`TestChain`) or only in a local tree, real request proofs, a loopback
//! upstream, a started gateway, or one built without a listener and called in process.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ark_ff::UniformRand;
use tokio_util::sync::CancellationToken;
use zkcredits_chain::testing::{PROVIDER, TestChain, test_server_key};
use zkcredits_chain::{Deployment, Indexer, IndexerConfig};
use zkcredits_circuits::keys;
use zkcredits_circuits::prover::{RequestProver, to_points};
use zkcredits_circuits::request::{RequestCircuit, RequestInputs};
use zkcredits_gateway::duties::DutiesConfig;
use zkcredits_gateway::keys::ServerKeys;
use zkcredits_gateway::store::{SqliteStore, Store};
use zkcredits_gateway::upstream::flat::{FlatConfig, FlatUpstream};
use zkcredits_gateway::{BuiltGateway, GatewayBuilder, RootsSource, RunningGateway, Settings};
use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::eddsa::PrivateKey;
use zkcredits_protocol::merkle::LeanImt;
use zkcredits_protocol::note::{NoteSecret, WalletSeed};
use zkcredits_protocol::state::{Limits, NoteState, Receipt};
use zkcredits_protocol::wire::{Credential, WireFormat};

/// The receipt key id the test gateways use.
pub const KEY_ID: u32 = 1;
/// Price of one request on the flat test route.
pub const PRICE: u64 = 123;
/// The flat test route.
pub const ROUTE: &str = "/api";
/// What the test gateway's close relay charges, credit units.
pub const RELAY_FEE: u64 = 7;

/// The development keys, made once per machine
/// ([`zkcredits_circuits::testing::dev_keys_dir`]).
pub fn keys_dir() -> PathBuf {
    zkcredits_circuits::testing::dev_keys_dir().to_path_buf()
}

pub fn prover() -> &'static RequestProver {
    static PROVER: OnceLock<RequestProver> = OnceLock::new();
    PROVER.get_or_init(|| {
        RequestProver::new(keys::load_proving_key(&keys_dir()).expect("keys")).expect("prover")
    })
}

pub fn verifying_key() -> ark_groth16::VerifyingKey<ark_bn254::Bn254> {
    keys::load_verifying_key(&keys_dir()).expect("verifying key")
}

pub fn server_keys() -> ServerKeys {
    ServerKeys::new(KEY_ID, test_server_key(), Vec::new())
}

pub fn random_fr() -> Fr {
    Fr::rand(&mut rand::thread_rng())
}

/// A deposited note as a test client holds it.
#[derive(Clone, Debug)]
pub struct TestNote {
    pub secret: NoteSecret,
    pub deposit: Credits,
    pub expiry_epoch: u64,
    pub leaf_index: u64,
    pub state: NoteState,
}

/// A paid request ready to send.
#[derive(Clone, Debug)]
pub struct Paid {
    pub credential: Credential,
    pub authorization: String,
    pub body: Vec<u8>,
    pub path: String,
    pub rho_next: Fr,
}

impl Paid {
    pub fn nullifier_hex(&self) -> String {
        self.credential.nullifier.to_string()
    }
}

impl TestNote {
    /// Proves the request `POST path` with `body` from the note's current state.
    pub fn prove(
        &self,
        tree: &LeanImt,
        path: &str,
        body: &[u8],
        limits: Limits,
        server: &PrivateKey,
    ) -> Paid {
        let x = zkcredits_protocol::request::request_x("POST", path, body);
        let rho_next = random_fr();
        let merkle = tree.path(self.leaf_index).unwrap();
        let circuit = RequestCircuit::new(RequestInputs {
            secret: &self.secret,
            deposit: self.deposit,
            expiry_epoch: self.expiry_epoch,
            path: &merkle,
            root: tree.root(),
            state: &self.state,
            x,
            rho_next,
            limits,
            server_key: server.public_key(),
        })
        .unwrap();
        let public = circuit.public;
        let proof = prover().prove(circuit, &mut rand::rngs::OsRng).unwrap();
        let credential = Credential {
            key_id: KEY_ID,
            root: public.root,
            nullifier: public.nullifier,
            y: public.y,
            next_commitment: public.next_commitment,
            proof: to_points(&proof),
        };
        Paid {
            authorization: format!("ZkCredit {}", credential.to_base64url()),
            credential,
            body: body.to_vec(),
            path: path.to_owned(),
            rho_next,
        }
    }

    /// Checks `receipt` as the client does and advances the note.
    pub fn accept(&mut self, paid: &Paid, receipt: &Receipt, server: &PrivateKey) {
        let k = self.secret.expose();
        let t_next = self.state.next_commitment(k, paid.rho_next).unwrap();
        assert_eq!(t_next, paid.credential.next_commitment);
        let m = zkcredits_protocol::state::receipt_message(t_next, receipt.refund, receipt.penalty);
        assert!(
            server.public_key().verify(m, &receipt.signature),
            "the receipt verifies under the server key for T_next"
        );
        self.state = self.state.advance(k, paid.rho_next, *receipt).unwrap();
    }
}

/// A chain with `count` notes of `deposit` deposited by dev account 2.
pub struct Fixture {
    pub chain: TestChain,
    pub notes: Vec<TestNote>,
}

impl Fixture {
    pub async fn start(count: u64, deposit: u64) -> Self {
        Self::with_config(count, deposit, |_| {}).await
    }

    /// As [`Fixture::start`], on a pool whose config `edit` changed.
    pub async fn with_config(
        count: u64,
        deposit: u64,
        edit: impl FnOnce(&mut zkcredits_chain::PoolConfig),
    ) -> Self {
        let chain = TestChain::with_config(edit).await.unwrap();
        let user = chain.client(2).await.unwrap();
        let seed = WalletSeed::from_entropy(&random_fr().to_string().into_bytes());
        let secrets: Vec<NoteSecret> = (0..count).map(|j| seed.note_secret(j)).collect();
        let ids: Vec<(Fr, Credits)> = secrets
            .iter()
            .map(|s| (s.id(), Credits::new(deposit)))
            .collect();
        let out = user.deposit_many(&ids).await.unwrap();
        let notes = out
            .notes
            .iter()
            .zip(secrets)
            .map(|(d, secret)| TestNote {
                secret,
                deposit: d.amount,
                expiry_epoch: d.expiry_epoch,
                leaf_index: d.leaf_index,
                state: NoteState::fresh(),
            })
            .collect();
        Self { chain, notes }
    }

    pub fn deployment(&self) -> &Deployment {
        self.chain.deployment()
    }

    pub fn limits(&self) -> Limits {
        limits_of(self.deployment())
    }

    /// The note tree as a client syncs it.
    pub async fn tree(&self) -> LeanImt {
        let mut indexer = Indexer::connect(self.deployment(), IndexerConfig::default()).unwrap();
        indexer.sync().await.unwrap();
        indexer.tree().clone()
    }
}

/// The limits a request for `deployment` is proven with.
pub fn limits_of(deployment: &Deployment) -> Limits {
    let c = &deployment.constants;
    Limits {
        c_max: c.c_max,
        p_max: c.p_max,
    }
}

/// The expiry epoch of [`local_notes`]: the gateway never reads it (only the pool does),
/// it only has to be the one in the leaf.
pub const LOCAL_EXPIRY_EPOCH: u64 = 9;

/// `count` notes of `deposit` appended to a local tree as the pool appends deposits, for
/// a gateway that accepts that tree's root ([`RootsSource::Fixed`]): no chain.
pub fn local_notes(count: u64, deposit: u64) -> (Vec<TestNote>, LeanImt) {
    let seed = WalletSeed::from_entropy(&random_fr().to_string().into_bytes());
    let mut tree = LeanImt::new();
    let notes = (0..count)
        .map(|j| {
            let secret = seed.note_secret(j);
            let deposit = Credits::new(deposit);
            let leaf = zkcredits_protocol::note::leaf(secret.id(), deposit, LOCAL_EXPIRY_EPOCH);
            TestNote {
                leaf_index: tree.push(leaf).unwrap(),
                secret,
                deposit,
                expiry_epoch: LOCAL_EXPIRY_EPOCH,
                state: NoteState::fresh(),
            }
        })
        .collect();
    (notes, tree)
}

/// A gateway without a chain: the offline deployment (`C_max` 1000, `P_max` 5000), the
/// fixed root of `tree`, no provider key (no duties, no relay, no clearances), receipts
/// admitted without asking the pool about the key, the flat route to `upstream`.
pub fn chainless_builder(
    tree: &LeanImt,
    store: Arc<dyn Store>,
    upstream: SocketAddr,
    settings: Settings,
) -> GatewayBuilder {
    let deployment = zkcredits_chain::testing::offline_deployment();
    let c_max = deployment.constants.c_max.get();
    GatewayBuilder::new(deployment, verifying_key(), server_keys(), store)
        .settings(settings)
        .route(ROUTE, flat_route(upstream, c_max))
        .roots(RootsSource::Fixed(vec![tree.root()]))
        .require_accepted_key(false)
}

/// A SQLite store in a fresh temporary directory (kept as long as the directory is).
pub fn sqlite_store() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("gateway.db")).unwrap();
    (Arc::new(store), dir)
}

/// A chainless gateway ([`chainless_builder`]) built without a listener: requests go to
/// its router in process (`tower::ServiceExt::oneshot`), with local notes and a SQLite
/// store in a temporary directory.
pub struct InProcessGateway {
    pub gateway: BuiltGateway,
    pub deployment: Deployment,
    pub notes: Vec<TestNote>,
    pub tree: LeanImt,
    _dir: tempfile::TempDir,
}

impl InProcessGateway {
    /// `count` local notes of `deposit`, a gateway accepting their tree's root.
    pub async fn start(count: u64, deposit: u64, settings: Settings) -> Self {
        let (notes, tree) = local_notes(count, deposit);
        let (store, dir) = sqlite_store();
        let upstream = start_upstream().await;
        let gateway = chainless_builder(&tree, store, upstream, settings)
            .build(CancellationToken::new())
            .await
            .unwrap();
        Self {
            gateway,
            deployment: zkcredits_chain::testing::offline_deployment(),
            notes,
            tree,
            _dir: dir,
        }
    }

    pub fn limits(&self) -> Limits {
        limits_of(&self.deployment)
    }

    /// Proves `POST path` with `body` from note `j`'s current state.
    pub fn prove(&self, j: usize, path: &str, body: &[u8]) -> Paid {
        self.notes[j].prove(
            &self.tree,
            path,
            body,
            self.limits(),
            &zkcredits_chain::testing::test_server_key(),
        )
    }

    /// One request through the router, as hyper would hand it over.
    pub async fn call(
        &self,
        request: http::Request<axum::body::Body>,
    ) -> http::Response<axum::body::Body> {
        use tower::ServiceExt;
        match self.gateway.router().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// A `POST path` with a fixed `body` (and its Content-Length, as a client sends it):
    /// status, receipt header and JSON body.
    pub async fn send_raw(
        &self,
        path: &str,
        authorization: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Option<String>, serde_json::Value) {
        let mut request =
            http::Request::post(path).header(http::header::CONTENT_LENGTH, body.len());
        if let Some(a) = authorization {
            request = request.header(http::header::AUTHORIZATION, a);
        }
        let response = self
            .call(request.body(axum::body::Body::from(body)).unwrap())
            .await;
        let (status, receipt, _, json) = read_response(response).await;
        (status, receipt, json)
    }

    /// Sends a paid request: status, receipt header and JSON body.
    pub async fn send(&self, paid: &Paid) -> (u16, Option<String>, serde_json::Value) {
        self.send_raw(&paid.path, Some(&paid.authorization), paid.body.clone())
            .await
    }

    /// A `GET path`: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let request = http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let (status, _, _, json) = read_response(self.call(request).await).await;
        (status, json)
    }

    /// Stops the background tasks.
    pub async fn stop(self) {
        self.gateway.stop().await;
    }
}

/// A router's answer read whole: status, receipt header, headers and JSON body (`Null`
/// when it is not JSON).
pub async fn read_response(
    response: http::Response<axum::body::Body>,
) -> (u16, Option<String>, http::HeaderMap, serde_json::Value) {
    use http_body_util::BodyExt;
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let receipt = parts
        .headers
        .get("zkcredit-receipt")
        .map(|v| v.to_str().unwrap().to_owned());
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (parts.status.as_u16(), receipt, parts.headers, json)
}

/// A loopback upstream: answers `200` with `{"echo": <body length>}`, after
/// `delay_ms` milliseconds when the body is JSON naming it.
pub async fn start_upstream() -> SocketAddr {
    use axum::body::Bytes;
    let app = axum::Router::new().fallback(move |body: Bytes| async move {
        let delay = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["delay_ms"].as_u64())
            .unwrap_or(0);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        axum::Json(serde_json::json!({ "echo": body.len() }))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

pub fn flat_route(upstream: SocketAddr, c_max: u64) -> Arc<FlatUpstream> {
    Arc::new(
        FlatUpstream::new(
            &FlatConfig {
                prefix: ROUTE.into(),
                base_url: format!("http://{upstream}"),
                price: PRICE,
                timeout_secs: Some(5),
            },
            c_max,
            Duration::from_secs(5),
        )
        .unwrap(),
    )
}

pub fn fast_duties() -> DutiesConfig {
    DutiesConfig {
        slash_poll: Duration::from_millis(100),
        slash_backoff: Duration::from_millis(200),
        slash_backoff_max: Duration::from_secs(2),
        violation_batch: 4,
        violation_interval: Duration::from_millis(500),
        violation_poll: Duration::from_millis(100),
        watch_poll: Duration::from_millis(100),
        ..DutiesConfig::default()
    }
}

/// A started gateway and its shutdown token.
pub struct TestGateway {
    pub running: Option<RunningGateway>,
    pub shutdown: CancellationToken,
    pub url: String,
}

impl TestGateway {
    /// A gateway for the fixture's pool with the flat route to `upstream`, the provider
    /// key (dev account 1) and fast duties.
    pub async fn start(
        deployment: &Deployment,
        store: Arc<dyn Store>,
        upstream: SocketAddr,
        settings: Settings,
    ) -> Self {
        Self::start_with(deployment, store, upstream, settings, true).await
    }

    /// As [`TestGateway::start`], with or without the duties.
    pub async fn start_with(
        deployment: &Deployment,
        store: Arc<dyn Store>,
        upstream: SocketAddr,
        settings: Settings,
        duties: bool,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        let mut builder =
            GatewayBuilder::new(deployment.clone(), verifying_key(), server_keys(), store)
                .settings(Settings {
                    roots_poll: Duration::from_millis(200),
                    ..settings
                })
                .route(
                    ROUTE,
                    flat_route(upstream, deployment.constants.c_max.get()),
                )
                .roots(RootsSource::Chain(IndexerConfig::default()))
                .provider_signer(zkcredits_chain::anvil::dev_signer(PROVIDER))
                .accept_server_key(true)
                .require_accepted_key(true)
                .relay(Credits::new(RELAY_FEE));
        if duties {
            builder = builder.duties(fast_duties());
        }
        let running = builder.start(listener, shutdown.clone()).await.unwrap();
        let url = format!("http://{}", running.addr);
        Self {
            running: Some(running),
            shutdown,
            url,
        }
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(r) = self.running.take() {
            r.wait().await.unwrap();
        }
    }
}

/// Sends a paid request; returns status, receipt header and JSON body.
pub async fn send(
    client: &reqwest::Client,
    base: &str,
    paid: &Paid,
) -> (u16, Option<String>, serde_json::Value) {
    send_raw(
        client,
        base,
        &paid.path,
        Some(&paid.authorization),
        paid.body.clone(),
    )
    .await
}

pub async fn send_raw(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    authorization: Option<&str>,
    body: Vec<u8>,
) -> (u16, Option<String>, serde_json::Value) {
    let mut req = client.post(format!("{base}{path}")).body(body);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let receipt = resp
        .headers()
        .get("zkcredit-receipt")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.bytes().await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, receipt, json)
}

pub fn code(body: &serde_json::Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

pub fn decode_receipt(text: &str) -> Receipt {
    Receipt::from_base64url(text).unwrap()
}
