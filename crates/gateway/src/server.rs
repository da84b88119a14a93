//! Starting and stopping the gateway: [`serve`] for the binary (from a
//! [`GatewayConfig`]), [`GatewayBuilder`] for tests and benchmarks (no config file);
//! [`GatewayBuilder::build`] gives the router without a listener (in-process tests).
//!
//! Startup: prepare the verifying key, sync the note tree once, connect the provider's
//! pool client, start the duties (slasher, violation logger, chain watcher) and make sure the pool
//! accepts the current receipt key, then listen. Shutdown (the token is cancelled): stop
//! accepting, let requests in flight finish, then wait for every background task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ark_bn254::Bn254;
use ark_groth16::VerifyingKey;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zkcredits_chain::alloy::signers::local::PrivateKeySigner;
use zkcredits_chain::{Deployment, IndexerConfig, PoolClient};
use zkcredits_circuits::verifier::Verifier;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::eddsa::PublicKey;
use zkcredits_protocol::merkle::Root;

use crate::config::{ConfigError, GatewayConfig};
use crate::duties::{DutiesConfig, TxLock, spawn_duties_with_lock};
use crate::keys::ServerKeys;
use crate::policy::Policy;
use crate::service::{self, AppState, BatchVerifier, RootsWindow, Route, Settings};
use crate::store::{Store, StoreError};
use crate::upstream::Upstream;

