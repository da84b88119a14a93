//! The event indexer: rebuilds the pool's tree ([`LeanImt`]) and the window of recent roots
//! from the `Deposited` and `RootCommitted` logs alone.
//!
//! - Logs are fetched in pages of `page_blocks` blocks (halved when the node refuses a page,
//!   e.g. for too many results), up to the head minus `confirmations`.
//! - A page's leaves are appended at once ([`LeanImt::extend`]: each new node hashed once,
//!   large levels on several threads), and the roots in between (committed roots to
//!   check, the last `root_window` blocks' roots) read off the prefixes of the result, so
//!   a fresh sync of a large pool costs about one hash per leaf, not one per level per
//!   leaf.
//! - Leaves must arrive with contiguous indices: a gap or a repeat is an error, never
//!   silently skipped.
//! - Every `RootCommitted(root, size)` is checked against the rebuilt tree (it follows, in
//!   log order, exactly the `size` deposits it covers), so a rebuilt tree is verified by the
//!   contract's own hashes.
//! - The roots a gateway may accept: the root after every block with deposits (the trees
//!   clients sync to), the last `root_window` of them, and the committed roots.
//! - Progress (the tree as [`LeanImt::to_bytes`], the roots, the next block) is written
//!   atomically to `state_path`, so a restart resumes where the last run stopped.
//!
//! - Reorgs: after each sync the indexer keeps a checkpoint (block number, block hash,
//!   leaves) of the block it synced to, the last [`CHECKPOINTS`] of them. Before the next
//!   sync it compares the newest with the chain; if its hash changed, it rewinds to the
//!   newest checkpoint still on the chain (the tree truncated to its leaves, roots after
//!   it dropped) and syncs again from there, or from the deploy block if none is left. A
//!   sync during which the target block changed hash is undone the same way. Roots of
//!   dropped blocks are never accepted again: a deposit a reorg took back paid nothing.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use sha2::{Digest, Sha256};
use zkcredits_protocol::merkle::{LeanImt, Root};
use zkcredits_protocol::{Fr, field};

use crate::bindings::ZkCreditsPool;
use crate::client::{CommittedRoot, committed_root, deposited_note};
use crate::deploy::Deployment;
use crate::{Error, Result, fsutil};

const STATE_MAGIC: &[u8; 4] = b"ZKCI";
/// 1: tree, roots, next block. 2: also the reorg checkpoints.
const STATE_VERSION: u8 = 2;

/// How many recent checkpoints (synced-to blocks and their hashes) are kept: the reorg
/// depth survived without a full resync.
pub const CHECKPOINTS: usize = 64;

/// How the indexer fetches, what it keeps and where it persists.
#[derive(Clone, Debug)]
pub struct IndexerConfig {
    /// Blocks per `eth_getLogs` request.
    pub page_blocks: u64,
    /// Blocks below the head that are left alone until they are this deep.
    pub confirmations: u64,
    /// How many recent roots (per-block and committed) to keep.
    pub root_window: usize,
    /// Where to persist progress; `None` keeps it in memory only.
    pub state_path: Option<PathBuf>,
    /// Persist at least this often during a long sync (and always at its end).
    pub persist_every: Duration,
    /// Show an indicatif progress bar while syncing.
    pub progress: bool,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self {
            page_blocks: 2_000,
            confirmations: 0,
            root_window: 64,
            state_path: None,
            persist_every: Duration::from_secs(10),
            progress: false,
        }
    }
}

/// What one call to [`Indexer::sync`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// First block examined (`None` when there was nothing new).
    pub from_block: Option<u64>,
    /// Last block examined.
    pub to_block: Option<u64>,
    /// `Deposited` events applied.
    pub deposits: u64,
    /// `RootCommitted` events checked.
    pub commits: u64,
    /// `eth_getLogs` requests made.
    pub pages: u64,
    /// Reorgs detected and rewound before or during this sync.
    pub reorgs: u64,
    /// JSON-RPC requests made (the pages, the head, the block hashes compared).
    pub rpc_calls: u64,
    /// Time spent in `eth_getLogs` (the node's answer, its transfer and JSON decoding).
    pub fetch_time: Duration,
    /// Time spent decoding the logs' ABI data and checking indices.
    pub decode_time: Duration,
    /// Time spent building the tree and checking committed roots (the Poseidon hashing).
    pub build_time: Duration,
    /// Time spent writing the state to `state_path`.
    pub persist_time: Duration,
}

