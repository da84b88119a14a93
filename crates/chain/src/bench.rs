//! Figures on a fresh anvil: gas from real receipts (`zkcredits bench chain`) and the
//! time a new client takes to sync a large tree (`zkcredits bench sync`).

use alloy::primitives::B256;
use serde::{Deserialize, Serialize};
use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::note::note_id;

use crate::client::{DepositOutcome, PoolClient, Violation};
use crate::close::{NoteToClose, prepare_close};
use crate::testing::{PROVIDER, SimulatedNote, TestChain, dev_close_prover, test_server_key};
use crate::{Error, Result};
use zkcredits_protocol::merkle::LeanImt;
use zkcredits_protocol::note::NoteSecret;

/// Leaves the pool holds before the single deposits are measured.
pub const PREFILL_LEAVES: u64 = 1_000;
/// Number of single deposits averaged in `deposit_gas`: leaf indices 1000..=1007, whose
/// trailing 1 bits (0, 1, 0, 2, 0, 1, 0, 4) average exactly one node hash per deposit,
/// the long-run mean over all indices.
pub const SINGLE_DEPOSITS: u64 = 8;

/// Gas used, from receipts. Serialises to
/// `{"deposit_gas":N,"deposit10_gas":N,"slash_gas":N,"record10_gas":N,"commit_root_gas":N,
/// "close_coop_gas":N,"close_relayed_gas":N,"close_unilateral_gas":N,"finalize_gas":N,
/// "challenge_gas":N}`.
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
    /// One `closeCooperative` with a real proof (m = 0, three transfers, the payout to a
    /// fresh address).
    pub close_coop_gas: u64,
    /// One `closeCooperative` sent by the gateway's relay: a relay fee to the relay's
    /// account (which already holds tokens), four transfers, the payout to a fresh address.
    pub close_relayed_gas: u64,
    /// One `closeUnilateral` with a real proof (stores the pending close).
    pub close_unilateral_gas: u64,
    /// One `finalize` of that close after the window (three transfers).
    pub finalize_gas: u64,
    /// One `challenge` of a stale unilateral close (slash, bounty 0).
    pub challenge_gas: u64,
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
    let credits = Credits::new(1_000);
    user.approve(alloy::primitives::U256::MAX).await?;

    let notes = |from: u64, n: u64| -> Vec<(Fr, Credits)> {
        (from..from + n)
            .map(|i| (note_id(secret(i)), credits))
            .collect()
    };
    let mut tree = LeanImt::new();
    let mut next = 0u64;
    while next < PREFILL_LEAVES {
        let n = (PREFILL_LEAVES - next).min(200);
        let out = user.deposit_many(&notes(next, n)).await?;
        push_leaves(&mut tree, &out)?;
        next += n;
    }
    let first_single = next;
    let mut single = 0u64;
    for _ in 0..SINGLE_DEPOSITS {
        let out = user.deposit(note_id(secret(next)), credits).await?;
        push_leaves(&mut tree, &out)?;
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
    push_leaves(&mut tree, &deposit10)?;
    let k = secret(first_single);
    let slash = user.slash(k).await?;
    let closes = bench_closes(&chain, &user, &provider, &mut tree).await?;
    let violations: Vec<Violation> = (0..10u64)
        .map(|i| Violation {
            nullifier: zkcredits_protocol::rln::Nullifier::from_field(Fr::from(77_000 + i)),
            evidence_hash: B256::repeat_byte(i as u8 + 1),
            penalty: Credits::new(10 * i),
        })
        .collect();
    let record = provider.record_violations(&violations).await?;
    let report = GasReport {
        deposit_gas: single / SINGLE_DEPOSITS,
        deposit10_gas: deposit10.tx.gas_used,
        slash_gas: slash.tx.gas_used,
        record10_gas: record.tx.gas_used,
        commit_root_gas: commit.tx.gas_used,
        close_coop_gas: closes.coop,
        close_relayed_gas: closes.relayed,
        close_unilateral_gas: closes.unilateral,
        finalize_gas: closes.finalize,
        challenge_gas: closes.challenge,
    };
    tracing::info!(?report, "gas measured");
    Ok(report)
}

fn push_leaves(tree: &mut LeanImt, out: &DepositOutcome) -> Result<()> {
    for n in &out.notes {
        tree.push(n.leaf)?;
    }
    Ok(())
}

