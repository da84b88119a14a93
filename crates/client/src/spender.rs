//! The [`Spender`]: what the local proxy calls around each paid request.
//!
//! ```text
//! begin(method, path, body)   pick a free solvent note, journal the ticket, prove
//!   -> PaidTicket               (Authorization: ZkCredit <credential>)
//! finish(ticket, receipt)     check the receipt against T_next and the server key,
//!                             advance the note, free it
//! abandon(ticket, reason)     the request never reached the gateway: keep the ticket
//!                             for recovery, never reuse its index
//! reprove(ticket)             same ticket, same x, new proof (after resync on stale_root)
//! recover(fetch)              at startup: each ticket in flight gets its receipt, or the
//!                             note is marked needs_close(m = 1)
//! locate(fetch)               before a note's first request in this process: asks the
//!                             gateway whether its next ticket was already spent (a
//!                             restored journal) and moves the note forward
//! resync()                    refresh the tree, drop precomputations for older roots
//! prepare_tickets()           precompute every free note's next ticket in the background
//! ```
//!
//! Proving runs on a blocking thread; the journal's SQLite calls too.
//!
//! **The pipeline.** After every receipt (and at start, [`Spender::prepare_tickets`])
//! the note's next ticket is proved up to the request binding `x` in the background
//! (`ticket_maker.rs`). [`Spender::begin`] prefers a note whose next ticket is
//! ready, takes the precomputation out of the cache right after journaling the ticket
//! (deleting its file before the request can leave, [`crate::ticket_cache`]) and
//! finishes the proof in about 0.2 ms; a note without one proves as before.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use zkcredits_chain::alloy::signers::local::PrivateKeySigner;
use zkcredits_chain::{Deployment, PoolClient};
use zkcredits_circuits::CircuitError;
use zkcredits_circuits::prover::{RequestProver, to_points};
use zkcredits_circuits::request::{RequestCircuit, RequestInputs};
use zkcredits_circuits::verifier::Verifier;
use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::eddsa::PublicKey;
use zkcredits_protocol::merkle::TreeError;
use zkcredits_protocol::note::{self, WalletSeed};
use zkcredits_protocol::request::request_x;
use zkcredits_protocol::rln::{Nullifier, Ticket};
use zkcredits_protocol::state::{Limits, NoteState, Receipt, receipt_message};
use zkcredits_protocol::wire::{Credential, WireFormat};

use crate::error::{BadReceipt, ClientError, LimitBreach, NotInTree, StaleState};
use crate::gateway_constants::GatewayConstants;
use crate::journal::{Acquired, Journal, JournalNote, NoteStatus};
use crate::precompute_cache::PrecomputeCache;
use crate::seal::{StorageKey, StoragePurpose, rho_next};
use crate::ticket_cache::{TicketCache, TicketSlot};
use crate::ticket_maker::{MakerParts, TicketMaker};
use crate::tree::TreeView;
use crate::wallet::Wallet;

/// The scheme of the `Authorization` header.
pub use zkcredits_api::AUTH_SCHEME;

/// How the spender learns that the pool accepts a server key before spending under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKeyCheck {
    /// Ask the pool (`serverKeyAccepted`) at the deployment's RPC URL, once per key.
    Pool,
    /// Trust the discovery document. Only for tests on a fixed tree with no chain: a
    /// note that spends under a key the pool does not accept can never close.
    UncheckedNoChain,
}

/// Everything a [`Spender`] is made of besides the wallet.
#[derive(Debug)]
pub struct SpenderConfig {
    /// The note journal's SQLite file.
    pub journal_path: PathBuf,
    /// Where encrypted precomputations are kept (`None`: memory only).
    pub precompute_dir: Option<PathBuf>,
    /// The pool.
    pub deployment: Deployment,
    /// What the gateway published.
    pub gateway: GatewayConstants,
    /// The prover (its keys must match the gateway's verifying key).
    pub prover: Arc<RequestProver>,
    /// The note tree.
    pub tree: TreeView,
    /// How server keys are checked against the pool.
    pub server_key_check: ServerKeyCheck,
}

/// A paid request ready to send: the `Authorization` header value and what identifies
/// the ticket.
#[derive(Debug)]
pub struct PaidTicket {
    /// `ZkCredit <base64url credential>`.
    pub authorization: String,
    /// The ticket's nullifier `N`: the key for `GET /zkcredit/receipts/{N}`.
    pub nullifier: Nullifier,
    /// The note number.
    pub note: u64,
    /// The ticket index.
    pub index: u64,
    /// The root the proof is against.
    pub root: zkcredits_protocol::merkle::Root,
    ticket_id: i64,
}

/// A note as `zkcredits notes` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSummary {
    /// The note number.
    pub note: u64,
    /// Its status.
    pub status: NoteStatus,
    /// `D` (0 before the deposit is recorded).
    pub deposit: Credits,
    /// `E`.
    pub expiry_epoch: u64,
    /// The leaf index, once deposited.
    pub leaf_index: Option<u64>,
    /// The next ticket index `i`.
    pub next_index: u64,
    /// `R`.
    pub refunds: Credits,
    /// `P`.
    pub penalties: Credits,
    /// `D + R - P - i * C_max`.
    pub remaining: i128,
    /// Whether the note can pay for another request.
    pub can_pay: bool,
}

impl NoteSummary {
    /// Summarises a journal note under `limits`.
    pub fn of(note: &JournalNote, limits: Limits) -> Self {
        let deposit = note.deposit.map_or(Credits::ZERO, |d| d.deposit);
        Self {
            note: note.j,
            status: note.status,
            deposit,
            expiry_epoch: note.deposit.map_or(0, |d| d.expiry_epoch),
            leaf_index: note.deposit.map(|d| d.leaf_index),
            next_index: note.state.index,
            refunds: note.state.refunds,
            penalties: note.state.penalties,
            remaining: note.state.balance(deposit, limits),
            can_pay: note.deposit.is_some() && note.state.can_pay(deposit, limits),
        }
    }
}