/// A block the indexer synced to: if the chain's block at that height gets another hash,
/// everything after this checkpoint is rewound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Checkpoint {
    block: u64,
    hash: B256,
    /// The tree's size once that block was applied.
    leaves: u64,
}

/// The indexer's progress: what is persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    tree: LeanImt,
    /// The next block to examine.
    next_block: u64,
    /// The root after each of the last blocks with deposits, oldest first.
    recent_roots: VecDeque<Root>,
    /// The last committed roots, oldest first.
    committed: VecDeque<CommittedRoot>,
    /// The last synced-to blocks, oldest first.
    checkpoints: VecDeque<Checkpoint>,
}

impl State {
    fn fresh(deploy_block: u64) -> Self {
        Self {
            tree: LeanImt::new(),
            next_block: deploy_block,
            recent_roots: VecDeque::new(),
            committed: VecDeque::new(),
            checkpoints: VecDeque::new(),
        }
    }

    /// Back to `checkpoint`: what came after it is dropped, and so are the per-block
    /// roots (the window refills as blocks arrive; a client whose root fell out resyncs).
    fn rewind_to(&mut self, checkpoint: Checkpoint) {
        self.tree.truncate(checkpoint.leaves);
        self.next_block = checkpoint.block + 1;
        self.recent_roots.clear();
        if !self.tree.is_empty() {
            self.recent_roots.push_back(self.tree.root());
        }
        let leaves = checkpoint.leaves;
        self.committed.retain(|c| c.size <= leaves);
        while self
            .checkpoints
            .back()
            .is_some_and(|c| c.block > checkpoint.block)
        {
            self.checkpoints.pop_back();
        }
    }
}

/// One decoded, checked log of a page.
#[derive(Clone, Copy, Debug)]
enum Event {
    Leaf(Fr),
    Commit(CommittedRoot),
}

/// Rebuilds the tree and the recent roots of one pool from its logs.
#[derive(Debug)]
pub struct Indexer {
    provider: DynProvider,
    chain_id: u64,
    pool: Address,
    config: IndexerConfig,
    state: State,
    deploy_block: u64,
    /// Set when a committed root disagreed with the rebuilt tree after part of a page was
    /// applied: the in-memory state is then unusable (and never persisted).
    poisoned: bool,
}

impl Indexer {
    /// An indexer for `deployment`, through `provider`: loads the persisted state at
    /// `config.state_path` when there is one (it must be for the same chain and pool), else
    /// starts at the deploy block.
    pub fn new(
        provider: DynProvider,
        deployment: &Deployment,
        config: IndexerConfig,
    ) -> Result<Self> {
        let fresh = State::fresh(deployment.deploy_block);
        let state = match &config.state_path {
            Some(path) if path.exists() => {
                let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
                let s = decode_state(path, &bytes, deployment.chain_id, deployment.pool)?;
                tracing::info!(
                    path = %path.display(),
                    leaves = s.tree.len(),
                    next_block = s.next_block,
                    "indexer resumes"
                );
                s
            }
            _ => fresh,
        };
        Ok(Self {
            provider,
            chain_id: deployment.chain_id,
            pool: deployment.pool,
            config,
            state,
            deploy_block: deployment.deploy_block,
            poisoned: false,
        })
    }

    /// An indexer reading through the deployment's RPC URL.
    pub fn connect(deployment: &Deployment, config: IndexerConfig) -> Result<Self> {
        Self::new(
            crate::rpc::read_provider(&deployment.rpc_url)?,
            deployment,
            config,
        )
    }

    /// The rebuilt tree.
    pub fn tree(&self) -> &LeanImt {
        &self.state.tree
    }

    /// The root of the rebuilt tree.
    pub fn root(&self) -> Root {
        self.state.tree.root()
    }

    /// The root after each of the last `root_window` blocks with deposits, oldest first.
    pub fn recent_roots(&self) -> impl ExactSizeIterator<Item = &Root> {
        self.state.recent_roots.iter()
    }

    /// The last `root_window` committed roots, oldest first.
    pub fn committed_roots(&self) -> impl ExactSizeIterator<Item = &CommittedRoot> {
        self.state.committed.iter()
    }