struct CloseGas {
    coop: u64,
    unilateral: u64,
    finalize: u64,
    challenge: u64,
    relayed: u64,
}

/// Four notes with three requests each: a cooperative close, a unilateral close and its
/// finalize, a stale unilateral close challenged, and a relayed close.
async fn bench_closes(
    chain: &TestChain,
    user: &PoolClient,
    provider: &PoolClient,
    tree: &mut LeanImt,
) -> Result<CloseGas> {
    let server = test_server_key();
    provider.accept_server_key(server.public_key()).await?;
    let secrets: Vec<NoteSecret> = (0..4u64)
        .map(|i| NoteSecret::from_field(secret(1_000_000 + i)))
        .collect();
    let batch: Vec<(Fr, Credits)> = secrets
        .iter()
        .map(|s| (s.id(), Credits::new(20_000)))
        .collect();
    let out = user.deposit_many(&batch).await?;
    push_leaves(tree, &out)?;
    let root = user.root().await?;
    let mut notes = Vec::new();
    for (s, d) in secrets.into_iter().zip(&out.notes) {
        let mut note = SimulatedNote::new(s, d);
        for r in 0..3u64 {
            note.request(
                &server,
                Fr::from(500 + r),
                Fr::from(900 + r),
                Credits::new(250),
                Credits::ZERO,
            )?;
        }
        notes.push(note);
    }
    let prover = dev_close_prover()?;
    let deployment = chain.deployment();
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(5);
    let prove = |note: &SimulatedNote,
                 state: &zkcredits_protocol::state::NoteState,
                 to: crate::ClosePayout,
                 rng: &mut rand_chacha::ChaCha20Rng|
     -> Result<crate::PreparedClose> {
        let path = tree.path(note.leaf_index)?;
        prepare_close(
            prover,
            deployment,
            NoteToClose {
                secret: &note.secret,
                deposit: note.deposit,
                expiry_epoch: note.expiry_epoch,
                path: &path,
                root,
                state,
                server_key: server.public_key(),
            },
            to,
            false,
            rng,
        )
    };
    // Payouts to fresh addresses: the worst case (a new token balance slot).
    let fresh =
        |i: u8| crate::ClosePayout::direct(alloy::primitives::Address::repeat_byte(0x70 + i));

    let coop = prove(&notes[0], &notes[0].state, fresh(0), &mut rng)?;
    let clearance = crate::clearance::sign_clearance(
        &chain.signer(PROVIDER),
        deployment.chain_id,
        deployment.pool,
        coop.nc(),
        coop.nullifier(),
    )?;
    let coop_gas = user.close_cooperative(&coop, &clearance).await?.tx.gas_used;

    let uni = prove(&notes[1], &notes[1].state, fresh(1), &mut rng)?;
    let uni_gas = user.close_unilateral(&uni).await?.tx.gas_used;
    chain.advance(deployment.constants.challenge_window).await?;
    let finalize_gas = user.finalize(uni.nc()).await?.tx.gas_used;

    let stale_state = notes[2].history[1];
    let stale = prove(&notes[2], &stale_state, fresh(2), &mut rng)?;
    let pending = user.close_unilateral(&stale).await?;
    let recovered = zkcredits_protocol::rln::recover(
        notes[2].shares[1],
        zkcredits_protocol::rln::Share {
            x: pending.x_w,
            y: pending.y_w,
        },
    )
    .map_err(|e| Error::Bench {
        what: "share recovery",
        source: Box::new(e),
    })?;
    let challenge_gas = provider
        .challenge(stale.nc(), recovered.k, recovered.slope)
        .await?
        .tx
        .gas_used;

    // The provider's account relays (the gateway's relay signs with the provider key).
    let to = crate::ClosePayout::relayed(
        alloy::primitives::Address::repeat_byte(0x73),
        provider.sender(),
        Credits::new(100),
    );
    let relayed = prove(&notes[3], &notes[3].state, to, &mut rng)?;
    let clearance = crate::clearance::sign_clearance(
        &chain.signer(PROVIDER),
        deployment.chain_id,
        deployment.pool,
        relayed.nc(),
        relayed.nullifier(),
    )?;
    let calldata = crate::RelayedClose::encode(&relayed, &clearance);
    let relayed_gas = provider
        .relay_close(
            &crate::RelayedClose::decode(&calldata).map_err(|e| Error::Bench {
                what: "decoding the relayed close",
                source: Box::new(e),
            })?,
        )
        .await?
        .tx
        .gas_used;
    Ok(CloseGas {
        relayed: relayed_gas,
        coop: coop_gas,
        unilateral: uni_gas,
        finalize: finalize_gas,
        challenge: challenge_gas,
    })
}