/// Why the gateway could not start or stopped with an error. [`GatewayError::code`] is
/// stable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// The verifying key could not be loaded.
    #[error("cannot load the verifying key: {0}; run `zkcredits setup` or fix keys_dir")]
    Keys(#[source] zkcredits_circuits::CircuitError),
    /// The chain could not be read at startup.
    #[error("cannot read the pool's chain: {0}; check the deployment's rpc_url")]
    Chain(#[source] zkcredits_chain::Error),
    /// The RPC client could not be built with the `[tls]` roots.
    #[error("cannot build the RPC client with the [tls] roots: {0}")]
    RpcClient(#[source] reqwest::Error),
    /// A task of the gateway's own panicked (a bug).
    #[error("a gateway task failed: {0}")]
    Blocking(#[source] tokio::task::JoinError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

impl GatewayError {
    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::Config(e) => e.code(),
            GatewayError::Store(_) => "store_unavailable",
            GatewayError::Keys(_) => "verifying_key_unavailable",
            GatewayError::Chain(_) | GatewayError::RpcClient(_) => "chain_unavailable",
            GatewayError::Blocking(_) => "internal_error",
            GatewayError::Bind { .. } => "listen_failed",
            GatewayError::Serve(_) => "serve_failed",
        }
    }
}

/// Where the accepted roots come from.
#[derive(Clone, Debug)]
pub enum RootsSource {
    /// The pool's events, through the deployment's RPC URL (the real thing).
    Chain(IndexerConfig),
    /// A fixed set (benchmarks of admission alone, tests without a chain).
    Fixed(Vec<Root>),
}

/// Builds a gateway without a config file.
pub struct GatewayBuilder {
    deployment: Deployment,
    verifying_key: VerifyingKey<Bn254>,
    keys: ServerKeys,
    store: Arc<dyn Store>,
    routes: Vec<Route>,
    policy: Option<Arc<dyn Policy>>,
    settings: Settings,
    roots: RootsSource,
    provider_signer: Option<PrivateKeySigner>,
    duties: Option<DutiesConfig>,
    accept_server_key: bool,
    require_accepted_key: bool,
    rpc_client: Option<zkcredits_chain::rpc::HttpClient>,
    relay_fee: Option<Credits>,
}

impl GatewayBuilder {
    /// A gateway for `deployment` checking proofs with `verifying_key`, signing with
    /// `keys`, recording tickets in `store`. Defaults: roots from the chain, no routes,
    /// no policy, no provider key (no duties, no clearances).
    pub fn new(
        deployment: Deployment,
        verifying_key: VerifyingKey<Bn254>,
        keys: ServerKeys,
        store: Arc<dyn Store>,
    ) -> Self {
        Self {
            deployment,
            verifying_key,
            keys,
            store,
            routes: Vec::new(),
            policy: None,
            settings: Settings::default(),
            roots: RootsSource::Chain(IndexerConfig::default()),
            provider_signer: None,
            duties: None,
            accept_server_key: false,
            require_accepted_key: false,
            rpc_client: None,
            relay_fee: None,
        }
    }

    /// Serves `upstream` under `prefix`.
    pub fn route(mut self, prefix: impl Into<String>, upstream: Arc<dyn Upstream>) -> Self {
        self.routes.push(Route {
            prefix: prefix.into(),
            upstream,
        });
        self
    }

    /// Checks every admitted request with `policy`.
    pub fn policy(mut self, policy: Arc<dyn Policy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Admission settings.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Where accepted roots come from.
    pub fn roots(mut self, roots: RootsSource) -> Self {
        self.roots = roots;
        self
    }

    /// The provider's key: enables close clearances.
    pub fn provider_signer(mut self, signer: PrivateKeySigner) -> Self {
        self.provider_signer = Some(signer);
        self
    }

    /// Talks to the chain's JSON-RPC node through `client` (built by
    /// [`crate::tls::Tls::rpc_client`] with a private CA) instead of a default one.
    pub fn rpc_client(mut self, client: Option<zkcredits_chain::rpc::HttpClient>) -> Self {
        self.rpc_client = client;
        self
    }

    /// Relays users' cooperative closes from the provider's account for `fee` credit
    /// units each (needs the provider key): `POST /zkcredit/close-relay`.
    pub fn relay(mut self, fee: Credits) -> Self {
        self.relay_fee = Some(fee);
        self
    }

    /// Runs the duties (needs the provider key). Of `config`'s `[chain]` switches only
    /// `watch` and `claim_expired` are read here: `duties`, `accept_server_key` and
    /// `roots_poll` are wired by [`serve`] from a file.
    pub fn duties(mut self, config: DutiesConfig) -> Self {
        self.duties = Some(config);
        self
    }

    /// Makes sure the pool accepts the current receipt key (needs the provider key).
    pub fn accept_server_key(mut self, yes: bool) -> Self {
        self.accept_server_key = yes;
        self
    }

    /// Admits nothing until the pool accepts the current receipt key (checked before
    /// listening, then every few seconds until it does): a receipt signed with a key the
    /// pool refuses could never be carried into a close. [`serve`] always sets it.
    pub fn require_accepted_key(mut self, yes: bool) -> Self {
        self.require_accepted_key = yes;
        self
    }

    /// Starts serving on `listener` until `shutdown` is cancelled:
    /// [`GatewayBuilder::build`], then the HTTP server on `listener`.
    pub async fn start(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> Result<RunningGateway, GatewayError> {
        let addr = listener.local_addr().map_err(GatewayError::Serve)?;
        Ok(self.build(shutdown).await?.serve(listener, addr))
    }

    /// Builds everything [`GatewayBuilder::start`] serves (verifier, accepted roots, key
    /// acceptance, duties, relay, the refund of what a predecessor left unanswered) and
    /// returns the router with its background tasks, without listening anywhere.
    ///
    /// Why: admission is a property of the router, not of a socket, so tests call the
    /// router in process (`tower::ServiceExt::oneshot`) with fixed roots and no chain,
    /// and keep real sockets for what needs them. Whatever needs the chain
    /// ([`RootsSource::Chain`], the provider key's duties, key acceptance, the relay)
    /// is started here exactly as for `start`; the background tasks run until `shutdown`
    /// is cancelled ([`BuiltGateway::stop`] cancels it and waits for them).
    pub async fn build(self, shutdown: CancellationToken) -> Result<BuiltGateway, GatewayError> {
        let vk = self.verifying_key;
        let (verifier, vk_hash) = tokio::task::spawn_blocking(move || {
            (
                Verifier::new(&vk),
                zkcredits_circuits::keys::verifying_key_hash(&vk),
            )
        })
        .await
        .map_err(GatewayError::Blocking)?;
        let s = &self.settings;
        let batch = BatchVerifier::start(
            Arc::new(verifier),
            s.verify_threads,
            s.verify_batch_max,
            s.verify_batch_wait,
        );

        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        let roots = match self.roots {
            RootsSource::Fixed(roots) => RootsWindow::fixed(roots),
            RootsSource::Chain(config) => {
                let indexer = match &self.rpc_client {
                    Some(client) => zkcredits_chain::rpc::read_provider_with(
                        &self.deployment.rpc_url,
                        client.clone(),
                    )
                    .and_then(|p| zkcredits_chain::Indexer::new(p, &self.deployment, config)),
                    None => zkcredits_chain::Indexer::connect(&self.deployment, config),
                }
                .map_err(GatewayError::Chain)?;
                let (window, task) = service::roots::start_poller(
                    indexer,
                    self.settings.roots_poll,
                    shutdown.clone(),
                )
                .await
                .map_err(GatewayError::Chain)?;
                tasks.push(task);
                window
            }
        };

        let key_accepted = Arc::new(AtomicBool::new(!self.require_accepted_key));
        let lock = TxLock::default();
        let mut provider_pool = None;
        if let Some(signer) = &self.provider_signer
            && (self.duties.is_some()
                || self.accept_server_key
                || self.require_accepted_key
                || self.relay_fee.is_some())
        {
            let pool = PoolClient::connect_with(
                &self.deployment,
                &self.deployment.rpc_url,
                signer.clone(),
                self.rpc_client.clone(),
            )
            .await
            .map_err(GatewayError::Chain)?;
            match pool.provider_address().await {
                Ok(p) if p != signer.address() => tracing::warn!(
                    provider = %p,
                    key = %signer.address(),
                    "the provider key is not the pool's provider: clearances and violations will be refused on chain"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the pool's provider"),
            }
            provider_pool = Some(pool);
        }
        if self.accept_server_key || self.require_accepted_key {
            // Without the provider's key the acceptance is only read (any signer reads).
            let (pool, may_accept) = match &provider_pool {
                Some(pool) => (pool.clone(), self.accept_server_key),
                None => (
                    PoolClient::connect_with(
                        &self.deployment,
                        &self.deployment.rpc_url,
                        PrivateKeySigner::random(),
                        self.rpc_client.clone(),
                    )
                    .await
                    .map_err(GatewayError::Chain)?,
                    false,
                ),
            };
            let acceptance = KeyAcceptance {
                pool,
                key: self.keys.current_public(),
                may_accept,
                lock: Arc::clone(&lock),
                accepted: Arc::clone(&key_accepted),
            };
            // Once before listening, so that a gateway that can be accepted serves at once.
            acceptance.attempt().await;
            tasks.push(tokio::spawn(acceptance.run(shutdown.clone())));
        }
        let relay = match (&provider_pool, self.relay_fee) {
            (Some(pool), Some(fee)) => Some(service::relay::Relay {
                pool: pool.clone(),
                lock: Arc::clone(&lock),
                fee,
            }),
            _ => None,
        };
        if let (Some(pool), Some(config)) = (provider_pool, self.duties) {
            tasks.push(spawn_duties_with_lock(
                Arc::clone(&self.store),
                pool,
                &self.deployment,
                config,
                shutdown.clone(),
                lock,
            ));
        }

        let mut state = AppState::new(
            &self.deployment,
            self.keys,
            vk_hash,
            batch,
            self.store,
            roots,
            self.routes,
            self.policy,
            self.provider_signer,
            self.settings,
        );
        state.key_accepted = key_accepted;
        state.relay = relay;
        let state = Arc::new(state);
        // What a dead predecessor admitted and never answered is refunded before serving.
        service::unanswered::refund_at_startup(&state).await;
        tasks.push(tokio::spawn(service::unanswered::run(
            Arc::clone(&state),
            shutdown.clone(),
        )));
        Ok(BuiltGateway {
            router: service::router(state),
            tasks,
            shutdown,
        })
    }
}

/// A built gateway that does not listen ([`GatewayBuilder::build`]): its router and the
/// background tasks behind it.
#[derive(Debug)]
pub struct BuiltGateway {
    router: axum::Router,
    tasks: Vec<JoinHandle<()>>,
    shutdown: CancellationToken,
}

impl BuiltGateway {
    /// The gateway's HTTP service: discovery, receipts, clearances, relay, metrics and
    /// the admission of paid requests. Every clone shares one state (store, roots,
    /// verifier), as the connections of a listening gateway do.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Cancels the shutdown token and waits for every background task, as a listening
    /// gateway does once its server stopped. A task that panicked is logged, not returned,
    /// as [`RunningGateway::wait`] does.
    pub async fn stop(self) {
        self.shutdown.cancel();
        join_background(self.tasks).await;
    }

    /// Serves the router on `listener` (bound at `addr`) until the shutdown token is
    /// cancelled, then waits for the background tasks.
    fn serve(self, listener: tokio::net::TcpListener, addr: SocketAddr) -> RunningGateway {
        let Self {
            router,
            tasks,
            shutdown,
        } = self;
        tracing::info!(%addr, "gateway listening");
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                .await;
            // Whatever ended the server ends the background tasks too.
            shutdown.cancel();
            join_background(tasks).await;
            served.map_err(GatewayError::Serve)
        });
        RunningGateway { addr, task }
    }
}

/// Waits for the background tasks once their shutdown token is cancelled.
async fn join_background(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "a background task panicked");
        }
    }
    tracing::info!("gateway stopped");
}