    /// Whether `root` is a recent root (per block or committed): what a gateway accepts.
    pub fn is_recent_root(&self, root: &Root) -> bool {
        self.state.recent_roots.contains(root)
            || self.state.committed.iter().any(|c| c.root == *root)
    }

    /// The next block the indexer will examine (everything before it is applied).
    pub fn next_block(&self) -> u64 {
        self.state.next_block
    }

    /// Syncs up to the head minus the confirmation depth.
    pub async fn sync(&mut self) -> Result<SyncReport> {
        let head = self.provider.get_block_number().await?;
        let mut report = match head.checked_sub(self.config.confirmations) {
            Some(target) => self.sync_to(target).await?,
            None => SyncReport::default(),
        };
        report.rpc_calls += 1;
        Ok(report)
    }

    /// Syncs up to block `target` (inclusive), then persists.
    pub async fn sync_to(&mut self, target: u64) -> Result<SyncReport> {
        self.check_usable()?;
        let mut report = SyncReport::default();
        self.rewind_if_reorged(&mut report).await?;
        let start = self.state.next_block;
        if target < start {
            return Ok(report);
        }
        let target_hash = self.block_hash(target, &mut report).await?;
        report.from_block = Some(start);
        let bar = self.config.progress.then(|| {
            let bar = indicatif::ProgressBar::new(target - start + 1);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {pos}/{len} blocks, {per_sec}, eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message("syncing the note tree");
            bar
        });
        let mut span = self.config.page_blocks.max(1);
        let mut last_persist = Instant::now();
        while self.state.next_block <= target {
            let from = self.state.next_block;
            let to = from.saturating_add(span - 1).min(target);
            let filter = Filter::new()
                .address(self.pool)
                .event_signature(vec![
                    ZkCreditsPool::Deposited::SIGNATURE_HASH,
                    ZkCreditsPool::RootCommitted::SIGNATURE_HASH,
                ])
                .from_block(from)
                .to_block(to);
            let fetch_start = Instant::now();
            let fetched = self.provider.get_logs(&filter).await;
            report.fetch_time += fetch_start.elapsed();
            report.rpc_calls += 1;
            let logs = match fetched {
                Ok(logs) => logs,
                Err(e) if span > 1 => {
                    span = (span / 2).max(1);
                    tracing::warn!(from, to, span, error = %e, "eth_getLogs refused a page; halving it");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            report.pages += 1;
            self.apply_page(from, to, logs, &mut report)?;
            if let Some(bar) = &bar {
                bar.set_position(to - start + 1);
            }
            tracing::debug!(from, to, leaves = self.state.tree.len(), "page applied");
            if self.config.state_path.is_some()
                && last_persist.elapsed() >= self.config.persist_every
            {
                let persist_start = Instant::now();
                self.persist()?;
                report.persist_time += persist_start.elapsed();
                last_persist = Instant::now();
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        report.to_block = Some(target);
        // The logs must come from the chain whose block `target` has this hash: if it
        // changed while the pages were read, undo this sync and let the next one redo it.
        match (target_hash, self.block_hash(target, &mut report).await?) {
            (Some(before), Some(after)) if before == after => {
                self.state.checkpoints.push_back(Checkpoint {
                    block: target,
                    hash: before,
                    leaves: self.state.tree.len(),
                });
                while self.state.checkpoints.len() > CHECKPOINTS {
                    self.state.checkpoints.pop_front();
                }
            }
            _ => {
                tracing::warn!(target, "the chain reorganised during a sync; undoing it");
                report.reorgs += 1;
                self.rewind_if_reorged(&mut report).await?;
                if self.state.next_block > start {
                    // No checkpoint to compare with yet: start over from the deploy block.
                    self.state = State::fresh(self.deploy_block);
                }
            }
        }
        let persist_start = Instant::now();
        self.persist()?;
        report.persist_time += persist_start.elapsed();
        tracing::info!(
            from = start,
            to = target,
            deposits = report.deposits,
            commits = report.commits,
            leaves = self.state.tree.len(),
            rpc_calls = report.rpc_calls,
            fetch_ms = report.fetch_time.as_millis() as u64,
            decode_ms = report.decode_time.as_millis() as u64,
            build_ms = report.build_time.as_millis() as u64,
            persist_ms = report.persist_time.as_millis() as u64,
            "indexer synced"
        );
        Ok(report)
    }

    /// The hash of block `number` on the node's current chain (`None` beyond its head).
    async fn block_hash(&self, number: u64, report: &mut SyncReport) -> Result<Option<B256>> {
        report.rpc_calls += 1;
        Ok(self
            .provider
            .get_block_by_number(number.into())
            .await?
            .map(|b| b.header.hash))
    }

    /// Compares the newest checkpoint with the chain; on a mismatch rewinds to the newest
    /// checkpoint still on it, or to the deploy block when none is.
    async fn rewind_if_reorged(&mut self, report: &mut SyncReport) -> Result<()> {
        let Some(newest) = self.state.checkpoints.back().copied() else {
            return Ok(());
        };
        if self.block_hash(newest.block, report).await? == Some(newest.hash) {
            if self.state.next_block != newest.block + 1 {
                // A sync that did not finish (or was undone): redo it from the checkpoint.
                self.state.rewind_to(newest);
            }
            return Ok(());
        }
        report.reorgs += 1;
        let mut kept = None;
        for c in self.state.checkpoints.iter().rev().skip(1) {
            if self.block_hash(c.block, report).await? == Some(c.hash) {
                kept = Some(*c);
                break;
            }
        }
        match kept {
            Some(c) => {
                tracing::warn!(
                    from_block = c.block + 1,
                    leaves = c.leaves,
                    dropped = self.state.tree.len() - c.leaves,
                    "chain reorganised: rewinding the note tree"
                );
                self.state.rewind_to(c);
            }
            None => {
                tracing::warn!(
                    "chain reorganised deeper than the kept checkpoints: resyncing from the \
                     deploy block"
                );
                self.state = State::fresh(self.deploy_block);
            }
        }
        Ok(())
    }

    /// Applies the logs of blocks `from..=to`, in (block, log index) order.
    ///
    /// First every log is decoded and the leaf indices and commit sizes are checked
    /// against the tree without touching it, so a gap leaves the indexer as it was. Then
    /// the leaves are appended in place (no copy of the tree per page) and each committed
    /// root is compared with the rebuilt one; a mismatch there poisons the indexer.
    ///
    /// A page's leaves are appended at once ([`LeanImt::extend`]: each node hashed once,
    /// large levels on several threads); the roots in between (each committed root's, and
    /// those at the end of the last `root_window` blocks with deposits: the earlier blocks'
    /// roots would fall out of the window within this page anyway) are then read off the
    /// prefixes of the new tree ([`LeanImt::root_at`]). They are the roots appending leaf
    /// by leaf gives.
    fn apply_page(
        &mut self,
        from: u64,
        to: u64,
        mut logs: Vec<Log>,
        report: &mut SyncReport,
    ) -> Result<()> {
        let decode_start = Instant::now();
        logs.retain(|l| !l.removed && l.address() == self.pool);
        logs.sort_by_key(|l| (l.block_number, l.log_index));
        let mut events = Vec::with_capacity(logs.len());
        let mut expected = self.state.tree.len();
        for log in &logs {
            let block = log.block_number.unwrap_or_default();
            let topic = log.topic0().copied().unwrap_or_default();
            if topic == ZkCreditsPool::Deposited::SIGNATURE_HASH {
                let e = ZkCreditsPool::Deposited::decode_log_data(log.data())
                    .map_err(|e| Error::undecodable_log("Deposited", e))?;
                let note = deposited_note(&e)?;
                if note.leaf_index != expected {
                    return Err(Error::LeafIndexGap {
                        expected,
                        got: note.leaf_index,
                    });
                }
                expected += 1;
                events.push((block, Event::Leaf(note.leaf)));
            } else if topic == ZkCreditsPool::RootCommitted::SIGNATURE_HASH {
                let e = ZkCreditsPool::RootCommitted::decode_log_data(log.data())
                    .map_err(|e| Error::undecodable_log("RootCommitted", e))?;
                let c = committed_root(&e)?;
                if c.size != expected {
                    return Err(Error::RootMismatch {
                        size: c.size,
                        tree_size: expected,
                        chain: c.root,
                        rebuilt: None,
                    });
                }
                events.push((block, Event::Commit(c)));
            }
        }
        drop(logs);
        report.decode_time += decode_start.elapsed();

        let build_start = Instant::now();
        let result = self.apply_events(events, report);
        report.build_time += build_start.elapsed();
        result?;
        debug_assert!(from <= to);
        self.state.next_block = to + 1;
        Ok(())
    }

    /// The second half of [`Indexer::apply_page`]; any error here (a leaf the tree
    /// refuses, a committed root that disagrees) comes after part of the page was applied,
    /// so it poisons the indexer.
    fn apply_events(&mut self, events: Vec<(u64, Event)>, report: &mut SyncReport) -> Result<()> {
        let window = self.config.root_window.max(1);
        let result = apply_events(&mut self.state, window, events, report);
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn check_usable(&self) -> Result<()> {
        if self.poisoned {
            return Err(Error::IndexerPoisoned);
        }
        Ok(())
    }

    /// Writes the state to `state_path` (no-op without one), atomically.
    pub fn persist(&self) -> Result<()> {
        self.check_usable()?;
        let Some(path) = &self.config.state_path else {
            return Ok(());
        };
        let bytes = encode_state(&self.state, self.chain_id, self.pool);
        fsutil::write_atomic(path, &bytes)
    }
}

/// Applies decoded, checked `events` (in log order) to `state`; see [`Indexer::apply_page`].
fn apply_events(
    state: &mut State,
    window: usize,
    events: Vec<(u64, Event)>,
    report: &mut SyncReport,
) -> Result<()> {
    // Events come sorted by block, so each block's leaves are contiguous.
    let mut deposit_blocks = 0usize;
    let mut last = None;
    for (block, event) in &events {
        if matches!(event, Event::Leaf(_)) && last != Some(*block) {
            deposit_blocks += 1;
            last = Some(*block);
        }
    }
    // Only the roots of the last `window` blocks with deposits can stay in the window.
    let first_kept = deposit_blocks.saturating_sub(window);

    let base = state.tree.len();
    let mut leaves: Vec<Fr> = Vec::new();
    let mut commits: Vec<CommittedRoot> = Vec::new();
    // The tree's size at the end of each kept block with deposits.
    let mut block_ends: Vec<u64> = Vec::new();
    let mut open_block: Option<u64> = None;
    let mut closed = 0usize;
    let mut close_block = |size: u64| {
        if closed >= first_kept {
            block_ends.push(size);
        }
        closed += 1;
    };
    for (block, event) in events {
        if open_block.is_some_and(|b| b != block) {
            close_block(base + leaves.len() as u64);
            open_block = None;
        }
        match event {
            Event::Leaf(leaf) => {
                leaves.push(leaf);
                open_block = Some(block);
                report.deposits += 1;
            }
            Event::Commit(c) => commits.push(c),
        }
    }
    if open_block.is_some() {
        close_block(base + leaves.len() as u64);
    }

    // All leaves at once, so that large levels are split across threads; the roots in
    // between come from the prefixes of the result.
    state.tree.extend(&leaves)?;
    for c in commits {
        let rebuilt = state.tree.root_at(c.size)?;
        if c.root != rebuilt {
            return Err(Error::RootMismatch {
                size: c.size,
                tree_size: c.size,
                chain: c.root,
                rebuilt: Some(rebuilt),
            });
        }
        state.committed.push_back(c);
        while state.committed.len() > window {
            state.committed.pop_front();
        }
        report.commits += 1;
    }
    for size in block_ends {
        state.recent_roots.push_back(state.tree.root_at(size)?);
        while state.recent_roots.len() > window {
            state.recent_roots.pop_front();
        }
    }
    Ok(())
}

fn encode_state(s: &State, chain_id: u64, pool: Address) -> Vec<u8> {
    let tree = s.tree.to_bytes();
    let mut out =
        Vec::with_capacity(64 + tree.len() + 40 * (s.recent_roots.len() + s.committed.len()));
    out.extend_from_slice(STATE_MAGIC);
    out.push(STATE_VERSION);
    out.extend_from_slice(&chain_id.to_be_bytes());
    out.extend_from_slice(pool.as_slice());
    out.extend_from_slice(&s.next_block.to_be_bytes());
    out.extend_from_slice(&(s.recent_roots.len() as u64).to_be_bytes());
    for r in &s.recent_roots {
        out.extend_from_slice(&r.to_bytes());
    }
    out.extend_from_slice(&(s.committed.len() as u64).to_be_bytes());
    for c in &s.committed {
        out.extend_from_slice(&c.root.to_bytes());
        out.extend_from_slice(&c.size.to_be_bytes());
    }
    out.extend_from_slice(&(s.checkpoints.len() as u64).to_be_bytes());
    for c in &s.checkpoints {
        out.extend_from_slice(&c.block.to_be_bytes());
        out.extend_from_slice(c.hash.as_slice());
        out.extend_from_slice(&c.leaves.to_be_bytes());
    }
    out.extend_from_slice(&(tree.len() as u64).to_be_bytes());
    out.extend_from_slice(&tree);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// A cursor over the state file that reports what is missing.
struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn corrupt(&self, detail: &str) -> Error {
        Error::StateCorrupt {
            path: self.path.to_path_buf(),
            detail: detail.to_string(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(self.corrupt(&format!("truncated at {what}")));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn fr(&mut self, what: &str) -> Result<Fr> {
        let b = self.take(32, what)?;
        let mut a = [0u8; 32];
        a.copy_from_slice(b);
        field::from_be_bytes_canonical(&a)
            .ok_or_else(|| self.corrupt(&format!("{what} is not a field element")))
    }

    fn count(&mut self, what: &str, item_len: usize) -> Result<usize> {
        let n = self.u64(what)?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(item_len) <= self.bytes.len() => Ok(n),
            _ => Err(self.corrupt(&format!("{what} = {n} is too large"))),
        }
    }
}

fn decode_state(path: &Path, bytes: &[u8], chain_id: u64, pool: Address) -> Result<State> {
    let corrupt = |detail: &str| Error::StateCorrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    if bytes.len() < STATE_MAGIC.len() + 1 + 32 {
        return Err(corrupt("too short"));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(corrupt("checksum mismatch"));
    }
    let mut r = Reader { path, bytes: body };
    if r.take(4, "magic")? != STATE_MAGIC {
        return Err(corrupt("unknown header"));
    }
    // Version 1 had no checkpoints: it loads with none, and gains one at the next sync.
    let version = r.take(1, "version")?[0];
    if version != 1 && version != STATE_VERSION {
        return Err(corrupt("unknown version"));
    }
    let file_chain = r.u64("chain id")?;
    let file_pool = Address::from_slice(r.take(20, "pool")?);
    if file_chain != chain_id || file_pool != pool {
        return Err(Error::StateMismatch {
            path: path.to_path_buf(),
            detail: format!(
                "it is for pool {file_pool} on chain {file_chain}, not pool {pool} on chain {chain_id}"
            ),
        });
    }
    let next_block = r.u64("next block")?;
    let n = r.count("recent roots", 32)?;
    let mut recent_roots = VecDeque::with_capacity(n);
    for _ in 0..n {
        recent_roots.push_back(Root::from_field(r.fr("recent root")?));
    }
    let n = r.count("committed roots", 40)?;
    let mut committed = VecDeque::with_capacity(n);
    for _ in 0..n {
        let root = Root::from_field(r.fr("committed root")?);
        let size = r.u64("committed size")?;
        committed.push_back(CommittedRoot { root, size });
    }
    let mut checkpoints = VecDeque::new();
    if version >= 2 {
        let n = r.count("checkpoints", 48)?;
        for _ in 0..n {
            let block = r.u64("checkpoint block")?;
            let hash = B256::from_slice(r.take(32, "checkpoint hash")?);
            let leaves = r.u64("checkpoint leaves")?;
            checkpoints.push_back(Checkpoint {
                block,
                hash,
                leaves,
            });
        }
    }
    let n = r.count("tree length", 1)?;
    let tree = LeanImt::from_bytes(r.take(n, "tree")?).map_err(|e| corrupt(&e.to_string()))?;
    if !r.bytes.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(State {
        tree,
        next_block,
        recent_roots,
        committed,
        checkpoints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut tree = LeanImt::new();
        for i in 1..=13u64 {
            tree.push(Fr::from(i * 1000 + 7)).expect("push");
        }
        State {
            next_block: 42,
            recent_roots: [Root::from_field(Fr::from(5u64)), tree.root()]
                .into_iter()
                .collect(),
            committed: [CommittedRoot {
                root: tree.root(),
                size: 13,
            }]
            .into_iter()
            .collect(),
            checkpoints: [Checkpoint {
                block: 41,
                hash: B256::repeat_byte(3),
                leaves: 13,
            }]
            .into_iter()
            .collect(),
            tree,
        }
    }

    /// How pages were applied before leaves were appended a page at a time: one push per leaf and
    /// a root after every block with deposits.
    fn apply_leaf_by_leaf(state: &mut State, window: usize, events: &[(u64, Event)]) {
        let mut open_block = None;
        let close_block = |state: &mut State| {
            state.recent_roots.push_back(state.tree.root());
            while state.recent_roots.len() > window {
                state.recent_roots.pop_front();
            }
        };
        for (block, event) in events {
            if open_block.is_some_and(|b| b != *block) {
                close_block(state);
                open_block = None;
            }
            match event {
                Event::Leaf(leaf) => {
                    state.tree.push(*leaf).expect("push");
                    open_block = Some(*block);
                }
                Event::Commit(c) => {
                    assert_eq!(c.root, state.tree.root());
                    state.committed.push_back(*c);
                    while state.committed.len() > window {
                        state.committed.pop_front();
                    }
                }
            }
        }
        if open_block.is_some() {
            close_block(state);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Pages of blocks, each with some leaves and commits before or after them (and
        /// blocks with a commit only), over a tree that already has leaves: the state after
        /// each page is the one leaf-by-leaf appends give.
        #[test]
        fn pages_applied_at_once_keep_the_tree_and_roots_of_leaf_by_leaf_appends(
            pages in proptest::collection::vec(
                proptest::collection::vec((0usize..5, proptest::bool::ANY, proptest::bool::ANY), 0..20),
                1..4,
            ),
            window in 1usize..6,
            prefill in 0u64..6,
        ) {
            let mut reference = State::fresh(0);
            for i in 0..prefill {
                reference.tree.push(Fr::from(900 + i)).expect("push");
            }
            let mut batched = reference.clone();
            let mut model = reference.tree.clone();
            let mut block = 0u64;
            let mut next_leaf = 1u64;
            for page in pages {
                let mut events = Vec::new();
                let mut leaves = 0;
                for (n, commit_before, commit_after) in page {
                    block += 1;
                    let commit = |model: &LeanImt| Event::Commit(CommittedRoot {
                        root: model.root(),
                        size: model.len(),
                    });
                    if commit_before {
                        events.push((block, commit(&model)));
                    }
                    for _ in 0..n {
                        let leaf = Fr::from(next_leaf);
                        next_leaf += 1;
                        model.push(leaf).expect("push");
                        events.push((block, Event::Leaf(leaf)));
                    }
                    if commit_after {
                        events.push((block, commit(&model)));
                    }
                    leaves += n as u64;
                }
                apply_leaf_by_leaf(&mut reference, window, &events);
                let mut report = SyncReport::default();
                apply_events(&mut batched, window, events, &mut report).expect("apply");
                proptest::prop_assert_eq!(&batched, &reference);
                proptest::prop_assert_eq!(report.deposits, leaves);
            }
        }
    }

    #[test]
    fn a_wrong_committed_root_in_a_page_is_an_error() {
        let mut state = State::fresh(0);
        let events = vec![
            (1, Event::Leaf(Fr::from(1u64))),
            (1, Event::Leaf(Fr::from(2u64))),
            (
                1,
                Event::Commit(CommittedRoot {
                    root: Root::from_field(Fr::from(3u64)),
                    size: 2,
                }),
            ),
        ];
        let mut report = SyncReport::default();
        assert!(matches!(
            apply_events(&mut state, 4, events, &mut report),
            Err(Error::RootMismatch { size: 2, .. })
        ));
    }

    #[test]
    fn the_state_file_round_trips_and_names_what_is_wrong() {
        let path = Path::new("state.bin");
        let pool = Address::repeat_byte(9);
        let s = sample();
        let bytes = encode_state(&s, 31337, pool);
        assert_eq!(decode_state(path, &bytes, 31337, pool).expect("decode"), s);

        let mut damaged = bytes.clone();
        damaged[30] ^= 1;
        assert!(matches!(
            decode_state(path, &damaged, 31337, pool),
            Err(Error::StateCorrupt { detail, .. }) if detail == "checksum mismatch"
        ));
        assert!(matches!(
            decode_state(path, &bytes[..20], 31337, pool),
            Err(Error::StateCorrupt { .. })
        ));
        assert!(matches!(
            decode_state(path, &bytes, 1, pool),
            Err(Error::StateMismatch { .. })
        ));
        assert!(matches!(
            decode_state(path, &bytes, 31337, Address::repeat_byte(8)),
            Err(Error::StateMismatch { .. })
        ));
    }
}