/// A ticket left in flight by an earlier run (or an earlier failure), held by this
/// process while its receipt is fetched.
#[derive(Debug)]
pub struct PendingTicket {
    id: i64,
    /// The note.
    pub note: u64,
    /// The ticket index.
    pub index: u64,
    /// `N`: the key for `GET /zkcredit/receipts/{N}`.
    pub nullifier: Nullifier,
}

/// What [`Spender::recover`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Notes whose fetched receipt advanced them.
    pub completed: Vec<NoteSummary>,
    /// Notes whose receipt is lost: they need a close with `m = 1`.
    pub needs_close: Vec<u64>,
    /// Notes whose fetched receipt was invalid (left in flight), with the reason.
    pub bad_receipts: Vec<(u64, BadReceipt)>,
    /// Tickets skipped because this spender still has them out.
    pub skipped_live: usize,
    /// Tickets left pending because their receipt could not be fetched.
    pub unreachable: usize,
}

/// What [`Spender::locate`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LocateReport {
    /// `(note, tickets)`: notes whose next tickets the gateway already held receipts
    /// for (the journal was older than the note), moved forward by that many tickets.
    pub fast_forwarded: Vec<(u64, u64)>,
    /// Notes found spent at an index whose receipt this wallet cannot use: marked
    /// `needs_close(m = 1)`, never spent again, with the reason.
    pub needs_close: Vec<(u64, UnrecordedSpend)>,
    /// Notes the gateway could not be asked about (tried again before their next
    /// request).
    pub unreachable: usize,
}

/// Why [`Spender::locate`] marked a note `needs_close(m = 1)`: a ticket the journal
/// never recorded was spent, and the receipt the gateway holds for it cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct UnrecordedSpend {
    /// The spent ticket's index.
    pub index: u64,
    /// Why its receipt cannot be used.
    pub problem: UnusableReceipt,
    /// Whether the ticket after it (the one a close with `m = 1` spends) is spent too.
    pub next_spent: bool,
}

impl std::fmt::Display for UnrecordedSpend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ticket {} was spent by a request this journal has no record of, and its receipt cannot be used ({})",
            self.index, self.problem
        )?;
        if self.next_spent {
            write!(
                f,
                "; ticket {} is spent too, so a close from this journal would be refused or challenged: do not close it unilaterally",
                self.index + 1
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for UnrecordedSpend {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.problem)
    }
}

/// Why a receipt the gateway holds for a ticket cannot be applied.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnusableReceipt {
    /// It does not decode or verify.
    #[error(transparent)]
    Invalid(BadReceipt),
    /// It breaks the pool's limits.
    #[error(transparent)]
    OutsideLimits(LimitBreach),
}

/// Why a signed receipt cannot be applied to a note.
enum ReceiptProblem {
    /// Not signed by any of the gateway's keys for this `T_next` (or not a receipt at
    /// all): maybe not the gateway's, so the genuine one may still come.
    Unsigned(BadReceipt),
    /// Signed, but breaking the pool's limits: the gateway's own doing.
    OutsideLimits(LimitBreach),
    /// The check could not be made (the chain did not answer).
    Unchecked(ClientError),
}

/// The user's side of paid requests. Share it (`Arc<Spender>`): every method takes
/// `&self`, and concurrent requests use different notes.
pub struct Spender {
    seed: WalletSeed,
    journal: Arc<Mutex<Journal>>,
    prover: Arc<RequestProver>,
    verifier: Arc<Verifier>,
    tree: Arc<TreeView>,
    limits: Limits,
    gateway: GatewayConstants,
    cache: Arc<PrecomputeCache>,
    /// Each free note's next ticket, precomputed up to `x`.
    tickets: Arc<TicketCache>,
    /// Fills `tickets` in the background.
    maker: Arc<TicketMaker>,
    /// Proofs finished from a precomputed ticket so far.
    finished: Arc<std::sync::atomic::AtomicU64>,
    live: Mutex<HashSet<i64>>,
    deployment: Deployment,
    key_check: ServerKeyCheck,
    /// A read-only pool client, connected on first use.
    pool: tokio::sync::OnceCell<PoolClient>,
    /// Server keys the pool said it accepts. Keys are only ever added on chain, so a
    /// positive answer stays true and is asked once.
    keys_on_chain: Mutex<HashSet<[u8; 32]>>,
    /// Derives each ticket's `rho_next` from (note, index).
    blinding: StorageKey,
    /// Notes whose position [`Spender::locate`] has checked in this process.
    located: Mutex<HashSet<u64>>,
    /// One [`Spender::locate`] at a time, so concurrent first requests do not move the
    /// same note twice.
    locating: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Spender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spender")
            .field("limits", &self.limits)
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

impl Spender {
    /// Opens the journal and checks the gateway's constants against the deployment and
    /// the prover's verifying key.
    pub async fn new(wallet: &Wallet, config: SpenderConfig) -> Result<Self, ClientError> {
        let vk_hash = config.prover.verifying_key_hash();
        config.gateway.check(&config.deployment, vk_hash)?;
        let journal_key = wallet.storage_key(StoragePurpose::Journal);
        let journal_path = config.journal_path.clone();
        let journal =
            tokio::task::spawn_blocking(move || Journal::open(&journal_path, journal_key))
                .await
                .map_err(ClientError::Blocking)??;
        let prover = config.prover.clone();
        let verifier =
            tokio::task::spawn_blocking(move || Verifier::new(prover.keys().verifying_key()))
                .await
                .map_err(ClientError::Blocking)?;
        let cache = Arc::new(PrecomputeCache::new(
            config.precompute_dir.clone(),
            wallet.storage_key(StoragePurpose::PrecomputeCache),
            wallet.storage_key(StoragePurpose::CacheNames),
            vk_hash,
        ));
        // Ticket files live beside the note precomputations, sealed with the same key
        // (their associated data and names differ).
        let tickets = Arc::new(TicketCache::new(
            config.precompute_dir,
            wallet.storage_key(StoragePurpose::PrecomputeCache),
            wallet.storage_key(StoragePurpose::CacheNames),
            vk_hash,
        ));
        let journal = Arc::new(Mutex::new(journal));
        let tree = Arc::new(config.tree);
        let limits = Limits {
            c_max: config.deployment.constants.c_max,
            p_max: config.deployment.constants.p_max,
        };
        let blinding = wallet.storage_key(StoragePurpose::TicketBlinding);
        let maker = Arc::new(TicketMaker::new(MakerParts {
            prover: config.prover.clone(),
            notes: cache.clone(),
            tickets: tickets.clone(),
            journal: journal.clone(),
            tree: tree.clone(),
            seed: wallet.seed(),
            blinding: blinding.clone(),
            gateway: config.gateway.clone(),
            limits,
        }));
        Ok(Self {
            seed: wallet.seed(),
            journal,
            prover: config.prover,
            verifier: Arc::new(verifier),
            tree,
            limits,
            gateway: config.gateway,
            cache,
            tickets,
            maker,
            finished: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            live: Mutex::new(HashSet::new()),
            deployment: config.deployment,
            key_check: config.server_key_check,
            pool: tokio::sync::OnceCell::new(),
            keys_on_chain: Mutex::new(HashSet::new()),
            blinding,
            located: Mutex::new(HashSet::new()),
            locating: tokio::sync::Mutex::new(()),
        })
    }