/// A started gateway.
#[derive(Debug)]
pub struct RunningGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<Result<(), GatewayError>>,
}

impl RunningGateway {
    /// Waits until the gateway has stopped (after its shutdown token is cancelled) and
    /// every background task with it.
    pub async fn wait(self) -> Result<(), GatewayError> {
        self.task.await.map_err(GatewayError::Blocking)?
    }
}

/// How often an accepted receipt key is checked again.
const KEY_RECHECK: Duration = Duration::from_secs(300);

/// Finds out whether the pool accepts the current receipt key, and makes it accept the
/// key when the gateway holds the provider's account; flips the admission gate once it
/// does.
struct KeyAcceptance {
    pool: PoolClient,
    key: PublicKey,
    /// Send `acceptServerKey` when the pool does not accept it (provider only).
    may_accept: bool,
    lock: TxLock,
    accepted: Arc<AtomicBool>,
}

impl KeyAcceptance {
    /// Until the key is accepted, retries [`KeyAcceptance::attempt`] with backoff; then
    /// keeps watching it, closing the admission gate if the key stops being usable (the
    /// provider revoked it and the notice ended): the operator must rotate the key.
    async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let wait = if self.accepted.load(Ordering::Acquire) {
                KEY_RECHECK
            } else {
                backoff
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            if self.accepted.load(Ordering::Acquire) {
                if let Ok(false) = self.pool.server_key_accepted(self.key).await {
                    tracing::error!(
                        "the pool no longer accepts this gateway's receipt key (revoked): \
                         nothing is admitted until a new key is made current"
                    );
                    self.accepted.store(false, Ordering::Release);
                    return;
                }
            } else if !self.attempt().await {
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }

    /// One look (and, if allowed, one `acceptServerKey`); true once the pool accepts the
    /// key.
    async fn attempt(&self) -> bool {
        let accepted = match self.pool.server_key_accepted(self.key).await {
            Ok(true) => true,
            Ok(false) if matches!(self.pool.server_key_retires_at(self.key).await, Ok(Some(_))) => {
                // Never undo the provider's own revocation by accepting the key again.
                tracing::error!(
                    "this gateway's receipt key was revoked on chain: nothing is admitted; make \
                     a new key current ([server_keys] current) and restart"
                );
                false
            }
            Ok(false) if !self.may_accept => {
                tracing::error!(
                    "the pool does not accept this gateway's receipt key: nothing is admitted \
                     until it does (the provider runs acceptServerKey, or sets \
                     chain.accept_server_key with its key in [provider])"
                );
                false
            }
            Ok(false) => {
                let _sending = self.lock.lock().await;
                match self.pool.accept_server_key(self.key).await {
                    Ok(tx) => {
                        tracing::info!(tx = %tx.hash, "the pool now accepts the current receipt key");
                        true
                    }
                    Err(e)
                        if matches!(
                            e.contract_error(),
                            Some(zkcredits_chain::ContractError::NotProvider)
                        ) =>
                    {
                        tracing::error!(
                            "the provider key is not the pool's provider: the pool cannot be \
                             made to accept the receipt key, and nothing is admitted until it \
                             does; fix [provider] in the config"
                        );
                        false
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "acceptServerKey failed; will retry");
                        false
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot ask the pool about the receipt key; will retry");
                false
            }
        };
        if accepted {
            self.accepted.store(true, Ordering::Release);
        }
        accepted
    }
}

/// Runs the gateway described by `config` until `shutdown` is cancelled.
pub async fn serve(config: GatewayConfig, shutdown: CancellationToken) -> Result<(), GatewayError> {
    start(config, shutdown).await?.wait().await
}

/// Starts the gateway described by `config`; the returned handle says where it listens.
pub async fn start(
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> Result<RunningGateway, GatewayError> {
    let deployment = config.load_deployment()?;
    let keys_dir = config.keys_dir.clone();
    let vk = tokio::task::spawn_blocking(move || {
        zkcredits_circuits::keys::load_verifying_key(&keys_dir)
    })
    .await
    .map_err(GatewayError::Blocking)?
    .map_err(GatewayError::Keys)?;
    let keys = config.server_keys()?;
    let signer = config.provider_signer()?;
    let tls = config.tls()?;
    let routes = crate::routes::build_routes(&config, deployment.constants.c_max.get(), &tls)?;
    let policy = crate::routes::build_policy(&config, &tls)?;
    let rpc_client = tls.rpc_client().map_err(GatewayError::RpcClient)?;
    let store = crate::store::open_from_url(&config.store).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| GatewayError::Bind {
            addr: config.listen,
            source,
        })?;
    let mut builder = GatewayBuilder::new(deployment, vk, keys, store)
        .settings(config.settings())
        .roots(RootsSource::Chain(IndexerConfig {
            state_path: config.indexer_state.clone(),
            ..IndexerConfig::default()
        }))
        .provider_signer(signer)
        .rpc_client(rpc_client)
        .accept_server_key(config.chain.accept_server_key)
        .require_accepted_key(true);
    if config.chain.duties {
        builder = builder.duties(config.duties_config());
    }
    if config.relay.enabled {
        // The config's plain number becomes an amount here, where it is handed over.
        builder = builder.relay(Credits::new(config.relay.fee));
    }
    if let Some(policy) = policy {
        builder = builder.policy(policy);
    }
    for (prefix, upstream) in routes {
        builder = builder.route(prefix, upstream);
    }
    builder.start(listener, shutdown).await
}