// ---------------------------------------------------------------------- tree sync

/// Notes in the pool that `zkcredits bench sync` makes a fresh client sync.
pub const SYNC_NOTES: u64 = 100_000;
/// Notes per `depositMany` while the pool is filled (about 120M gas each).
pub const SYNC_BATCH: u64 = 1_000;

/// Gas allowed per note of a `depositMany` while the pool is filled: a note costs about
/// 120k (its leaf hash, its record, one frontier hash on average), a few of them more.
const SYNC_GAS_PER_NOTE: u64 = 200_000;
/// `depositMany` transactions sent before waiting for the first receipt: anvil executes
/// them one after the other anyway; this only hides the round trips.
const SYNC_IN_FLIGHT: usize = 8;

/// What `zkcredits bench sync` measured. Serialises to
/// `{"notes":N,"sync_s":F,"fetch_s":F,"decode_s":F,"build_s":F,"persist_s":F,"node_s":F,"log_bytes":N,"rpc_calls":N,
/// "log_pages":N,"blocks":N,"commits":N,"setup_s":F}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncFigures {
    /// Leaves of the synced tree.
    pub notes: u64,
    /// Wall-clock seconds of the whole sync of a fresh indexer (connect, every request,
    /// decoding, tree building, the root checks), in seconds.
    pub sync_s: f64,
    /// Of which waiting for `eth_getLogs` answers (the node's work, the transfer and
    /// alloy's JSON decoding).
    pub fetch_s: f64,
    /// Of which decoding the logs' ABI data and checking their indices.
    pub decode_s: f64,
    /// Of which building the tree and checking every committed root (Poseidon).
    pub build_s: f64,
    /// Of which writing the indexer's state file (as the client keeps it).
    pub persist_s: f64,
    /// The same logs asked for again after the sync, in one `eth_getLogs` whose answer is
    /// kept as raw JSON: the node's work and the transfer, without decoding into logs.
    pub node_s: f64,
    /// Size of that answer, bytes of JSON.
    pub log_bytes: u64,
    /// JSON-RPC requests the sync made.
    pub rpc_calls: u64,
    /// `eth_getLogs` pages among them.
    pub log_pages: u64,
    /// Blocks the sync examined.
    pub blocks: u64,
    /// `RootCommitted` events checked against the rebuilt tree.
    pub commits: u64,
    /// Seconds spent filling the pool (not part of the sync).
    pub setup_s: f64,
}

