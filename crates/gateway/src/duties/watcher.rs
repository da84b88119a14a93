//! The chain watcher: makes every settlement on chain count in the nullifier store
//! (`docs/PROTOCOL.md §6`, "What the gateway must watch").
//!
//! - `CloseRequested(NC, N_j, x_w, y_w)`: the close's share is offered to the store like a
//!   request's. Fresh: ticket `j` is now spent, so neither it nor any later ticket of the
//!   note can be admitted (each needs the previous receipt). Already spent by a request:
//!   the two shares give `(k, a)`; the slash is queued durably for the slasher and the
//!   close is challenged at once with `challenge(NC, k, a)`.
//! - `Closed(NC, N_j, payout)`: a cooperative close (its ticket was reserved by the
//!   clearance) or a finalized one (its share was recorded at `CloseRequested`). The
//!   ticket is recorded if it somehow was not; a paid close whose ticket a request had
//!   used is an alarm, since it can no longer be challenged.
//! - `Slashed(k)`: the note's secret is public. The watcher walks the note's tickets from
//!   0, offering each a true share at [`SLASHED_X`], until one is fresh: that ticket is
//!   then blocked, and with it every later one. Admission pays nothing per request for
//!   this (see `docs/PROTOCOL.md §6`, "Blocking a slashed note").
//!
//! Every step is idempotent (the store answers a repeated offer as a replay, the pool
//! refuses a second challenge), which is what lets the watcher re-read a trailing window
//! of blocks each round: an event that a reorg moved into another block within the
//! window is seen again, and replicas sharing one PostgreSQL store may each run it.
//! Progress is the store's cursor [`CURSOR`], the next block to read.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use zkcredits_chain::alloy::primitives::Address;
use zkcredits_chain::alloy::providers::Provider;
use zkcredits_chain::{
    ClosePayout, ContractError, LoggedEvent, PoolClient, SettlementEvent, settlement_events,
};
use zkcredits_protocol::rln::{Nullifier, Share, Ticket};
use zkcredits_protocol::{Fr, field};

use super::{DutiesConfig, TxLock, short};
use crate::store::{Admission, CLEARANCE_X, SLASHED_X, Store, StoreError, StoredShare};

/// The store cursor holding the next block the watcher reads.
pub const CURSOR: &str = "chain_watch";

/// Settlement events seen, labelled by `event` and `outcome`.
pub const WATCHED: &str = "zkcredits_watched_events_total";
/// Challenges sent, labelled by `outcome`.
pub const CHALLENGES: &str = "zkcredits_challenges_total";

/// Most tickets walked for one slashed note (the circuits bound an index below 2^32; a
/// note runs out of credit long before this).
const MAX_WALK: u64 = 1 << 24;

/// What the watcher needs to know about the pool besides its client.
#[derive(Clone, Copy, Debug)]
pub struct WatchTarget {
    /// The chain id (part of every close binding `x_w`).
    pub chain_id: u64,
    /// The pool's address.
    pub pool: Address,
    /// Where the pool was deployed: the first block read on a new store.
    pub deploy_block: u64,
}

/// Why a round stopped early; the next round retries from the cursor.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("chain: {0}")]
    Chain(#[from] zkcredits_chain::Error),
    #[error("chain: {0}")]
    Transport(#[from] zkcredits_chain::alloy::transports::TransportError),
}

/// Runs the watcher until `shutdown` is cancelled.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    pool: PoolClient,
    target: WatchTarget,
    config: DutiesConfig,
    shutdown: CancellationToken,
    lock: TxLock,
) {
    tracing::info!(
        confirmations = config.watch_confirmations,
        rescan_blocks = config.watch_rescan_blocks,
        "chain watcher started"
    );
    let watcher = Watcher {
        store: &*store,
        pool: &pool,
        target,
        config: &config,
        lock: &lock,
    };
    loop {
        if let Err(e) = watcher.round(&shutdown).await {
            tracing::warn!(error = %e, "chain watcher: round failed, will retry");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(config.watch_poll) => {}
        }
    }
    tracing::info!("chain watcher stopped");
}

struct Watcher<'a> {
    store: &'a dyn Store,
    pool: &'a PoolClient,
    target: WatchTarget,
    config: &'a DutiesConfig,
    lock: &'a TxLock,
}

