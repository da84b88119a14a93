//! Depositing notes: reserve note numbers in the journal (write-ahead), send one
//! `depositMany`, record what the pool's events say (`D`, `E`, leaf index), and resolve
//! reservations left pending by a crash from the chain.

use zkcredits_chain::PoolClient;
use zkcredits_chain::alloy::primitives::B256;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::note::WalletSeed;

use crate::error::ClientError;
use crate::journal::{DepositInfo, Journal, NoteStatus};

/// What [`deposit_notes`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepositReport {
    /// The deposit transaction.
    pub tx_hash: B256,
    /// The block it was mined in.
    pub block_number: u64,
    /// The gas it used.
    pub gas_used: u64,
    /// Each new note's number and deposit.
    pub notes: Vec<(u64, DepositInfo)>,
}

/// Deposits `count` notes of `credits` credit units each in one transaction (approving
/// the token first when needed) and records them in the journal.
///
/// The note numbers are reserved in the journal before the transaction is sent; if the
/// process dies before the receipt is recorded, [`resolve_pending`] finds the notes on
/// chain from their secrets.
pub async fn deposit_notes(
    pool: &PoolClient,
    journal: &mut Journal,
    seed: &WalletSeed,
    credits: Credits,
    count: u64,
) -> Result<DepositReport, ClientError> {
    let reserved = journal.reserve_notes(count)?;
    let ids: Vec<_> = reserved
        .iter()
        .map(|j| (seed.note_secret(*j).id(), credits))
        .collect();
    let outcome = pool.deposit_many(&ids).await.map_err(ClientError::Chain)?;
    if outcome.notes.len() != reserved.len() {
        return Err(ClientError::DepositMismatch(
            "the deposit emitted another number of notes than were sent",
        ));
    }
    let mut notes = Vec::with_capacity(reserved.len());
    for (j, (event, (id, _))) in reserved.iter().zip(outcome.notes.iter().zip(&ids)) {
        if event.id != *id {
            return Err(ClientError::DepositMismatch(
                "the pool reported the notes in another order than sent",
            ));
        }
        let info = DepositInfo {
            id: event.id,
            deposit: event.amount,
            expiry_epoch: event.expiry_epoch,
            leaf_index: event.leaf_index,
            tx_hash: outcome.tx.hash.0,
        };
        journal.record_deposit(*j, &info)?;
        notes.push((*j, info));
    }
    Ok(DepositReport {
        tx_hash: outcome.tx.hash,
        block_number: outcome.tx.block_number,
        gas_used: outcome.tx.gas_used,
        notes,
    })
}

/// Looks up every note still `pending_deposit` on chain and records those the pool
/// holds. Returns the note numbers resolved.
pub async fn resolve_pending(
    pool: &PoolClient,
    journal: &mut Journal,
    seed: &WalletSeed,
) -> Result<Vec<u64>, ClientError> {
    let pending: Vec<u64> = journal
        .notes()?
        .into_iter()
        .filter(|n| n.status == NoteStatus::PendingDeposit)
        .map(|n| n.j)
        .collect();
    let mut resolved = Vec::new();
    for j in pending {
        let id = seed.note_secret(j).id();
        if let Some(record) = pool.deposit_of(id).await.map_err(ClientError::Chain)? {
            journal.record_deposit(
                j,
                &DepositInfo {
                    id,
                    deposit: record.amount,
                    expiry_epoch: record.expiry_epoch,
                    leaf_index: record.leaf_index,
                    tx_hash: [0; 32],
                },
            )?;
            resolved.push(j);
        }
    }
    Ok(resolved)
}