    /// Opens a spender from the files under `home`: the proving keys (`home.keys()`),
    /// the note journal and the persisted tree of `deployment`'s pool, the precompute
    /// cache; syncs the tree once.
    pub async fn open(
        home: &crate::home::ClientHome,
        wallet: &Wallet,
        deployment: Deployment,
        gateway: GatewayConstants,
    ) -> Result<Self, ClientError> {
        let keys_dir = home.keys();
        let prover = tokio::task::spawn_blocking(move || {
            zkcredits_circuits::keys::load_proving_key(&keys_dir)
                .and_then(RequestProver::new)
                .map_err(ClientError::Proving)
        })
        .await
        .map_err(ClientError::Blocking)??;
        let indexer = zkcredits_chain::Indexer::connect(
            &deployment,
            zkcredits_chain::IndexerConfig {
                state_path: Some(home.tree_state(&deployment)),
                ..Default::default()
            },
        )
        .map_err(ClientError::TreeSync)?;
        let spender = Self::new(
            wallet,
            SpenderConfig {
                journal_path: home.journal(&deployment),
                precompute_dir: Some(home.precompute()),
                deployment,
                gateway,
                prover: Arc::new(prover),
                tree: TreeView::from_indexer(indexer),
                server_key_check: ServerKeyCheck::Pool,
            },
        )
        .await?;
        spender.resync().await?;
        Ok(spender)
    }

    /// The deployment's limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The tree view.
    pub fn tree(&self) -> &TreeView {
        &self.tree
    }

    /// The precompute cache.
    pub fn precompute_cache(&self) -> &PrecomputeCache {
        &self.cache
    }

    /// The ticket precomputations.
    pub fn ticket_cache(&self) -> &TicketCache {
        &self.tickets
    }

    /// Turns the ticket pipeline on: asks the background maker for the next ticket of
    /// every free note (those ready on disk are loaded, unless the journal has recorded
    /// them), deletes the ticket files of anything else, and from now on every receipt
    /// asks for its note's next ticket. The proxy calls it at start.
    pub async fn prepare_tickets(&self) -> Result<(), ClientError> {
        // Off until now: a one-shot `call` would exit before its next ticket is used.
        self.maker.start();
        let notes = self.db(|j| j.notes()).await?;
        let root = self.tree.root();
        let free: Vec<_> = notes
            .iter()
            .filter(|n| n.status == NoteStatus::Free && n.deposit.is_some())
            .collect();
        let keep: Vec<TicketSlot> = free
            .iter()
            .map(|n| TicketSlot {
                note: n.j,
                index: n.state.index,
                root,
            })
            .collect();
        let tickets = self.tickets.clone();
        tokio::task::spawn_blocking(move || tickets.retain(&keep))
            .await
            .map_err(ClientError::Blocking)?;
        for n in free {
            self.pipeline(n.j);
        }
        Ok(())
    }

    /// Asks the background maker for note `j`'s next ticket, when the pipeline is on.
    fn pipeline(&self, j: u64) {
        self.maker.request(j);
    }