impl Watcher<'_> {
    /// Reads from the cursor (less the rescan window) to the head less the
    /// confirmations, page by page, advancing the cursor after each page.
    async fn round(&self, shutdown: &CancellationToken) -> Result<(), RoundError> {
        let head = self.pool.provider().get_block_number().await?;
        let Some(last) = head.checked_sub(self.config.watch_confirmations) else {
            return Ok(());
        };
        let next = self
            .store
            .cursor(CURSOR)
            .await?
            .unwrap_or(self.target.deploy_block);
        let mut from = next
            .saturating_sub(self.config.watch_rescan_blocks)
            .max(self.target.deploy_block);
        let page = self.config.watch_page_blocks.max(1);
        while from <= last && !shutdown.is_cancelled() {
            let to = from.saturating_add(page - 1).min(last);
            let events =
                settlement_events(self.pool.provider(), self.target.pool, from, to).await?;
            for logged in &events {
                self.handle(logged).await?;
            }
            if to + 1 > next {
                self.store.set_cursor(CURSOR, to + 1).await?;
            }
            from = to + 1;
        }
        Ok(())
    }

    async fn handle(&self, logged: &LoggedEvent) -> Result<(), RoundError> {
        let outcome = match &logged.event {
            SettlementEvent::CloseRequested {
                nc,
                nullifier,
                x_w,
                y_w,
                deadline,
            } => {
                self.close_requested(*nc, *nullifier, Share { x: *x_w, y: *y_w }, *deadline)
                    .await?
            }
            SettlementEvent::Closed {
                nullifier,
                payout,
                relayer,
                to_relayer,
                ..
            } => {
                let relay_fee = u64::try_from(*to_relayer / self.pool.unit()).unwrap_or(u64::MAX);
                let to = ClosePayout::relayed(
                    *payout,
                    *relayer,
                    zkcredits_protocol::credits::Credits::new(relay_fee),
                );
                self.closed(*nullifier, to).await?
            }
            SettlementEvent::Slashed { id, k, .. } => self.slashed(*id, *k).await?,
        };
        metrics::counter!(WATCHED, "event" => logged.event.name(), "outcome" => outcome)
            .increment(1);
        Ok(())
    }

    /// Records the close's share; challenges a close on a ticket a request used.
    async fn close_requested(
        &self,
        nc: Fr,
        nullifier: Nullifier,
        share: Share,
        deadline: u64,
    ) -> Result<&'static str, RoundError> {
        let n = nullifier.to_bytes();
        let offered = StoredShare {
            x: field::to_be_bytes(&share.x),
            y: field::to_be_bytes(&share.y),
        };
        let first = match self.store.admit(n, offered, None).await? {
            Admission::Fresh => {
                tracing::info!(ticket = %short(&n), "close requested: its ticket is now spent");
                return Ok("recorded");
            }
            Admission::Replay { .. } => return Ok("seen"),
            Admission::DoubleSpend { first } => first,
        };
        if first.x == CLEARANCE_X {
            // This note's own cooperative clearance reserved the ticket; the user chose to
            // close unilaterally instead. Nothing was spent twice.
            return Ok("cleared");
        }
        let recovered = match first.recover_with(share, nullifier.field()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot recover the key of a stale close; not challenging");
                return Ok("unrecoverable");
            }
        };
        tracing::warn!(
            ticket = %short(&n),
            deadline,
            "stale close: its ticket was already used; challenging"
        );
        // Durable first: if the challenge below fails or this process dies, the slasher
        // still cancels the close (slash(k) cancels a pending close) and retries.
        self.store
            .enqueue_slash(field::to_be_bytes(&recovered.k))
            .await?;
        let _sending = self.lock.lock().await;
        let started = Instant::now();
        let label = match self.pool.challenge(nc, recovered.k, recovered.slope).await {
            Ok(out) => {
                tracing::warn!(
                    ticket = %short(&n),
                    tx = %out.tx.hash,
                    block = out.tx.block_number,
                    to_provider = %out.to_provider,
                    took = ?started.elapsed(),
                    "stale close challenged: note slashed"
                );
                "challenged"
            }
            Err(e) => match e.contract_error() {
                Some(ContractError::NoPendingClose | ContractError::NoteAlreadySettled) => {
                    tracing::info!(ticket = %short(&n), "close already challenged or settled");
                    "settled"
                }
                _ => {
                    tracing::warn!(
                        ticket = %short(&n),
                        error = %e,
                        "challenge failed; the queued slash will cancel the close"
                    );
                    "failed"
                }
            },
        };
        metrics::counter!(CHALLENGES, "outcome" => label).increment(1);
        Ok("challenged")
    }

    /// Makes sure a paid close's ticket is spent in the store.
    async fn closed(
        &self,
        nullifier: Nullifier,
        to: ClosePayout,
    ) -> Result<&'static str, RoundError> {
        let n = nullifier.to_bytes();
        let reserve = StoredShare {
            x: CLEARANCE_X,
            y: [0; 32],
        };
        let first = match self.store.admit(n, reserve, None).await? {
            Admission::Fresh => {
                // Neither our clearance nor a CloseRequested we read spent it: another
                // gateway of this provider cleared it. Spent from now on all the same.
                tracing::info!(ticket = %short(&n), "closed: its ticket is now spent");
                return Ok("recorded");
            }
            Admission::Replay { .. } => return Ok("seen"),
            Admission::DoubleSpend { first } => first,
        };
        let close_x = zkcredits_protocol::request::withdrawal_x(
            self.target.chain_id,
            self.target.pool.into_array(),
            &to.withdrawal(),
        );
        if first.x == field::to_be_bytes(&close_x) {
            // The share this close revealed when it was requested: a finalized close.
            return Ok("seen");
        }
        tracing::error!(
            ticket = %short(&n),
            "a close was paid on a ticket that a request had used, without a challenge: the \
             watcher was behind for a whole challenge window"
        );
        Ok("missed")
    }

    /// Blocks the first ticket of a slashed note that no request has used.
    async fn slashed(&self, id: Fr, k: Fr) -> Result<&'static str, RoundError> {
        let Some(x) = field::from_be_bytes_canonical(&SLASHED_X) else {
            unreachable!("SLASHED_X is 2^248, below the field modulus");
        };
        let started = Instant::now();
        for i in 0..MAX_WALK {
            let ticket = Ticket::new(k, i);
            let share = ticket.share(k, x);
            let offered = StoredShare {
                x: SLASHED_X,
                y: field::to_be_bytes(&share.y),
            };
            match self
                .store
                .admit(ticket.nullifier.to_bytes(), offered, None)
                .await?
            {
                Admission::DoubleSpend { .. } => continue,
                Admission::Fresh | Admission::Replay { .. } => {
                    tracing::info!(
                        note = %short(&field::to_be_bytes(&id)),
                        blocked_ticket = i,
                        took = ?started.elapsed(),
                        "slashed note blocked"
                    );
                    return Ok("blocked");
                }
            }
        }
        tracing::error!(
            note = %short(&field::to_be_bytes(&id)),
            "slashed note has more used tickets than the watcher walks"
        );
        Ok("unblocked")
    }
}
