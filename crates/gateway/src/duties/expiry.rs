//! The expiry claimer: collects what expired notes left in the pool (`docs/PROTOCOL.md §6`,
//! "Expiry"). Once an epoch has ended plus the grace period, by the chain's clock, its
//! outstanding deposits are the provider's, and `claimExpired(epoch)` pays them out.
//!
//! Epochs are visited in order from the store's cursor [`CURSOR`], the first epoch not yet
//! settled; an epoch is settled once claimed (by us or an earlier run) or once it is
//! claimable with nothing outstanding (no deposit can join a past epoch, so it stays
//! empty). A failed claim stops the round and is retried next round.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use zkcredits_chain::{ContractError, PoolClient, PoolConstants};

use super::{DutiesConfig, TxLock};
use crate::store::{Store, StoreError};

/// The store cursor holding the first expiry epoch not yet settled.
pub const CURSOR: &str = "expiry_claim";

/// Claims made, labelled by `outcome`.
pub const CLAIMS: &str = "zkcredits_expiry_claims_total";

/// Why a round stopped early.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("chain: {0}")]
    Chain(#[from] zkcredits_chain::Error),
}

/// The first moment (unix seconds) at which `epoch` may be claimed.
pub fn claimable_at(constants: &PoolConstants, epoch: u64) -> u64 {
    constants
        .genesis_time
        .saturating_add(epoch.saturating_add(1).saturating_mul(constants.epoch_len))
        .saturating_add(constants.grace)
}

/// Runs the claimer until `shutdown` is cancelled.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    pool: PoolClient,
    constants: PoolConstants,
    config: DutiesConfig,
    shutdown: CancellationToken,
    lock: TxLock,
) {
    tracing::info!("expiry claimer started");
    loop {
        if let Err(e) = round(&*store, &pool, &constants, &lock, &shutdown).await {
            tracing::warn!(error = %e, "expiry claimer: round failed, will retry");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(config.claim_poll) => {}
        }
    }
    tracing::info!("expiry claimer stopped");
}

async fn round(
    store: &dyn Store,
    pool: &PoolClient,
    constants: &PoolConstants,
    lock: &TxLock,
    shutdown: &CancellationToken,
) -> Result<(), RoundError> {
    let now = pool.chain_time().await?;
    let mut epoch = store.cursor(CURSOR).await?.unwrap_or(0);
    while claimable_at(constants, epoch) <= now && !shutdown.is_cancelled() {
        if !pool.epoch_claimed(epoch).await? && pool.outstanding(epoch).await? > 0 {
            let _sending = lock.lock().await;
            match pool.claim_expired(epoch).await {
                Ok(out) => {
                    tracing::info!(
                        epoch,
                        amount = %out.amount,
                        tx = %out.tx.hash,
                        "expired epoch claimed"
                    );
                    metrics::counter!(CLAIMS, "outcome" => "claimed").increment(1);
                }
                Err(e) if matches!(e.contract_error(), Some(ContractError::EpochClaimed)) => {
                    metrics::counter!(CLAIMS, "outcome" => "already").increment(1);
                }
                Err(e) => {
                    metrics::counter!(CLAIMS, "outcome" => "failed").increment(1);
                    return Err(e.into());
                }
            }
        }
        epoch += 1;
        store.set_cursor(CURSOR, epoch).await?;
    }
    Ok(())
}