/// Starts anvil (block gas limit raised for large batches), deploys a dev pool, fills it
/// with `notes` notes by `depositMany` of `batch` notes (untimed), then times a fresh
/// [`Indexer`](crate::Indexer) (empty state, as a new user's) syncing the whole tree from
/// the node, and checks that its root is the pool's `root()`.
pub async fn bench_sync(notes: u64, batch: u64) -> Result<SyncFigures> {
    use alloy::network::TransactionBuilder;
    use alloy::primitives::U256;
    use alloy::providers::Provider;
    use alloy::rpc::types::TransactionRequest;
    use alloy::sol_types::{SolCall, SolEvent};
    use std::time::Instant;

    use crate::bindings::{ZkCreditsPool, fr_to_u256};

    let batch = batch.clamp(1, notes.max(1));
    let tx_gas = batch * SYNC_GAS_PER_NOTE + 1_000_000;
    // Blocks four times the largest transaction: one transaction per block (anvil mines
    // each on arrival) stays under the base fee's target, so the fee never climbs.
    let gas_limit = (4 * tx_gas).to_string();
    let setup_start = Instant::now();
    let chain = TestChain::with_anvil_args(&["--gas-limit", &gas_limit], |_| {}).await?;
    let deployment = chain.deployment().clone();
    let user = chain.client(2).await?;
    user.approve(U256::MAX).await?;

    // Transactions built by hand (nonce, gas and fees set), so none is estimated first:
    // anvil's estimate executes a 120M-gas batch several times over.
    let sender = chain.address(2);
    let provider = crate::rpc::wallet_provider(chain.url(), chain.signer(2))?;
    let mut nonce = provider.get_transaction_count(sender).await?;
    let max_fee = provider
        .get_gas_price()
        .await?
        .saturating_mul(4)
        .max(1_000_000_000);
    let amount = U256::from(1_000u64) * deployment.constants.unit;
    let mut pending = std::collections::VecDeque::new();
    let mut sent = 0u64;
    while sent < notes {
        let n = batch.min(notes - sent);
        // Distinct ids below the field modulus; the pool hashes them into leaves.
        let ids: Vec<U256> = (sent..sent + n)
            .map(|i| fr_to_u256(&secret(1_000_000_000 + i)))
            .collect();
        let amounts = vec![amount; ids.len()];
        let input = ZkCreditsPool::depositManyCall { ids, amounts }.abi_encode();
        let tx = TransactionRequest::default()
            .with_from(sender)
            .with_to(deployment.pool)
            .with_input(input)
            .with_nonce(nonce)
            .with_gas_limit(n * SYNC_GAS_PER_NOTE + 1_000_000)
            .with_max_fee_per_gas(max_fee)
            .with_max_priority_fee_per_gas(1);
        let hash = *provider.send_transaction(tx).await?.tx_hash();
        pending.push_back(hash);
        nonce += 1;
        sent += n;
        if pending.len() >= SYNC_IN_FLIGHT
            && let Some(h) = pending.pop_front()
        {
            crate::rpc::wait_receipt(&provider, h).await?;
            tracing::info!(notes = sent, "filling the pool");
        }
    }
    while let Some(h) = pending.pop_front() {
        crate::rpc::wait_receipt(&provider, h).await?;
    }
    let pool_root = user.root().await?;
    let size = user.tree_size().await?;
    if size != notes || user.committed_size().await? != notes {
        return Err(Error::Anvil(format!(
            "the pool holds {size} leaves after depositing {notes}"
        )));
    }
    let setup_s = setup_start.elapsed().as_secs_f64();

    // As the client syncs: default pages, its state file written at the end.
    let dir = std::env::temp_dir().join(format!("zkcredits-bench-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let config = crate::IndexerConfig {
        state_path: Some(dir.join("tree.bin")),
        ..crate::IndexerConfig::default()
    };
    let start = Instant::now();
    let synced = async {
        let mut indexer = crate::Indexer::connect(&deployment, config)?;
        let report = indexer.sync().await?;
        Ok::<_, Error>((indexer, report))
    }
    .await;
    let sync_s = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    let (indexer, report) = synced?;

    if indexer.tree().len() != notes || indexer.root() != pool_root {
        return Err(Error::Anvil(format!(
            "the synced tree ({} leaves, root {}) is not the pool's ({notes} leaves, root {})",
            indexer.tree().len(),
            indexer.root(),
            pool_root,
        )));
    }
    let (from, to) = match (report.from_block, report.to_block) {
        (Some(from), Some(to)) => (from, to),
        _ => return Err(Error::Anvil("the sync examined no blocks".into())),
    };
    let filter = alloy::rpc::types::Filter::new()
        .address(deployment.pool)
        .event_signature(vec![
            ZkCreditsPool::Deposited::SIGNATURE_HASH,
            ZkCreditsPool::RootCommitted::SIGNATURE_HASH,
        ])
        .from_block(from)
        .to_block(to);
    let read = crate::rpc::read_provider(chain.url())?;
    let node_start = Instant::now();
    let raw: Box<serde_json::value::RawValue> =
        read.raw_request("eth_getLogs".into(), (filter,)).await?;
    let node_s = node_start.elapsed().as_secs_f64();
    let figures = SyncFigures {
        notes,
        sync_s,
        fetch_s: report.fetch_time.as_secs_f64(),
        decode_s: report.decode_time.as_secs_f64(),
        build_s: report.build_time.as_secs_f64(),
        persist_s: report.persist_time.as_secs_f64(),
        node_s,
        log_bytes: raw.get().len() as u64,
        rpc_calls: report.rpc_calls,
        log_pages: report.pages,
        blocks: to + 1 - from,
        commits: report.commits,
        setup_s,
    };
    tracing::info!(?figures, "tree sync measured");
    Ok(figures)
}
