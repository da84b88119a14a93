//! The background maker of ticket precomputations: after a note's receipt (and at
//! start, for every free note) it proves the note's next ticket up to the request
//! binding `x` ([`RequestProver::precompute_ticket`]) on a thread of its own, so that
//! the note's next request only finishes the proof (`crate::ticket_cache`).
//!
//! Everything a ticket needs besides `x` is known once the previous receipt has been
//! applied: the state, `rho_next` (derived from note and index), the root, the limits
//! and the receipt key. The maker works one note at a time on a small rayon pool of
//! its own, so that a request's own work (a fallback proof, verification) never queues
//! behind it in the global pool; a request that finds its note's ticket not ready
//! simply proves as before. While a request proves by itself the maker starts no new
//! ticket, and a request waits for the ticket in hand only when that is quicker than a
//! proof (`crate::ticket_pace`): a maker that falls behind costs nothing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use zkcredits_circuits::CircuitError;
use zkcredits_circuits::prover::RequestProver;
use zkcredits_circuits::request::{RequestCircuit, RequestInputs};
use zkcredits_protocol::Fr;
use zkcredits_protocol::note::{self, WalletSeed};
use zkcredits_protocol::state::Limits;

use crate::error::ClientError;
use crate::gateway_constants::GatewayConstants;
use crate::journal::{Journal, NoteStatus};
use crate::precompute_cache::PrecomputeCache;
use crate::seal::StorageKey;
use crate::ticket_cache::{TicketCache, TicketSlot};
use crate::ticket_pace::Pace;
use crate::tree::TreeView;

/// What the maker needs: the spender's prover, caches, journal and tree.
pub(crate) struct MakerParts {
    pub(crate) prover: Arc<RequestProver>,
    pub(crate) notes: Arc<PrecomputeCache>,
    pub(crate) tickets: Arc<TicketCache>,
    pub(crate) journal: Arc<Mutex<Journal>>,
    pub(crate) tree: Arc<TreeView>,
    pub(crate) seed: WalletSeed,
    pub(crate) blinding: StorageKey,
    pub(crate) gateway: GatewayConstants,
    pub(crate) limits: Limits,
}

/// The maker: started by [`TicketMaker::start`] (the proxy turns the pipeline on),
/// then asked for notes. Dropping it stops its thread after the note in hand and waits
/// for it, so the journal it shares with the spender is closed when the spender is
/// gone (a test or a user may put another journal file in its place next).
pub(crate) struct TicketMaker {
    /// What the thread will need, until it is started.
    parts: Mutex<Option<MakerParts>>,
    running: Mutex<Option<Running>>,
    stop: Arc<AtomicBool>,
    pace: Arc<Pace>,
}

struct Running {
    queue: Sender<u64>,
    thread: std::thread::JoinHandle<()>,
}

impl std::fmt::Debug for TicketMaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketMaker")
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl TicketMaker {
    /// A maker that does nothing until [`TicketMaker::start`].
    pub(crate) fn new(parts: MakerParts) -> Self {
        Self {
            parts: Mutex::new(Some(parts)),
            running: Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
            pace: Arc::default(),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts the maker's thread (once; later calls do nothing).
    pub(crate) fn start(&self) {
        let Some(parts) = self
            .parts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let stopping = self.stop.clone();
        let pace = self.pace.clone();
        match std::thread::Builder::new()
            .name("zkcredits-ticket-maker".into())
            .spawn(move || run(parts, rx, &stopping, &pace))
        {
            Ok(thread) => {
                *self.running() = Some(Running { queue: tx, thread });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the ticket maker; every request proves");
            }
        }
    }

    /// Whether the thread runs.
    pub(crate) fn is_running(&self) -> bool {
        self.running().is_some()
    }

    /// The pace it shares with the requests (`crate::ticket_pace`).
    pub(crate) fn pace(&self) -> &Pace {
        &self.pace
    }

    /// Asks for note `j`'s next ticket (nothing happens before [`TicketMaker::start`],
    /// nor for a note that is busy, cannot pay, or whose ticket is ready).
    pub(crate) fn request(&self, j: u64) {
        if let Some(r) = &*self.running() {
            let _ = r.queue.send(j);
        }
    }
}

impl Drop for TicketMaker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(Running { queue, thread }) = self.running().take() {
            drop(queue);
            // At most the precomputation in hand (its result is discarded).
            let _ = thread.join();
        }
    }
}

