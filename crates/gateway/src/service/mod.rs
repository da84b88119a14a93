//! The HTTP service: the admission pipeline on every paid route and the gateway's own
//! endpoints.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /.well-known/zkcredits` | discovery document ([`Discovery`]) |
//! | `GET /zkcredit/receipts/{N}` | the receipt issued for ticket `N` |
//! | `POST /zkcredit/close-clearance` | a cooperative close's clearance |
//! | `GET /metrics`, `GET /healthz` | Prometheus text, liveness |
//! | anything under a route prefix | a paid request ([`admission`]) |

pub mod admission;
pub mod discovery;
mod endpoints;
pub mod relay;
pub mod roots;
pub mod unanswered;
mod verify;

use std::sync::Arc;
use std::time::Duration;
use zkcredits_protocol::credits::Credits;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_with::{DurationMicroSeconds, DurationSeconds};
use zkcredits_chain::alloy::signers::local::PrivateKeySigner;
use zkcredits_chain::{Deployment, PoolConstants};
use zkcredits_protocol::state::Limits;

pub use discovery::{Discovery, decode_key, publish_key};
pub use roots::RootsWindow;
pub(crate) use verify::BatchVerifier;
pub use zkcredits_api::{DiscoveryKey, RelayOffer};

use crate::keys::ServerKeys;
use crate::policy::Policy;
use crate::store::Store;
use crate::upstream::Upstream;

/// Admission settings that do not come from the deployment: the `[admission]` section of
/// `gateway.toml`, read straight into this type (each key in its unit, as the file
/// writes it), so that a file without the section behaves exactly as a gateway built in
/// code. Unknown keys are refused; a missing one takes its value from `Default`.
#[serde_with::serde_as]
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Refunds are rounded down to a multiple of this (>= 1).
    pub refund_granularity: Credits,
    /// Largest request body, bytes.
    #[serde(rename = "body_limit_bytes")]
    pub body_limit: usize,
    /// Longest wait for an upstream's complete answer (whole seconds in the file).
    #[serde(rename = "upstream_timeout_secs")]
    #[serde_as(as = "DurationSeconds<u64>")]
    pub upstream_timeout: Duration,
    /// Most proofs per verification batch.
    pub verify_batch_max: usize,
    /// How long a verifier thread waits to fill a batch (microseconds in the file; 0:
    /// take what is queued and go).
    #[serde(rename = "verify_batch_wait_us")]
    #[serde_as(as = "DurationMicroSeconds<u64>")]
    pub verify_batch_wait: Duration,
    /// Verifier threads (0: one per two cores, at least one).
    pub verify_threads: usize,
    /// The realm in `WWW-Authenticate`.
    pub realm: String,
    /// How often the roots window is refreshed. Not an `[admission]` key: the file sets
    /// it as `[chain] roots_poll_ms` ([`DutiesConfig::roots_poll`], whose default this
    /// is), and [`GatewayConfig::settings`] carries it over.
    ///
    /// [`DutiesConfig::roots_poll`]: crate::duties::DutiesConfig::roots_poll
    /// [`GatewayConfig::settings`]: crate::config::GatewayConfig::settings
    #[serde(skip)]
    pub roots_poll: Duration,
    /// A ticket still without a receipt this long after its admission was abandoned (its
    /// process died) and is refunded in full (`service::unanswered`). Longer than any
    /// answer or stream takes. Whole seconds in the file.
    #[serde(rename = "orphan_refund_after_secs")]
    #[serde_as(as = "DurationSeconds<u64>")]
    pub orphan_refund_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            refund_granularity: Credits::new(1),
            body_limit: 1 << 20,
            upstream_timeout: Duration::from_secs(120),
            verify_batch_max: 32,
            verify_batch_wait: Duration::ZERO,
            verify_threads: 0,
            realm: "zkcredits".into(),
            roots_poll: crate::duties::DutiesConfig::default().roots_poll,
            orphan_refund_after: Duration::from_secs(3_600),
        }
    }
}

/// One paid route: requests whose path is `prefix` or under `prefix/`.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) prefix: String,
    pub(crate) upstream: Arc<dyn Upstream>,
}

/// Everything a request handler reads.
pub(crate) struct AppState {
    pub(crate) chain_id: u64,
    pub(crate) pool: zkcredits_chain::alloy::primitives::Address,
    pub(crate) token: zkcredits_chain::alloy::primitives::Address,
    pub(crate) constants: PoolConstants,
    /// The deployment as the discovery document publishes it: without the RPC URL the
    /// gateway reads the chain through (it may carry an API key), so that a user joins
    /// with one URL and checks it through their own node.
    pub(crate) published: Deployment,
    pub(crate) limits: Limits,
    pub(crate) keys: ServerKeys,
    pub(crate) vk_hash: [u8; 32],
    pub(crate) verifier: BatchVerifier,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) roots: Arc<RootsWindow>,
    /// Longest prefix first, so the most specific route wins.
    pub(crate) routes: Vec<Route>,
    pub(crate) policy: Option<Arc<dyn Policy>>,
    pub(crate) provider_signer: Option<PrivateKeySigner>,
    /// Sends cooperative closes for users (`None`: this gateway does not relay).
    pub(crate) relay: Option<relay::Relay>,
    pub(crate) settings: Settings,
    pub(crate) metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Whether the pool accepts the current receipt key; nothing is admitted while it
    /// does not (set by `server::KeyAcceptance`).
    pub(crate) key_accepted: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        deployment: &Deployment,
        keys: ServerKeys,
        vk_hash: [u8; 32],
        verifier: BatchVerifier,
        store: Arc<dyn Store>,
        roots: Arc<RootsWindow>,
        mut routes: Vec<Route>,
        policy: Option<Arc<dyn Policy>>,
        provider_signer: Option<PrivateKeySigner>,
        settings: Settings,
    ) -> Self {
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Self {
            chain_id: deployment.chain_id,
            pool: deployment.pool,
            token: deployment.token,
            constants: deployment.constants.clone(),
            published: Deployment {
                rpc_url: String::new(),
                ..deployment.clone()
            },
            limits: Limits {
                c_max: deployment.constants.c_max,
                p_max: deployment.constants.p_max,
            },
            keys,
            vk_hash,
            verifier,
            store,
            roots,
            routes,
            policy,
            provider_signer,
            relay: None,
            settings,
            metrics: crate::telemetry::handle(),
            key_accepted: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    /// The route serving `path`, if any.
    pub(crate) fn route(&self, path: &str) -> Option<&Route> {
        // The longest prefix serving the path, exactly as a client picks the route
        // whose prices it checks a request against.
        let prefix =
            zkcredits_api::prices::route_for(self.routes.iter().map(|r| r.prefix.as_str()), path)?;
        self.routes.iter().find(|r| r.prefix == prefix)
    }
}

/// The router the binary serves and the tests call.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(zkcredits_api::DISCOVERY_PATH, get(discovery::handler))
        .route(
            &format!("{}{{nullifier}}", zkcredits_api::RECEIPTS_PATH),
            get(endpoints::receipt),
        )
        .route(
            zkcredits_api::CLOSE_CLEARANCE_PATH,
            post(endpoints::close_clearance),
        )
        .route(zkcredits_api::CLOSE_RELAY_PATH, post(relay::close_relay))
        .route("/metrics", get(endpoints::metrics))
        .route("/healthz", get(endpoints::health))
        .fallback(admission::handler)
        .with_state(state)
}