    /// How many proofs this spender finished from a precomputed ticket (the others were
    /// proved).
    pub fn finished_from_tickets(&self) -> u64 {
        self.finished.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether note `j`'s next ticket at `index` is precomputed for the current root.
    pub fn ticket_ready(&self, j: u64, index: u64) -> bool {
        self.tickets.is_ready(TicketSlot {
            note: j,
            index,
            root: self.tree.root(),
        })
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Journal) -> Result<T, crate::journal::JournalError> + Send + 'static,
    ) -> Result<T, ClientError> {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = journal
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(ClientError::Blocking)?
        .map_err(ClientError::from)
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every note with its balance and status.
    pub async fn notes(&self) -> Result<Vec<NoteSummary>, ClientError> {
        let limits = self.limits;
        let notes = self.db(|j| j.notes()).await?;
        Ok(notes.iter().map(|n| NoteSummary::of(n, limits)).collect())
    }

    /// Picks a free solvent note, journals the ticket, proves. The returned value
    /// carries the `Authorization` header value.
    pub async fn begin(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<PaidTicket, ClientError> {
        let x = request_x(method, path_and_query, body);
        let seed = self.seed.clone();
        let limits = self.limits;
        let current = self.gateway.current_key.id;
        let blinding = self.blinding.clone();
        // Notes whose next ticket is ready first: their proof is finished, not made.
        let root = self.tree.root();
        let ready_now = || -> HashSet<(u64, u64)> {
            self.tickets
                .ready()
                .into_iter()
                .filter(|s| s.root == root)
                .map(|s| (s.note, s.index))
                .collect()
        };
        let mut ready = ready_now();
        if ready.is_empty() && self.maker.is_running() {
            // Join the ticket in the making when that is quicker than a proof; never
            // wait behind a maker that fell behind (`crate::ticket_pace`).
            let maker = self.maker.clone();
            let waited =
                tokio::task::spawn_blocking(move || maker.pace().claim().is_some_and(|c| c.wait()))
                    .await
                    .map_err(ClientError::Blocking)?;
            if waited {
                ready = ready_now();
            }
        }
        // A note whose ticket is ready first; one whose ticket is in the making last, so
        // that a request that proves does not waste the maker's work.
        let making = self.maker.pace().in_the_making();
        let rank = move |j: u64, i: u64| -> u8 {
            if ready.contains(&(j, i)) {
                0
            } else if making == Some(j) {
                2
            } else {
                1
            }
        };
        let acquired = self
            .db(move |j| {
                j.acquire(
                    &seed,
                    limits,
                    x,
                    |j, i| rho_next(&blinding, j, i),
                    |note| {
                        if note.state.index == 0 {
                            current
                        } else {
                            note.last_key_id.unwrap_or(current)
                        }
                    },
                    rank,
                )
            })
            .await?;
        let id = acquired.ticket.id;
        let note = acquired.note.j;
        match self.prove(acquired, true).await {
            Ok(ticket) => {
                self.live().insert(id);
                tracing::debug!(note, index = ticket.index, "ticket proven");
                Ok(ticket)
            }
            Err(e) => {
                // The credential never existed outside this function: forgetting the
                // ticket cannot lead to a second use of its index (a server key the
                // pool does not accept included: the note is free for a better gateway).
                let retired = matches!(e, ClientError::ServerKeyRetired { .. });
                let released = self
                    .db(move |j| {
                        if retired {
                            j.release_to_close(id)
                        } else {
                            j.release_unsent(id)
                        }
                    })
                    .await;
                if let Err(release) = released {
                    tracing::warn!(note, error = %release, "could not release an unsent ticket");
                } else if !retired {
                    self.pipeline(note);
                }
                Err(e)
            }
        }
    }

    /// Proves the same ticket again (same request `x`, same `rho_next`, so the same
    /// nullifier, share and `T_next`) against the current tree: for a `stale_root`
    /// answer, after [`Spender::resync`]. The gateway sees at most a replay, never a
    /// second share.
    pub async fn reprove(&self, ticket: PaidTicket) -> Result<PaidTicket, ClientError> {
        let id = ticket.ticket_id;
        let acquired = self
            .db(move |j| {
                let ticket = j.ticket(id)?;
                let note = j.note(ticket.j)?;
                Ok(Acquired { note, ticket })
            })
            .await?;
        // Never from a ticket precomputation: this ticket's `x` has left already.
        self.prove(acquired, false).await
    }

    /// Proves `acquired`'s ticket. With `fresh` (a ticket just journaled by
    /// [`Spender::begin`], so no request on its index has left) its precomputation, if
    /// ready, is taken out of the cache (its file deleted) and finished.
    async fn prove(&self, acquired: Acquired, fresh: bool) -> Result<PaidTicket, ClientError> {
        let note = acquired.note;
        let ticket = acquired.ticket;
        let info = note.deposit.ok_or(StaleState::NoDeposit { note: note.j })?;
        let server_key = self
            .gateway
            .key(ticket.key_id)
            .ok_or(ClientError::ServerKeyRetired {
                note: note.j,
                key_id: ticket.key_id,
            })?;
        // Before anything is spent under this key: a note whose receipts are signed by
        // a key the pool does not accept can never close.
        self.ensure_key_on_chain(ticket.key_id, server_key).await?;
        let mut tree = self.tree.snapshot();
        if tree.len() <= info.leaf_index {
            self.resync().await?;
            tree = self.tree.snapshot();
        }
        let expected_leaf = note::leaf(info.id, info.deposit, info.expiry_epoch);
        match tree.leaf(info.leaf_index) {
            Some(leaf) if leaf == expected_leaf => {}
            Some(_) => {
                return Err(ClientError::NoteNotInTree {
                    note: note.j,
                    reason: NotInTree::OtherNote {
                        index: info.leaf_index,
                    },
                });
            }
            None => {
                return Err(ClientError::NoteNotInTree {
                    note: note.j,
                    reason: TreeError::IndexOutOfRange {
                        index: info.leaf_index,
                        len: tree.len(),
                    }
                    .into(),
                });
            }
        }
        let secret = self.seed.note_secret(note.j);
        let prover = self.prover.clone();
        let verifier = self.verifier.clone();
        let cache = self.cache.clone();
        let tickets = self.tickets.clone();
        let finished_count = self.finished.clone();
        let maker = self.maker.clone();
        let limits = self.limits;
        let key_id = ticket.key_id;
        let note_number = note.j;
        let credential = tokio::task::spawn_blocking(move || -> Result<Credential, ClientError> {
            let path = tree
                .path(info.leaf_index)
                .map_err(|e| ClientError::NoteNotInTree {
                    note: note.j,
                    reason: e.into(),
                })?;
            let root = tree.root();
            // Out of the cache (file deleted) before anything else: whatever happens
            // next, this precomputation serves this request or none.
            let ticket_pre = fresh
                .then(|| {
                    tickets.take(TicketSlot {
                        note: note.j,
                        index: ticket.index,
                        root,
                    })
                })
                .flatten();
            let inputs = RequestInputs {
                secret: &secret,
                deposit: info.deposit,
                expiry_epoch: info.expiry_epoch,
                path: &path,
                root,
                state: &note.state,
                x: ticket.x,
                rho_next: ticket.rho_next,
                limits,
                server_key,
            };
            let circuit = RequestCircuit::new(inputs)
            .map_err(|e| match e {
                CircuitError::Insolvent => ClientError::NoSolventNote,
                other => ClientError::Proving(other),
            })?;
            if circuit.public.nullifier != ticket.nullifier {
                return Err(StaleState::NullifierMismatch {
                    note: note.j,
                    index: ticket.index,
                }
                .into());
            }
            let public = circuit.public;
            let field_inputs = public.to_field_elements();
            let credential = |proof: ark_groth16::Proof<ark_bn254::Bn254>| Credential {
                key_id,
                root,
                nullifier: public.nullifier,
                y: public.y,
                next_commitment: public.next_commitment,
                proof: to_points(&proof),
            };
            if let Some(pre) = ticket_pre {
                // Consumed (and wiped) by the call, whatever its outcome. Verified like
                // every proof before it leaves.
                match prover.finish_ticket(pre, inputs) {
                    Ok(finished)
                        if finished.public == public
                            && verifier.verify(&finished.proof, &field_inputs) =>
                    {
                        finished_count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tracing::debug!(note = note.j, "proof finished from the precomputed ticket");
                        return Ok(credential(finished.proof));
                    }
                    Ok(_) => tracing::warn!(
                        note = note.j,
                        "a proof finished from a precomputed ticket does not verify; proving instead"
                    ),
                    Err(e) => tracing::warn!(
                        note = note.j,
                        error = %e,
                        "the precomputed ticket does not fit this ticket; proving instead"
                    ),
                }
            }
            let inputs = field_inputs;
            // The maker starts no new ticket while this request proves.
            let proving = maker.pace().proving();
            let mut rng = rand::rngs::OsRng;
            // The precomputed path: the cached precomputation, else a fresh one; one
            // that is refused (another note, root or key) or whose proof does not verify
            // is dropped and made again once. Every proof is verified before it leaves.
            let mut proof = None;
            let mut cached = cache.get(note.j, root);
            for _ in 0..2 {
                let pre = match cached.take() {
                    Some(pre) => pre,
                    None => match prover.precompute(circuit.clone()) {
                        Ok(pre) => cache.insert(note.j, root, pre),
                        Err(e) => {
                            tracing::warn!(note = note.j, error = %e, "precomputation failed; proving without it");
                            break;
                        }
                    },
                };
                match prover.prove_precomputed(&pre, circuit.clone(), &mut rng) {
                    Ok(p) if verifier.verify(&p, &inputs) => {
                        proof = Some(p);
                        break;
                    }
                    Ok(_) => {
                        tracing::warn!(note = note.j, "a precomputed proof does not verify; dropping the precomputation");
                        cache.remove(note.j);
                    }
                    Err(CircuitError::StalePrecomputation) => {
                        tracing::warn!(note = note.j, "the cached precomputation is for another note, root or key; dropping it");
                        cache.remove(note.j);
                    }
                    Err(e) => return Err(ClientError::Proving(e)),
                }
            }
            let proof = match proof {
                Some(p) => p,
                None => {
                    let p = prover
                        .prove(circuit, &mut rng)
                        .map_err(ClientError::Proving)?;
                    if !verifier.verify(&p, &inputs) {
                        return Err(ClientError::ProofDoesNotVerify);
                    }
                    p
                }
            };
            proving.done();
            Ok(credential(proof))
        })
        .await
        .map_err(ClientError::Blocking)??;
        Ok(PaidTicket {
            authorization: format!("{AUTH_SCHEME} {}", credential.to_base64url()),
            nullifier: ticket.nullifier,
            note: note_number,
            index: ticket.index,
            root: credential.root,
            ticket_id: ticket.id,
        })
    }

    /// Verifies the receipt's signature against the server key and `T_next`, advances
    /// the note, frees it. On an invalid receipt the note is not advanced and its ticket
    /// stays in flight for [`Spender::recover`].
    pub async fn finish(
        &self,
        ticket: PaidTicket,
        receipt_b64: &str,
    ) -> Result<NoteSummary, ClientError> {
        self.live().remove(&ticket.ticket_id);
        let receipt =
            Receipt::from_base64url(receipt_b64.trim()).map_err(BadReceipt::Undecodable)?;
        self.apply_receipt(ticket.ticket_id, receipt).await
    }

    async fn apply_receipt(
        &self,
        ticket_id: i64,
        receipt: Receipt,
    ) -> Result<NoteSummary, ClientError> {
        let (ticket, note) = self
            .db(move |j| {
                let t = j.ticket(ticket_id)?;
                let n = j.note(t.j)?;
                Ok((t, n))
            })
            .await
            .map_err(|e| match e {
                ClientError::Journal(e @ crate::journal::JournalError::TicketNotInFlight(_)) => {
                    StaleState::NotInFlight(e).into()
                }
                other => other,
            })?;
        if note.state.index != ticket.index {
            return Err(StaleState::IndexMismatch {
                note: note.j,
                note_index: note.state.index,
                ticket_index: ticket.index,
            }
            .into());
        }
        let deposit = note.deposit.map_or(Credits::ZERO, |d| d.deposit);
        let k = self.seed.note_secret(note.j).expose();
        match self
            .check_receipt(deposit, &note.state, k, ticket.rho_next, &receipt)
            .await
        {
            Ok((next, key_id)) => {
                let limits = self.limits;
                let updated = self
                    .db(move |j| j.complete(ticket_id, &receipt, &next, key_id))
                    .await?;
                // The next ticket's every input but `x` is known now.
                self.pipeline(updated.j);
                Ok(NoteSummary::of(&updated, limits))
            }
            Err(ReceiptProblem::Unsigned(why)) => Err(why.into()),
            Err(ReceiptProblem::Unchecked(e)) => Err(e),
            Err(ReceiptProblem::OutsideLimits(reason)) => {
                // The gateway itself signed it, so no better receipt is coming. The
                // ticket's share has left, so its index is spent: keep the previous
                // state (the new one could never close) and close from it with m = 1.
                self.db(move |j| j.mark_lost(ticket_id)).await?;
                tracing::warn!(
                    note = note.j,
                    index = ticket.index,
                    reason = %reason,
                    "the gateway signed a receipt outside the pool's limits; refused, the note keeps its previous state and needs a close with m = 1"
                );
                Err(ClientError::ReceiptOutsideLimits {
                    note: note.j,
                    index: ticket.index,
                    reason,
                })
            }
        }
    }

    /// Checks a receipt for the request made from `state` with `rho_next`: signed by
    /// one of the gateway's keys for `T_next`, within the pool's limits, and leaving a
    /// state that can still close. Returns the new state and the signer's key id.
    async fn check_receipt(
        &self,
        deposit: Credits,
        state: &NoteState,
        k: Fr,
        rho_next: Fr,
        receipt: &Receipt,
    ) -> Result<(NoteState, u32), ReceiptProblem> {
        let next_commitment = state
            .next_commitment(k, rho_next)
            .map_err(|e| ReceiptProblem::Unsigned(BadReceipt::NoNextState(e)))?;
        let message = receipt_message(next_commitment, receipt.refund, receipt.penalty);
        let signer = *std::iter::once(&self.gateway.current_key)
            .chain(&self.gateway.accepted_keys)
            .find(|k| k.key.verify(message, &receipt.signature))
            .ok_or(ReceiptProblem::Unsigned(BadReceipt::Unsigned))?;
        let limits = self.limits;
        let outside = |why: LimitBreach| Err(ReceiptProblem::OutsideLimits(why));
        if receipt.refund > limits.c_max {
            return outside(LimitBreach::RefundAboveCMax {
                refund: receipt.refund,
                c_max: limits.c_max,
            });
        }
        if receipt.penalty > limits.p_max {
            return outside(LimitBreach::PenaltyAbovePMax {
                penalty: receipt.penalty,
                p_max: limits.p_max,
            });
        }
        if let Some(g) = self.gateway.refund_granularity.filter(|g| *g > 1)
            && !receipt.refund.get().is_multiple_of(g)
        {
            return outside(LimitBreach::OffGranularity {
                refund: receipt.refund,
                granularity: g,
            });
        }
        let next = match state.advance(k, rho_next, *receipt) {
            Ok(next) => next,
            Err(e) => return outside(LimitBreach::State(e)),
        };
        // The close from the new state (m = 0) spends ticket n = next.index and pays
        // U = D + R - P - n C_max to the user and n C_max - R to the provider; both must
        // be non-negative or the close circuit and the pool refuse it for good.
        let charged = i128::from(next.index) * i128::from(limits.c_max);
        let u =
            i128::from(deposit) + i128::from(next.refunds) - i128::from(next.penalties) - charged;
        if u < 0 {
            return outside(LimitBreach::CannotClose { payout: u });
        }
        if i128::from(next.refunds) > charged {
            return outside(LimitBreach::RefundsAboveCharged {
                refunds: next.refunds,
                charged,
            });
        }
        match self.ensure_key_on_chain(signer.id, signer.key).await {
            Ok(()) => Ok((next, signer.id)),
            Err(ClientError::ServerKeyNotOnChain { key_id }) => {
                outside(LimitBreach::KeyNotAccepted { key_id })
            }
            Err(e) => Err(ReceiptProblem::Unchecked(e)),
        }
    }

    /// Fails unless the pool accepts `key` (`serverKeyAccepted`). A positive answer is
    /// kept: keys are only ever added on chain, so it is asked once per key, not per
    /// request.
    async fn ensure_key_on_chain(&self, key_id: u32, key: PublicKey) -> Result<(), ClientError> {
        if self.key_check == ServerKeyCheck::UncheckedNoChain {
            return Ok(());
        }
        let bytes = key.to_bytes();
        if self.keys_on_chain().contains(&bytes) {
            return Ok(());
        }
        let pool = self.pool().await?;
        let accepted = pool
            .server_key_accepted(key)
            .await
            .map_err(ClientError::Chain)?;
        if !accepted {
            tracing::warn!(
                key_id,
                "the pool does not accept the gateway's server key; refusing to spend under it"
            );
            return Err(ClientError::ServerKeyNotOnChain { key_id });
        }
        self.keys_on_chain().insert(bytes);
        Ok(())
    }

    fn keys_on_chain(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.keys_on_chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn located(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.located
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn pool(&self) -> Result<&PoolClient, ClientError> {
        self.pool
            .get_or_try_init(|| async {
                // Only views are called: a throwaway signer that never sends anything.
                PoolClient::connect(&self.deployment, PrivateKeySigner::random())
                    .await
                    .map_err(ClientError::Chain)
            })
            .await
    }

    /// The request never reached the gateway (connection refused before sending): the
    /// ticket stays journaled as in flight for recovery (its index is never reused).
    pub async fn abandon(&self, ticket: PaidTicket, reason: &str) -> Result<(), ClientError> {
        self.live().remove(&ticket.ticket_id);
        tracing::info!(
            note = ticket.note,
            index = ticket.index,
            reason,
            "ticket abandoned; kept for recovery"
        );
        let id = ticket.ticket_id;
        self.db(move |j| j.abandon(id)).await
    }

    /// The credential never left this process (the connection to the gateway could not
    /// be made): forgets the ticket and frees the note, so the next request uses the
    /// same index. Only for a send that provably wrote nothing: once a credential is
    /// out, its share `y` binds the index to this request's `x` for good.
    pub async fn release_unsent(&self, ticket: PaidTicket) -> Result<(), ClientError> {
        self.live().remove(&ticket.ticket_id);
        let id = ticket.ticket_id;
        let note = ticket.note;
        self.db(move |j| j.release_unsent(id)).await?;
        // Free at the same index again; a precomputation it used is gone.
        self.pipeline(note);
        Ok(())
    }

    /// The gateway refused the request before admission (`400`, `401`, `413`, a
    /// `409 stale_root` left after the retry): it stored no nullifier and issued no
    /// receipt, but it has seen the share `y = k + a x` of this index. Using the index
    /// again for another request would hand over a second share, from which anyone who
    /// kept the first computes `k` and slashes the note, so the note makes no further
    /// request and is marked `needs_close(m = 1)`. The close spends the next index
    /// (`m = 1`), never this one: a provider that kept this share would otherwise find
    /// the second share of this ticket in the close's calldata.
    pub async fn refused(&self, ticket: PaidTicket, code: &str) -> Result<(), ClientError> {
        self.live().remove(&ticket.ticket_id);
        tracing::warn!(
            note = ticket.note,
            index = ticket.index,
            code,
            "the gateway refused a request before admission; the note needs a close"
        );
        let id = ticket.ticket_id;
        self.db(move |j| j.mark_lost(id)).await
    }

    /// What the gateway published and this spender checked.
    pub fn gateway(&self) -> &GatewayConstants {
        &self.gateway
    }

    /// Recovery: for each ticket in flight (not held by this spender right now),
    /// `fetch(nullifier)` returns the receipt (`Ok(Some(base64url))`), which advances
    /// the note, or `Ok(None)` (the gateway has none), which marks the note
    /// `needs_close(m = 1)`. A fetch that fails (`Err`: gateway unreachable) leaves the
    /// ticket pending for a later recovery.
    pub async fn recover<F, Fut>(&self, fetch: F) -> Result<RecoveryReport, ClientError>
    where
        F: Fn(Nullifier) -> Fut,
        Fut: Future<Output = Result<Option<String>, ClientError>>,
    {
        let (pending, skipped_live) = self.take_pending().await?;
        let mut report = RecoveryReport {
            skipped_live,
            ..RecoveryReport::default()
        };
        for ticket in pending {
            let fetched = match fetch(ticket.nullifier).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(note = ticket.note, error = %e, "cannot fetch a receipt; the ticket stays pending");
                    report.unreachable += 1;
                    self.put_back(ticket);
                    continue;
                }
            };
            let note = ticket.note;
            match fetched {
                Some(text) => match self.settle_pending(ticket, &text).await {
                    Ok(summary) => report.completed.push(summary),
                    Err(ClientError::ReceiptOutsideLimits { note, .. }) => {
                        report.needs_close.push(note);
                    }
                    Err(ClientError::BadReceipt(why)) => report.bad_receipts.push((note, why)),
                    Err(e) => return Err(e),
                },
                None => {
                    self.lose_pending(ticket).await?;
                    report.needs_close.push(note);
                }
            }
        }
        Ok(report)
    }

    /// The tickets a crash (or an earlier failure) left in flight that no task of this
    /// process holds, each now held ([`PendingTicket`]) until it is settled, lost or put
    /// back; and how many were skipped because a task holds them.
    pub async fn take_pending(&self) -> Result<(Vec<PendingTicket>, usize), ClientError> {
        let pending = self.db(|j| j.pending()).await?;
        let mut live = self.live();
        let mut skipped = 0;
        let mut taken = Vec::new();
        for t in pending {
            if !live.insert(t.id) {
                skipped += 1;
                continue;
            }
            taken.push(PendingTicket {
                id: t.id,
                note: t.j,
                index: t.index,
                nullifier: t.nullifier,
            });
        }
        Ok((taken, skipped))
    }

    /// Releases a held pending ticket untouched (its receipt could not be fetched).
    pub fn put_back(&self, ticket: PendingTicket) {
        self.live().remove(&ticket.id);
    }

    /// Applies the receipt fetched for a pending ticket. A receipt that does not decode
    /// or verify leaves the ticket pending (reported as [`ClientError::BadReceipt`]); one
    /// outside the pool's limits leaves the note `needs_close(m = 1)`.
    pub async fn settle_pending(
        &self,
        ticket: PendingTicket,
        receipt: &str,
    ) -> Result<NoteSummary, ClientError> {
        let applied = match Receipt::from_base64url(receipt.trim()) {
            Ok(r) => self.apply_receipt(ticket.id, r).await,
            Err(e) => Err(BadReceipt::Undecodable(e).into()),
        };
        self.live().remove(&ticket.id);
        match applied {
            Err(ClientError::BadReceipt(why)) => {
                tracing::warn!(note = ticket.note, reason = %why, "a fetched receipt is invalid");
                Err(ClientError::BadReceipt(why))
            }
            other => other,
        }
    }

    /// The gateway holds no receipt for a pending ticket (after waiting long enough for
    /// one still being answered): the note is marked `needs_close(m = 1)`.
    pub async fn lose_pending(&self, ticket: PendingTicket) -> Result<(), ClientError> {
        let id = ticket.id;
        let marked = self.db(move |j| j.mark_lost(id)).await;
        self.live().remove(&ticket.id);
        marked?;
        tracing::warn!(
            note = ticket.note,
            index = ticket.index,
            "receipt lost; the note needs a close with m = 1"
        );
        Ok(())
    }

    /// A paid ticket whose answer is in doubt, kept by this process while its receipt is
    /// collected in the background ([`Spender::lose`] or [`Spender::finish`] end it).
    pub async fn lose(&self, ticket: PaidTicket) -> Result<(), ClientError> {
        self.lose_pending(PendingTicket {
            id: ticket.ticket_id,
            note: ticket.note,
            index: ticket.index,
            nullifier: ticket.nullifier,
        })
        .await
    }

    /// Whether note `j`'s position was checked by [`Spender::locate`] in this process.
    pub fn is_located(&self, j: u64) -> bool {
        self.located().contains(&j)
    }

    /// Learns each free note's true position before its first request in this process.
    /// A journal put back from a backup or a VM snapshot holds an older state than the
    /// note has, and spending its next ticket again with other bytes would hand the
    /// provider a second share (slash). So for every free note not yet checked,
    /// `fetch(N_i)` asks the gateway for the receipt of its next ticket `i`; while one
    /// exists, it is opened with the ticket's derived `rho_next`, checked like any
    /// receipt and applied, and the next index is asked. A receipt that cannot be used
    /// (a ticket made before blindings were derived, or one outside the limits) leaves
    /// the note `needs_close(m = 1)`: it never spends at that index again. A fetch that
    /// fails leaves the note unchecked (counted in `unreachable`).
    pub async fn locate<F, Fut>(&self, fetch: F) -> Result<LocateReport, ClientError>
    where
        F: Fn(Nullifier) -> Fut,
        Fut: Future<Output = Result<Option<String>, ClientError>>,
    {
        let _one_at_a_time = self.locating.lock().await;
        let notes = self.db(|j| j.notes()).await?;
        let mut report = LocateReport::default();
        for note in notes {
            if note.status != NoteStatus::Free || note.deposit.is_none() || self.is_located(note.j)
            {
                continue;
            }
            let j = note.j;
            match self.locate_note(note, &fetch).await? {
                Located::Here(0) => {}
                Located::Here(moved) => report.fast_forwarded.push((j, moved)),
                Located::NeedsClose(why) => report.needs_close.push((j, why)),
                Located::Unknown => {
                    report.unreachable += 1;
                    continue;
                }
            }
            self.located().insert(j);
        }
        Ok(report)
    }

    async fn locate_note<F, Fut>(
        &self,
        note: JournalNote,
        fetch: &F,
    ) -> Result<Located, ClientError>
    where
        F: Fn(Nullifier) -> Fut,
        Fut: Future<Output = Result<Option<String>, ClientError>>,
    {
        let j = note.j;
        let deposit = note.deposit.map_or(Credits::ZERO, |d| d.deposit);
        let k = self.seed.note_secret(j).expose();
        let mut state = note.state;
        let mut moved = 0;
        let (index, problem) = loop {
            let index = state.index;
            let nullifier = Ticket::new(k, index).nullifier;
            let text = match fetch(nullifier).await {
                Ok(None) => return Ok(Located::Here(moved)),
                Ok(Some(text)) => text,
                Err(e) => {
                    tracing::warn!(note = j, error = %e, "cannot ask the gateway for the note's position");
                    return Ok(Located::Unknown);
                }
            };
            let rho = rho_next(&self.blinding, j, index);
            let checked = match Receipt::from_base64url(text.trim()) {
                Ok(receipt) => self
                    .check_receipt(deposit, &state, k, rho, &receipt)
                    .await
                    .map(|(next, key_id)| (receipt, next, key_id)),
                Err(e) => Err(ReceiptProblem::Unsigned(BadReceipt::Undecodable(e))),
            };
            match checked {
                Ok((receipt, next, key_id)) => {
                    let updated = self
                        .db(move |jn| {
                            jn.fast_forward(j, index, rho, nullifier, key_id, &receipt, &next)
                        })
                        .await?;
                    tracing::warn!(
                        note = j,
                        index,
                        "the gateway holds a receipt for a ticket this journal never recorded (an old copy of the journal?); the note moves past it"
                    );
                    state = updated.state;
                    moved += 1;
                    self.pipeline(j);
                }
                Err(ReceiptProblem::Unchecked(e)) => {
                    tracing::warn!(note = j, error = %e, "cannot check the receipt of the note's next ticket");
                    return Ok(Located::Unknown);
                }
                Err(ReceiptProblem::Unsigned(e)) => break (index, UnusableReceipt::Invalid(e)),
                Err(ReceiptProblem::OutsideLimits(e)) => {
                    break (index, UnusableReceipt::OutsideLimits(e));
                }
            }
        };
        // Ticket `index` is spent and this wallet cannot prove the state after it; from
        // the state it holds, only a close spending ticket index + 1 (m = 1) is left.
        self.db(move |jn| jn.mark_needs_close(j, 1)).await?;
        let after = Ticket::new(k, index + 1).nullifier;
        let why = UnrecordedSpend {
            index,
            problem,
            next_spent: matches!(fetch(after).await, Ok(Some(_))),
        };
        tracing::error!(note = j, reason = %why, "note marked needs_close(m = 1)");
        Ok(Located::NeedsClose(why))
    }

    /// Resyncs the tree (on `stale_root`) and drops precomputations for older roots.
    pub async fn resync(&self) -> Result<(), ClientError> {
        let before = self.tree.root();
        self.tree.sync().await?;
        let root = self.tree.root();
        if root != before {
            let notes: Vec<u64> = self
                .db(|j| j.notes())
                .await?
                .into_iter()
                .map(|n| n.j)
                .collect();
            let cache = self.cache.clone();
            tokio::task::spawn_blocking(move || cache.retain_root(root, &notes))
                .await
                .map_err(ClientError::Blocking)?;
            // Every ticket precomputation was for the old root.
            if self.maker.is_running() {
                self.prepare_tickets().await?;
            }
        }
        Ok(())
    }
}

/// Where [`Spender::locate`] found a note.
enum Located {
    /// At the journal's index after moving this many tickets forward.
    Here(u64),
    /// Spent at an index this wallet cannot prove past: marked `needs_close(m = 1)`.
    NeedsClose(UnrecordedSpend),
    /// The gateway or the chain could not be asked.
    Unknown,
}
