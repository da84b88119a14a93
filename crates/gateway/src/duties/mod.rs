//! The gateway's on-chain duties: background tasks that carry out the work the request
//! path queued in the store, so that a request never waits for the chain.
//!
//! - [`slasher`]: submits `slash(k)` for every recovered double-spend key;
//! - [`violations`]: logs policy violations with `recordViolations`, in batches.
//!
//! Both read their queue from the [`Store`], so a restart resumes where the last process
//! stopped, and both are idempotent: a note slashed (or closed) by anyone else counts as
//! done, and a violation is marked with the transaction that logged it.
//!
//! **Extension point.** Watching closes and slashes on chain (`docs/PROTOCOL.md §6`,
//! "What the gateway watches on chain") comes with the settlement work: it will be one
//! more task spawned in [`spawn_duties`], keeping its progress in the store's cursor
//! `"chain_watch"` ([`Store::cursor`]) and sending its challenges through the same
//! [`TxLock`].

pub mod slasher;
pub mod violations;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zkcredits_chain::PoolClient;

use crate::store::{FieldBytes, Store};

/// Recorded as the transaction of a duty that needed none from this gateway: the note was
/// already slashed or closed by someone, or the item can never be submitted (see the
/// error log for which).
pub const NO_TX: [u8; 32] = [0; 32];

/// Serialises this gateway's transactions: the pool client reads the account's nonce from
/// the node for each one, so two duties sending at once would collide on it.
pub type TxLock = Arc<tokio::sync::Mutex<()>>;

/// Timing of the duties. `Default` suits a real chain; tests shorten the intervals.
#[derive(Clone, Debug)]
pub struct DutiesConfig {
    /// How often the slasher looks at the queue.
    pub slash_poll: Duration,
    /// Delay before retrying a failed slash; doubles per failed attempt.
    pub slash_backoff: Duration,
    /// Longest delay between two attempts at one slash.
    pub slash_backoff_max: Duration,
    /// Most violations per `recordViolations` transaction; a full batch is sent at once.
    pub violation_batch: usize,
    /// A partial batch is sent when its oldest pending item has waited this long.
    pub violation_interval: Duration,
    /// How often the violation logger looks at the queue.
    pub violation_poll: Duration,
}

impl Default for DutiesConfig {
    fn default() -> Self {
        Self {
            slash_poll: Duration::from_secs(2),
            slash_backoff: Duration::from_secs(5),
            slash_backoff_max: Duration::from_secs(600),
            violation_batch: 64,
            violation_interval: Duration::from_secs(10),
            violation_poll: Duration::from_secs(1),
        }
    }
}

/// Starts the slasher and the violation logger on the current tokio runtime. They run
/// until `shutdown` is cancelled; the returned handle completes once both have stopped
/// (a submission in flight is finished first, so nothing is sent twice).
///
/// `pool` signs as the provider: `recordViolations` is provider-only (`slash` is open to
/// anyone). Nothing else should send transactions from that account meanwhile, or share
/// the [`TxLock`] through [`spawn_duties_with_lock`].
pub fn spawn_duties(
    store: Arc<dyn Store>,
    pool: PoolClient,
    config: DutiesConfig,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    spawn_duties_with_lock(store, pool, config, shutdown, TxLock::default())
}

/// [`spawn_duties`], sending every transaction under `lock`.
pub fn spawn_duties_with_lock(
    store: Arc<dyn Store>,
    pool: PoolClient,
    config: DutiesConfig,
    shutdown: CancellationToken,
    lock: TxLock,
) -> JoinHandle<()> {
    let slasher = tokio::spawn(slasher::run(
        Arc::clone(&store),
        pool.clone(),
        config.clone(),
        shutdown.clone(),
        Arc::clone(&lock),
    ));
    let logger = tokio::spawn(violations::run(store, pool, config, shutdown, lock));
    tokio::spawn(async move {
        for (name, task) in [("slasher", slasher), ("violation logger", logger)] {
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
