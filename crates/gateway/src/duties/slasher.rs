//! The slasher: turns each recovered double-spend key in the store's queue into
//! `slash(k)` on chain (`docs/PROTOCOL.md §4` step 3 and §6 "Slash").
//!
//! For each pending key it checks that `H(ID, k)` is a deposited note and that the note is
//! not already slashed or closed, then submits. A note settled by anyone counts as done
//! (recorded with [`NO_TX`]); a failure is counted in the store and retried with
//! exponential backoff. Logs name a key by its note ID (public), never by `k`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use zkcredits_chain::{ContractError, PoolClient};
use zkcredits_protocol::field;
use zkcredits_protocol::note::NoteSecret;

use super::{DutiesConfig, NO_TX, TxLock, short};
use crate::store::{FieldBytes, Store, StoreError};

/// Most queued keys looked at per round.
const ROUND: usize = 256;

/// What one attempt at one key came to.
enum Attempt {
    /// Slashed by our transaction, or found settled already ([`NO_TX`]).
    Done([u8; 32]),
    /// Try again later.
    Retry(String),
}

/// Runs the slasher until `shutdown` is cancelled.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    pool: PoolClient,
    config: DutiesConfig,
    shutdown: CancellationToken,
    lock: TxLock,
) {
    // Next allowed attempt per key; empty after a restart, so a restart retries at once.
    let mut not_before: HashMap<FieldBytes, Instant> = HashMap::new();
    tracing::info!("slasher started");
    loop {
        if let Err(e) = round(&*store, &pool, &config, &lock, &mut not_before, &shutdown).await {
            tracing::warn!(error = %e, "slasher: store unavailable, will retry");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(config.slash_poll) => {}
        }
    }
    tracing::info!("slasher stopped");
}

async fn round(
    store: &dyn Store,
    pool: &PoolClient,
    config: &DutiesConfig,
    lock: &TxLock,
    not_before: &mut HashMap<FieldBytes, Instant>,
    shutdown: &CancellationToken,
) -> Result<(), StoreError> {
    for pending in store.pending_slashes(ROUND).await? {
        if shutdown.is_cancelled() {
            break;
        }
        if not_before
            .get(&pending.k)
            .is_some_and(|t| *t > Instant::now())
        {
            continue;
        }
        match attempt(pool, lock, &pending.k).await {
            Attempt::Done(tx) => {
                store.finish_slash(pending.k, Some(tx)).await?;
                not_before.remove(&pending.k);
            }
            Attempt::Retry(why) => {
                store.finish_slash(pending.k, None).await?;
                let attempts = pending.attempts.saturating_add(1);
                let delay = config
                    .slash_backoff
                    .saturating_mul(1u32 << attempts.min(16))
                    .min(config.slash_backoff_max);
                not_before.insert(pending.k, Instant::now() + delay);
                tracing::warn!(
                    note = %note_label(&pending.k),
                    attempts,
                    retry_in = ?delay,
                    why,
                    "slash failed"
                );
            }
        }
    }
    Ok(())
}

/// The note's ID, short, for logs (the ID is public; `k` is not).
fn note_label(k: &FieldBytes) -> String {
    match field::from_be_bytes_canonical(k) {
        Some(k) => short(&field::to_be_bytes(&NoteSecret::from_field(k).id())),
        None => "(not a field element)".into(),
    }
}

async fn attempt(pool: &PoolClient, lock: &TxLock, k: &FieldBytes) -> Attempt {
    let Some(k) = field::from_be_bytes_canonical(k) else {
        // The store only receives keys recovered in the field; this one can never be
        // slashed, so it must not block the queue.
        tracing::error!("slash queue holds a value that is not a field element; dropped");
        return Attempt::Done(NO_TX);
    };
    let note = NoteSecret::from_field(k);
    let id = short(&field::to_be_bytes(&note.id()));
    match pool.deposit_of(note.id()).await {
        Ok(Some(_)) => {}
        // The proof showed membership, so the deposit exists; the node may lag behind.
        Ok(None) => return Attempt::Retry("no deposit with this note ID (yet)".into()),
        Err(e) => return Attempt::Retry(e.to_string()),
    }
    match pool.closed_or_slashed(note.close_nullifier()).await {
        Ok(true) => {
            tracing::info!(note = %id, "note already slashed or closed");
            return Attempt::Done(NO_TX);
        }
        Ok(false) => {}
        Err(e) => return Attempt::Retry(e.to_string()),
    }
    let _sending = lock.lock().await;
    match pool.slash(k).await {
        Ok(out) => {
            tracing::info!(
                note = %id,
                tx = %out.tx.hash,
                to_provider = %out.to_provider,
                "double spender slashed"
            );
            Attempt::Done(out.tx.hash.0)
        }
        Err(e) => match e.contract_error() {
            Some(ContractError::NoteAlreadySettled) => {
                tracing::info!(note = %id, "note settled meanwhile");
                Attempt::Done(NO_TX)
            }
            Some(ContractError::EpochClaimed) => {
                tracing::error!(
                    note = %id,
                    "cannot slash: the note's expiry epoch was already claimed; dropped"
                );
                Attempt::Done(NO_TX)
            }
            _ => Attempt::Retry(e.to_string()),
        },
    }
}
