//! The roots a credential may be proven against: the pool's recent roots, as the chain
//! indexer rebuilds them (`docs/PROTOCOL.md §4` step 1).
//!
//! A background task owns the [`Indexer`] and publishes the window after every sync. A
//! credential whose root is not in the window asks for one early sync and waits for it
//! (briefly): a client that synced a block after the gateway's last poll is then accepted
//! rather than sent away with `stale_root`. Early syncs are coalesced, so unknown roots
//! cannot make the gateway hammer the chain.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use zkcredits_chain::Indexer;
use zkcredits_protocol::merkle::Root;

/// Longest a request waits for an early sync before answering `stale_root`.
const EARLY_SYNC_WAIT: Duration = Duration::from_secs(2);

/// The accepted roots, shared by every request.
#[derive(Debug)]
pub struct RootsWindow {
    roots: RwLock<Arc<HashSet<Root>>>,
    /// Bumped after every sync.
    synced: watch::Sender<u64>,
    /// Asks the poller for an early sync.
    wake: Notify,
    /// Whether a poller runs (a static window never changes).
    live: bool,
}

impl RootsWindow {
    /// A fixed set of roots (tests and benchmarks without a chain).
    pub fn fixed(roots: impl IntoIterator<Item = Root>) -> Arc<Self> {
        Arc::new(Self {
            roots: RwLock::new(Arc::new(roots.into_iter().collect())),
            synced: watch::channel(0).0,
            wake: Notify::new(),
            live: false,
        })
    }

    fn live() -> Arc<Self> {
        Arc::new(Self {
            roots: RwLock::new(Arc::new(HashSet::new())),
            synced: watch::channel(0).0,
            wake: Notify::new(),
            live: true,
        })
    }

    /// The current window.
    pub fn snapshot(&self) -> Arc<HashSet<Root>> {
        match self.roots.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn publish(&self, roots: HashSet<Root>) {
        let roots = Arc::new(roots);
        match self.roots.write() {
            Ok(mut w) => *w = roots,
            Err(poisoned) => *poisoned.into_inner() = roots,
        }
        self.synced.send_modify(|n| *n += 1);
    }

    /// Whether `root` is accepted, after one early sync if it is not (yet).
    pub async fn accepts(&self, root: &Root) -> bool {
        if self.snapshot().contains(root) {
            return true;
        }
        if !self.live {
            return false;
        }
        let mut synced = self.synced.subscribe();
        synced.mark_unchanged();
        self.wake.notify_one();
        // Wait for a sync that started after this request asked (two bumps at most: one
        // may have been under way already).
        for _ in 0..2 {
            match tokio::time::timeout(EARLY_SYNC_WAIT, synced.changed()).await {
                Ok(Ok(())) => {
                    if self.snapshot().contains(root) {
                        return true;
                    }
                }
                _ => return false,
            }
        }
        false
    }
}

/// Syncs `indexer` once, then keeps syncing every `poll` (or sooner when a request asks)
/// until `shutdown`. The first sync has completed when this returns.
pub async fn start_poller(
    mut indexer: Indexer,
    poll: Duration,
    shutdown: CancellationToken,
) -> Result<(Arc<RootsWindow>, tokio::task::JoinHandle<()>), zkcredits_chain::Error> {
    let window = RootsWindow::live();
    indexer.sync().await?;
    window.publish(roots_of(&indexer));
    tracing::info!(
        leaves = indexer.tree().len(),
        roots = window.snapshot().len(),
        "note tree synced"
    );
    let task_window = Arc::clone(&window);
    let task = tokio::spawn(async move {
        let window = task_window;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(poll) => {}
                () = window.wake.notified() => {}
            }
            match indexer.sync().await {
                Ok(report) => {
                    if report.deposits > 0 || report.commits > 0 {
                        tracing::debug!(deposits = report.deposits, "new roots");
                    }
                    window.publish(roots_of(&indexer));
                    if report.deposits > 0
                        && let Err(e) = indexer.persist()
                    {
                        tracing::warn!(error = %e, "cannot persist the indexer state");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "syncing the note tree failed; keeping the last roots");
                    // Waiters learn that this round brought nothing new.
                    window.synced.send_modify(|n| *n += 1);
                }
            }
        }
        if let Err(e) = indexer.persist() {
            tracing::warn!(error = %e, "cannot persist the indexer state");
        }
        tracing::info!("roots poller stopped");
    });
    Ok((window, task))
}

fn roots_of(indexer: &Indexer) -> HashSet<Root> {
    let mut roots: HashSet<Root> = indexer.recent_roots().copied().collect();
    roots.extend(indexer.committed_roots().map(|c| c.root));
    roots
}