fn run(parts: MakerParts, queue: Receiver<u64>, stop: &AtomicBool, pace: &Pace) {
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("zkcredits-ticket-{i}"))
        .build()
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the ticket maker's threads; every request proves");
            return;
        }
    };
    while let Ok(first) = queue.recv() {
        let mut notes = BTreeSet::from([first]);
        while let Ok(more) = queue.try_recv() {
            notes.insert(more);
        }
        for j in notes {
            // Held back while a request proves by itself: that request goes first.
            if !pace.start_job(j, stop) {
                return;
            }
            let made = pool.install(|| make(&parts, j, stop));
            pace.end_job(matches!(made, Ok(Outcome::New)));
            match made {
                Ok(Outcome::Ready) | Ok(Outcome::Skipped) => {}
                Ok(Outcome::New) => {
                    let (ticket, proof) = pace.estimates();
                    tracing::debug!(
                        note = j,
                        ticket_ms = ticket.as_millis(),
                        proof_ms = proof.as_millis(),
                        "next ticket precomputed (running estimates)"
                    );
                }
                Err(e) => {
                    tracing::warn!(note = j, error = %e, "cannot precompute the next ticket; its request will prove")
                }
            }
        }
    }
}

/// What [`make`] did.
enum Outcome {
    /// The ticket was ready already (in memory, or loaded from disk).
    Ready,
    /// A new precomputation is ready.
    New,
    /// Nothing to do: the note is busy, cannot pay, is not in the tree yet, or the
    /// journal took its ticket meanwhile.
    Skipped,
}

fn lock(journal: &Mutex<Journal>) -> std::sync::MutexGuard<'_, Journal> {
    journal
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn make(parts: &MakerParts, j: u64, stop: &AtomicBool) -> Result<Outcome, ClientError> {
    let proving = ClientError::Proving;
    let note = lock(&parts.journal).note(j)?;
    let Some(info) = note.deposit else {
        return Ok(Outcome::Skipped);
    };
    if note.status != NoteStatus::Free || !note.state.can_pay(info.deposit, parts.limits) {
        return Ok(Outcome::Skipped);
    }
    let tree = parts.tree.snapshot();
    let root = tree.root();
    let slot = TicketSlot {
        note: j,
        index: note.state.index,
        root,
    };
    {
        // A file left by an earlier run is used only if the journal has not recorded
        // its ticket: one recorded has gone out (or may have) with some `x`.
        let journal = lock(&parts.journal);
        if journal.ticket_recorded(j, slot.index)? {
            parts.tickets.discard(slot);
            return Ok(Outcome::Skipped);
        }
        if parts.tickets.warm(slot) {
            return Ok(Outcome::Ready);
        }
    }
    if tree.leaf(info.leaf_index) != Some(note::leaf(info.id, info.deposit, info.expiry_epoch)) {
        return Ok(Outcome::Skipped);
    }
    let key_id = if note.state.index == 0 {
        parts.gateway.current_key.id
    } else {
        note.last_key_id.unwrap_or(parts.gateway.current_key.id)
    };
    let Some(server_key) = parts.gateway.key(key_id) else {
        return Ok(Outcome::Skipped);
    };
    let path = tree
        .path(info.leaf_index)
        .map_err(|e| ClientError::NoteNotInTree {
            note: j,
            reason: e.into(),
        })?;
    let secret = parts.seed.note_secret(j);
    // The x the circuit is built with does not matter: the precomputation is for
    // every x.
    let circuit = RequestCircuit::new(RequestInputs {
        secret: &secret,
        deposit: info.deposit,
        expiry_epoch: info.expiry_epoch,
        path: &path,
        root,
        state: &note.state,
        x: Fr::from(0u64),
        rho_next: crate::seal::rho_next(&parts.blinding, j, slot.index),
        limits: parts.limits,
        server_key,
    })
    .map_err(proving)?;
    let mut rng = rand::rngs::OsRng;
    let mut made = None;
    for _ in 0..2 {
        let note_pre = match parts.notes.get(j, root) {
            Some(p) => p,
            None => parts.notes.insert(
                j,
                root,
                parts.prover.precompute(circuit.clone()).map_err(proving)?,
            ),
        };
        match parts
            .prover
            .precompute_ticket(&note_pre, circuit.clone(), &mut rng)
        {
            Ok(pre) => {
                made = Some(pre);
                break;
            }
            Err(CircuitError::StalePrecomputation) => parts.notes.remove(j),
            Err(e) => return Err(proving(e)),
        }
    }
    let Some(pre) = made else {
        return Err(proving(CircuitError::StalePrecomputation));
    };
    if stop.load(Ordering::SeqCst) {
        return Ok(Outcome::Skipped);
    }
    // Under the journal's lock, so that no request journals this ticket between the
    // check and the insert: a request that came first proved without it, and this
    // precomputation is dropped (wiped); one that comes after finds it.
    let journal = lock(&parts.journal);
    if journal.ticket_recorded(j, slot.index)? {
        return Ok(Outcome::Skipped);
    }
    parts.tickets.insert(slot, pre);
    drop(journal);
    Ok(Outcome::New)
}
