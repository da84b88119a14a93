//! The gateway's on-chain duties: background tasks that carry out the work the request
//! path queued in the store, so that a request never waits for the chain.
//!
//! - [`slasher`]: submits `slash(k)` for every recovered double-spend key;
//! - [`violations`]: logs policy violations with `recordViolations`, in batches;
//! - [`watcher`]: reads the pool's closes and slashes, records their tickets as spent,
//!   challenges stale closes and blocks slashed notes;
//! - [`expiry`]: claims the deposits left in expired epochs for the provider.
//!
//! Each keeps its progress in the [`Store`] (a queue, or the watcher's cursor), so a
//! restart resumes where the last process stopped, and each is idempotent: a note
//! slashed (or closed) by anyone else counts as done, a violation is marked with the
//! transaction that logged it, and an event read twice changes nothing.

pub mod expiry;
pub mod slasher;
pub mod violations;
pub mod watcher;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_with::{DurationMilliSeconds, DurationSeconds};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zkcredits_chain::{Deployment, PoolClient};

use crate::store::{FieldBytes, Store};

/// Recorded as the transaction of a duty that needed none from this gateway: the note was
/// already slashed or closed by someone, or the item can never be submitted (see the
/// error log for which).
pub const NO_TX: [u8; 32] = [0; 32];

/// Serialises this gateway's transactions: the pool client reads the account's nonce from
/// the node for each one, so two duties sending at once would collide on it.
pub type TxLock = Arc<tokio::sync::Mutex<()>>;

/// The duties and their timing: the `[chain]` section of `gateway.toml`, read straight
/// into this type (each key in its unit, as the file writes it). `Default` suits a real
/// chain; tests shorten the intervals. Unknown keys are refused; a missing one takes its
/// value from `Default`. The settings without a key are the code's only.
///
/// Three keys of the section are not the duties' but the gateway's around them, kept
/// here because the file keeps them in `[chain]` (a section reads into one type, so that
/// a misspelt key is still refused and named at its line): [`DutiesConfig::roots_poll`],
/// [`DutiesConfig::duties`] and [`DutiesConfig::accept_server_key`]. `server::serve`
/// wires them; the duties themselves never read them.
///
/// The file may set an interval or a batch to 0; the gateway raises it to its least
/// ([`crate::config::GatewayConfig::duties_config`]).
#[serde_with::serde_as]
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DutiesConfig {
    /// How often the gateway refreshes its window of accepted roots (`roots_poll_ms`):
    /// the builder takes it as [`crate::service::Settings::roots_poll`].
    #[serde(rename = "roots_poll_ms")]
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub roots_poll: Duration,
    /// Run the duties at all (a gateway started from a file); a builder given a
    /// `DutiesConfig` runs them.
    pub duties: bool,
    /// Make sure the pool accepts the current receipt key at startup (a gateway started
    /// from a file; a builder is told with `accept_server_key`).
    pub accept_server_key: bool,
    /// How often the slasher looks at the queue (`slash_poll_ms`).
    #[serde(rename = "slash_poll_ms")]
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub slash_poll: Duration,
    /// Delay before retrying a failed slash; doubles per failed attempt
    /// (`slash_backoff_ms`).
    #[serde(rename = "slash_backoff_ms")]
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub slash_backoff: Duration,
    /// Longest delay between two attempts at one slash.
    #[serde(skip)]
    pub slash_backoff_max: Duration,
    /// Most violations per `recordViolations` transaction; a full batch is sent at once.
    pub violation_batch: usize,
    /// A partial batch is sent when its oldest pending item has waited this long
    /// (`violation_interval_secs`).
    #[serde(rename = "violation_interval_secs")]
    #[serde_as(as = "DurationSeconds<u64>")]
    pub violation_interval: Duration,
    /// How often the violation logger looks at the queue.
    #[serde(skip)]
    pub violation_poll: Duration,
    /// Run the chain watcher (closes and slashes on chain).
    pub watch: bool,
    /// How often the chain watcher reads new blocks (`watch_poll_ms`).
    #[serde(rename = "watch_poll_ms")]
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub watch_poll: Duration,
    /// Blocks below the head the watcher leaves alone. 0 acts on the newest block: every
    /// watcher action is idempotent and the rescan window catches an event a reorg moved,
    /// while a late watcher risks missing a challenge deadline.
    pub watch_confirmations: u64,
    /// Blocks below its cursor the watcher reads again each round (reorg depth survived).
    pub watch_rescan_blocks: u64,
    /// Blocks per `eth_getLogs` request.
    #[serde(skip)]
    pub watch_page_blocks: u64,
    /// Claim expired epochs for the provider.
    pub claim_expired: bool,
    /// How often the expiry claimer looks for claimable epochs (`claim_poll_secs`).
    #[serde(rename = "claim_poll_secs")]
    #[serde_as(as = "DurationSeconds<u64>")]
    pub claim_poll: Duration,
    /// How often a standby replica asks for the lead of the duties, and the leader checks
    /// it still holds it.
    #[serde(skip)]
    pub lead_poll: Duration,
}

