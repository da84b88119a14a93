//! The violation logger: sends the store's pending policy violations to the pool with
//! `recordViolations` (`docs/PROTOCOL.md §6` "Policy penalty"), a full batch at once and
//! a partial one after [`DutiesConfig::violation_interval`].
//!
//! Delivery is at least once: if the transaction lands but marking it in the store fails
//! (or its receipt times out), the batch is sent again and the log holds the events twice.
//! An auditor compares burns with the log per nullifier, so a repeat is visible and
//! harmless.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use zkcredits_chain::alloy::primitives::B256;
use zkcredits_chain::{ContractError, PoolClient, Violation as ChainViolation};
use zkcredits_protocol::rln::Nullifier;

use super::{DutiesConfig, NO_TX, TxLock, short};
use crate::store::{Store, StoreError, Violation};

/// Runs the violation logger until `shutdown` is cancelled.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    pool: PoolClient,
    config: DutiesConfig,
    shutdown: CancellationToken,
    lock: TxLock,
) {
    // When the oldest pending violation was first seen; a partial batch waits this long.
    let mut waiting_since: Option<Instant> = None;
    let mut not_before = Instant::now();
    tracing::info!("violation logger started");
    loop {
        if Instant::now() >= not_before {
            match round(&*store, &pool, &config, &lock, &mut waiting_since).await {
                Ok(()) => {}
                Err(why) => {
                    tracing::warn!(why, "recordViolations failed, will retry");
                    not_before = Instant::now() + config.slash_backoff;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(config.violation_poll) => {}
        }
    }
    tracing::info!("violation logger stopped");
}

async fn round(
    store: &dyn Store,
    pool: &PoolClient,
    config: &DutiesConfig,
    lock: &TxLock,
    waiting_since: &mut Option<Instant>,
) -> Result<(), String> {
    let batch = config.violation_batch.max(1);
    let pending = store
        .pending_violations(batch)
        .await
        .map_err(|e| e.to_string())?;
    if pending.is_empty() {
        *waiting_since = None;
        return Ok(());
    }
    let since = *waiting_since.get_or_insert_with(Instant::now);
    if pending.len() < batch && since.elapsed() < config.violation_interval {
        return Ok(());
    }
    submit(store, pool, lock, pending).await?;
    *waiting_since = None;
    Ok(())
}

async fn submit(
    store: &dyn Store,
    pool: &PoolClient,
    lock: &TxLock,
    pending: Vec<Violation>,
) -> Result<(), String> {
    let mut ids = Vec::with_capacity(pending.len());
    let mut batch = Vec::with_capacity(pending.len());
    let mut unsendable = Vec::new();
    for v in pending {
        match Nullifier::from_bytes(&v.nullifier) {
            Some(nullifier) => {
                ids.push(v.id);
                batch.push(ChainViolation {
                    nullifier,
                    evidence_hash: B256::from(v.evidence_hash),
                    penalty: v.penalty,
                });
            }
            None => unsendable.push(v.id),
        }
    }
    if !unsendable.is_empty() {
        tracing::error!(ids = ?unsendable, "violations with a nullifier outside the field; dropped");
        mark(store, &unsendable, NO_TX).await?;
    }
    if batch.is_empty() {
        return Ok(());
    }
    let sent = {
        let _sending = lock.lock().await;
        pool.record_violations(&batch).await
    };
    match sent {
        Ok(out) => {
            tracing::info!(count = ids.len(), tx = %out.tx.hash, "violations logged on chain");
            mark(store, &ids, out.tx.hash.0).await
        }
        Err(e) => {
            if let Some(ContractError::PenaltyTooLarge { index, penalty }) = e.contract_error() {
                // One bad item would block every later batch: drop it, send the rest.
                if let Some(i) = usize::try_from(*index).ok().filter(|&i| i < ids.len()) {
                    tracing::error!(
                        id = ids[i],
                        nullifier = %short(&batch[i].nullifier.to_bytes()),
                        penalty,
                        "penalty above P_max; dropped"
                    );
                    mark(store, &ids[i..=i], NO_TX).await?;
                }
            }
            Err(e.to_string())
        }
    }
}

async fn mark(store: &dyn Store, ids: &[i64], tx: [u8; 32]) -> Result<(), String> {
    store
        .mark_violations_submitted(ids, tx)
        .await
        .map_err(|e: StoreError| e.to_string())
}
