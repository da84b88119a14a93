//! Gas figures from real receipts on a fresh anvil (`zkcredits bench chain`).

use alloy::primitives::B256;
use serde::{Deserialize, Serialize};
use zkcredits_protocol::Fr;
use zkcredits_protocol::note::note_id;

use crate::client::Violation;
use crate::testing::{PROVIDER, TestChain};
use crate::{Error, Result};

/// Leaves the pool holds before the single deposits are measured.
pub const PREFILL_LEAVES: u64 = 1_000;
/// Number of single deposits averaged in `deposit_gas`: leaf indices 1000..=1007, whose
/// trailing 1 bits (0, 1, 0, 2, 0, 1, 0, 4) average exactly one node hash per deposit,
/// the long-run mean over all indices.
pub const SINGLE_DEPOSITS: u64 = 8;

/// Gas used, from receipts. Serialises to
/// `{"deposit_gas":N,"deposit10_gas":N,"slash_gas":N,"record10_gas":N,"commit_root_gas":N}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GasReport {
    /// One single-note `deposit` into a pool that already holds 1,000 leaves: the mean of
    /// the deposits at leaf indices 1000..=1007 (one node hash on average, as over all
    /// indices).
    pub deposit_gas: u64,
    /// One `depositMany` of 10 notes, including the root commit it ends with.
    pub deposit10_gas: u64,
    /// One `slash` (bounty 0: one transfer, to the provider).
    pub slash_gas: u64,
    /// One `recordViolations` with 10 entries.
    pub record10_gas: u64,
    /// One `commitRoot` after those single deposits (1,008 leaves: 5 node hashes).
    pub commit_root_gas: u64,
}

fn secret(i: u64) -> Fr {
    // Distinct, fixed secrets: the figures do not depend on their values.
    Fr::from(0x5eed_0000_0000u64 + i)
}

/// Starts anvil, deploys a dev pool and measures the figures of [`GasReport`].
pub async fn bench_gas() -> Result<GasReport> {
    let chain = TestChain::start().await?;
    let user = chain.client(2).await?;
    let provider = chain.client(PROVIDER).await?;
    let credits = 1_000u64;
    user.approve(alloy::primitives::U256::MAX).await?;

    let notes = |from: u64, n: u64| -> Vec<(Fr, u64)> {
        (from..from + n)
            .map(|i| (note_id(secret(i)), credits))
            .collect()
    };
    let mut next = 0u64;
    while next < PREFILL_LEAVES {
        let n = (PREFILL_LEAVES - next).min(200);
        user.deposit_many(&notes(next, n)).await?;
        next += n;
    }
    let first_single = next;
    let mut single = 0u64;
    for _ in 0..SINGLE_DEPOSITS {
        let out = user.deposit(note_id(secret(next)), credits).await?;
        next += 1;
        single += out.tx.gas_used;
    }
    let commit = user.commit_root().await?;
    if commit.committed.is_none() {
        return Err(Error::MissingEvent {
            tx: commit.tx.hash,
            event: "RootCommitted",
        });
    }
    let deposit10 = user.deposit_many(&notes(next, 10)).await?;
    let k = secret(first_single);
    let slash = user.slash(k).await?;
    let violations: Vec<Violation> = (0..10u64)
        .map(|i| Violation {
            nullifier: Fr::from(77_000 + i),
            evidence_hash: B256::repeat_byte(i as u8 + 1),
            penalty: 10 * i,
        })
        .collect();
    let record = provider.record_violations(&violations).await?;
    let report = GasReport {
        deposit_gas: single / SINGLE_DEPOSITS,
        deposit10_gas: deposit10.tx.gas_used,
        slash_gas: slash.tx.gas_used,
        record10_gas: record.tx.gas_used,
        commit_root_gas: commit.tx.gas_used,
    };
    tracing::info!(?report, "gas measured");
    Ok(report)
}