impl Default for DutiesConfig {
    fn default() -> Self {
        Self {
            roots_poll: Duration::from_secs(2),
            duties: true,
            accept_server_key: true,
            slash_poll: Duration::from_secs(2),
            slash_backoff: Duration::from_secs(5),
            slash_backoff_max: Duration::from_secs(600),
            violation_batch: 64,
            violation_interval: Duration::from_secs(10),
            violation_poll: Duration::from_secs(1),
            watch: true,
            watch_poll: Duration::from_secs(2),
            watch_confirmations: 0,
            watch_rescan_blocks: 64,
            watch_page_blocks: 2_000,
            claim_expired: true,
            claim_poll: Duration::from_secs(600),
            lead_poll: Duration::from_secs(5),
        }
    }
}

/// Starts the slasher, the violation logger and (unless switched off in `config`) the
/// chain watcher and the expiry claimer on the current tokio runtime, for the pool of `deployment`. They run until
/// `shutdown` is cancelled; the returned handle completes once all have stopped (a
/// submission in flight is finished first, so nothing is sent twice).
///
/// `pool` signs as the provider: `recordViolations` is provider-only (`slash` is open to
/// anyone). Nothing else should send transactions from that account meanwhile, or share
/// the [`TxLock`] through [`spawn_duties_with_lock`].
pub fn spawn_duties(
    store: Arc<dyn Store>,
    pool: PoolClient,
    deployment: &Deployment,
    config: DutiesConfig,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    spawn_duties_with_lock(store, pool, deployment, config, shutdown, TxLock::default())
}

/// [`spawn_duties`], sending every transaction under `lock`.
pub fn spawn_duties_with_lock(
    store: Arc<dyn Store>,
    pool: PoolClient,
    deployment: &Deployment,
    config: DutiesConfig,
    shutdown: CancellationToken,
    lock: TxLock,
) -> JoinHandle<()> {
    let deployment = deployment.clone();
    tokio::spawn(async move {
        loop {
            if !wait_for_leadership(&*store, &config, &shutdown).await {
                return;
            }
            tracing::info!("this gateway leads the on-chain duties");
            let term = shutdown.child_token();
            let duties = start_all(
                Arc::clone(&store),
                pool.clone(),
                &deployment,
                config.clone(),
                term.clone(),
                Arc::clone(&lock),
            );
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => {
                        let _ = duties.await;
                        return;
                    }
                    () = tokio::time::sleep(config.lead_poll) => {}
                }
                // Only a definite "no" ends the lead; a store hiccup keeps it.
                if let Ok(false) = store.lead_duties().await {
                    tracing::warn!("leadership of the on-chain duties lost; standing by");
                    term.cancel();
                    let _ = duties.await;
                    break;
                }
            }
        }
    })
}

/// Waits until this process leads the duties; false if shut down first.
async fn wait_for_leadership(
    store: &dyn Store,
    config: &DutiesConfig,
    shutdown: &CancellationToken,
) -> bool {
    let mut said = false;
    loop {
        match store.lead_duties().await {
            Ok(true) => return true,
            Ok(false) if !said => {
                tracing::info!("another gateway leads the on-chain duties; standing by");
                said = true;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot ask the store who leads the duties"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(config.lead_poll) => {}
        }
    }
}

/// Starts every duty; the handle completes once all have stopped.
fn start_all(
    store: Arc<dyn Store>,
    pool: PoolClient,
    deployment: &Deployment,
    config: DutiesConfig,
    shutdown: CancellationToken,
    lock: TxLock,
) -> JoinHandle<()> {
    let watcher = config.watch.then(|| {
        let target = watcher::WatchTarget {
            chain_id: deployment.chain_id,
            pool: deployment.pool,
            deploy_block: deployment.deploy_block,
        };
        tokio::spawn(watcher::run(
            Arc::clone(&store),
            pool.clone(),
            target,
            config.clone(),
            shutdown.clone(),
            Arc::clone(&lock),
        ))
    });
    let claimer = config.claim_expired.then(|| {
        tokio::spawn(expiry::run(
            Arc::clone(&store),
            pool.clone(),
            deployment.constants.clone(),
            config.clone(),
            shutdown.clone(),
            Arc::clone(&lock),
        ))
    });
    let slasher = tokio::spawn(slasher::run(
        Arc::clone(&store),
        pool.clone(),
        config.clone(),
        shutdown.clone(),
        Arc::clone(&lock),
    ));
    let logger = tokio::spawn(violations::run(store, pool, config, shutdown, lock));
    tokio::spawn(async move {
        let tasks = [
            ("slasher", Some(slasher)),
            ("violation logger", Some(logger)),
        ]
        .into_iter()
        .chain([("chain watcher", watcher), ("expiry claimer", claimer)])
        .filter_map(|(name, task)| Some((name, task?)));
        for (name, task) in tasks {
            if let Err(e) = task.await {
                tracing::error!(duty = name, error = %e, "duty task panicked");
            }
        }
    })
}

/// The first bytes of a public value, for logs.
fn short(bytes: &FieldBytes) -> String {
    hex::encode(&bytes[..6])
}
