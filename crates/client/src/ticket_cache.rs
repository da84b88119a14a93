//! Ticket precomputations ([`TicketPrecomputation`]): each free note's next ticket,
//! proved up to the request binding `x`, kept in memory and on disk, encrypted, so a
//! request whose ticket is ready waits about 0.2 ms for its proof instead of 250 ms or
//! more (`docs/PROTOCOL.md §4`, "Finishing a precomputed ticket").
//!
//! **A ticket precomputation is finished at most once.** It is as secret as the note
//! key: two proofs finished from it for different `x` share their blinding and are the
//! same ticket spent twice (the gateway recovers `k` and the note is slashed). So:
//!
//! - [`TicketCache::take`] is the only way out. It removes the entry from memory and
//!   deletes its file under the cache's lock, before the caller finishes the proof; a
//!   file that cannot be deleted is not used. Two concurrent takes cannot both get it,
//!   and a process that dies after the request left cannot find it again. The
//!   directory is not synced on the request path (it cost milliseconds on a busy
//!   disk): a power loss could bring the file back, but the journal recorded the
//!   ticket durably before the take, and nothing loads a file for a ticket the journal
//!   holds (next rule).
//! - The spender takes a ticket only right after journaling it for a request
//!   ([`crate::journal::Journal::acquire`], whose `UNIQUE (note, index)` means no
//!   earlier request on that index ever left), so the file is gone before the request
//!   leaves.
//! - Whoever puts a precomputation in (the background maker, a load at start) first
//!   checks that the journal holds no ticket for that (note, index)
//!   ([`crate::journal::Journal::ticket_recorded`]): a ticket the journal already holds
//!   as used is never finished.
//! - In memory the points are wiped when the precomputation is dropped or finished
//!   (`TicketPrecomputation` zeroizes itself), and the decrypted bytes are wiped too.
//!
//! On disk a file is sealed with the precompute-cache key and (note, index, root,
//! verifying-key hash) as associated data, under a name that is a keyed hash of the
//! same values: a tampered file, or one for another note, index, root, key or wallet,
//! does not open and is deleted. `finish_ticket` checks the precomputation's own
//! fingerprint (state, `rho_next`, root, limits, receipt key) again, and the spender
//! verifies every proof before it leaves.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use zeroize::Zeroizing;
use zkcredits_circuits::ticket::TicketPrecomputation;
use zkcredits_protocol::merkle::Root;

use crate::precompute_cache::CacheError;
use crate::seal::StorageKey;

const MAGIC: &[u8; 4] = b"ZKCT";
const VERSION: u8 = 1;
/// The extension of ticket files (the note precomputations are `.pre`).
const EXTENSION: &str = "tkt";

/// What a precomputation is for: the note, its next ticket index and the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TicketSlot {
    /// The note number.
    pub note: u64,
    /// The ticket index (the note's next).
    pub index: u64,
    /// The root the proof will be against.
    pub root: Root,
}

struct Entry {
    index: u64,
    root: Root,
    pre: TicketPrecomputation,
}

/// Ticket precomputations, one per note, for one verifying key.
pub struct TicketCache {
    dir: Option<PathBuf>,
    key: StorageKey,
    names: StorageKey,
    vk_hash: [u8; 32],
    entries: Mutex<HashMap<u64, Entry>>,
}

impl std::fmt::Debug for TicketCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketCache")
            .field("dir", &self.dir)
            .field("vk_hash", &hex::encode(self.vk_hash))
            .finish_non_exhaustive()
    }
}

impl TicketCache {
    /// A cache for the verifying key with hash `vk_hash`, on disk under `dir` when
    /// given. `key` seals the files and `names` names them (the wallet's precompute-cache
    /// and cache-name keys, as for the note precomputations).
    pub fn new(
        dir: Option<PathBuf>,
        key: StorageKey,
        names: StorageKey,
        vk_hash: [u8; 32],
    ) -> Self {
        Self {
            dir,
            key,
            names,
            vk_hash,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn aad(&self, slot: TicketSlot) -> Vec<u8> {
        let mut a = MAGIC.to_vec();
        a.push(VERSION);
        a.extend_from_slice(&slot.note.to_be_bytes());
        a.extend_from_slice(&slot.index.to_be_bytes());
        a.extend_from_slice(&slot.root.to_bytes());
        a.extend_from_slice(&self.vk_hash);
        a
    }

    /// The file of `slot`'s precomputation (when the cache has a directory).
    pub fn path(&self, slot: TicketSlot) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!(
            "{}.{EXTENSION}",
            self.names.keyed_name(&self.aad(slot))
        )))
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `slot`'s precomputation is ready in memory: what a request prefers
    /// ([`TicketCache::ready`]). A file left by an earlier run counts once the maker has
    /// checked it against the journal and loaded it ([`TicketCache::warm`]).
    pub fn is_ready(&self, slot: TicketSlot) -> bool {
        self.entries()
            .get(&slot.note)
            .is_some_and(|e| e.index == slot.index && e.root == slot.root)
    }

    /// Puts `slot`'s precomputation in memory and (best effort) on disk, replacing the
    /// note's older one. The caller has checked that the journal holds no ticket for
    /// `slot` (see the module's rules).
    pub fn insert(&self, slot: TicketSlot, pre: TicketPrecomputation) {
        if let Err(e) = self.store(slot, &pre) {
            tracing::warn!(note = slot.note, error = %e, "could not write a ticket precomputation to disk");
        }
        let old = self.entries().insert(
            slot.note,
            Entry {
                index: slot.index,
                root: slot.root,
                pre,
            },
        );
        if let Some(old) = old
            && (old.index, old.root) != (slot.index, slot.root)
            && let Some(path) = self.path(TicketSlot {
                note: slot.note,
                index: old.index,
                root: old.root,
            })
        {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Takes `slot`'s precomputation out for one proof: from memory, else from disk.
    /// Its file is deleted before it is returned; when the file cannot be deleted,
    /// `None`. A precomputation of the note for another index
    /// or root is dropped on the way. Call it only for a ticket just journaled for the
    /// request the proof is for.
    pub fn take(&self, slot: TicketSlot) -> Option<TicketPrecomputation> {
        // The lock is held until the file is gone: a second take of the same slot
        // waits and then finds nothing.
        let mut entries = self.entries();
        let from_memory = match entries.remove(&slot.note) {
            Some(e) if e.index == slot.index && e.root == slot.root => Some(e.pre),
            Some(stale) => {
                self.delete_file(TicketSlot {
                    note: slot.note,
                    index: stale.index,
                    root: stale.root,
                });
                None
            }
            None => None,
        };
        let pre = match from_memory {
            Some(pre) => Some(pre),
            None => match self.load(slot) {
                Ok(pre) => pre,
                Err(e) => {
                    tracing::warn!(note = slot.note, error = %e, "dropping a cached ticket precomputation");
                    None
                }
            },
        };
        if !self.delete_file(slot) {
            // It could be found again after a restart and finished for another
            // request: not used at all (dropping it wipes it).
            tracing::warn!(
                note = slot.note,
                "cannot delete a ticket precomputation's file; proving without it"
            );
            return None;
        }
        drop(entries);
        pre
    }

    /// Deletes `slot`'s file. True when the file is gone.
    fn delete_file(&self, slot: TicketSlot) -> bool {
        let Some(path) = self.path(slot) else {
            return true;
        };
        match std::fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot delete a ticket precomputation file");
                false
            }
        }
    }

    /// Loads `slot`'s file into memory, when there is one and nothing is in memory for
    /// the note yet. A file that does not open is deleted. True when `slot` is ready in
    /// memory afterwards. The caller has checked the journal (see the module's rules).
    pub fn warm(&self, slot: TicketSlot) -> bool {
        let mut entries = self.entries();
        if let Some(e) = entries.get(&slot.note)
            && (e.index, e.root) == (slot.index, slot.root)
        {
            return true;
        }
        match self.load(slot) {
            Ok(Some(pre)) => {
                entries.insert(
                    slot.note,
                    Entry {
                        index: slot.index,
                        root: slot.root,
                        pre,
                    },
                );
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(note = slot.note, error = %e, "dropping a cached ticket precomputation");
                self.delete_file(slot);
                false
            }
        }
    }

    /// Forgets `slot`'s precomputation, in memory and on disk (the journal holds its
    /// ticket, or it was refused).
    pub fn discard(&self, slot: TicketSlot) {
        let mut entries = self.entries();
        if entries
            .get(&slot.note)
            .is_some_and(|e| (e.index, e.root) == (slot.index, slot.root))
        {
            entries.remove(&slot.note);
        }
        self.delete_file(slot);
    }

    /// Reads `slot`'s file: `Ok(None)` when there is none.
    pub fn load(&self, slot: TicketSlot) -> Result<Option<TicketPrecomputation>, CacheError> {
        let Some(path) = self.path(slot) else {
            return Ok(None);
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::Io { path, source }),
        };
        let refused = || CacheError::Refused(path.clone());
        if bytes.len() < 5 || &bytes[..4] != MAGIC || bytes[4] != VERSION {
            let _ = std::fs::remove_file(&path);
            return Err(refused());
        }
        let opened = self
            .key
            .open(&self.aad(slot), &bytes[5..])
            .map_err(|_| refused())
            .and_then(|plain| TicketPrecomputation::from_bytes(&plain).map_err(|_| refused()));
        if opened.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        opened.map(Some)
    }

    /// Writes `slot`'s file (0600, atomic).
    pub fn store(&self, slot: TicketSlot, pre: &TicketPrecomputation) -> Result<(), CacheError> {
        let Some(path) = self.path(slot) else {
            return Ok(());
        };
        let plain = pre.to_bytes();
        let mut file = Zeroizing::new(MAGIC.to_vec());
        file.push(VERSION);
        file.extend_from_slice(&self.key.seal(&self.aad(slot), &plain));
        crate::wallet::write_private_atomic(&path, &file).map_err(CacheError::Store)
    }

    /// The slots ready in memory.
    pub fn ready(&self) -> Vec<TicketSlot> {
        self.entries()
            .iter()
            .map(|(note, e)| TicketSlot {
                note: *note,
                index: e.index,
                root: e.root,
            })
            .collect()
    }

    /// Keeps only the precomputations of `keep` (each note's next ticket under the
    /// current root): other entries are dropped from memory and every other ticket file
    /// in the directory is deleted (older roots, spent indices, closed notes).
    pub fn retain(&self, keep: &[TicketSlot]) {
        let mut entries = self.entries();
        entries.retain(|note, e| {
            keep.contains(&TicketSlot {
                note: *note,
                index: e.index,
                root: e.root,
            })
        });
        let Some(dir) = &self.dir else { return };
        let keep: std::collections::HashSet<PathBuf> =
            keep.iter().filter_map(|s| self.path(*s)).collect();
        let Ok(listing) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in listing.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == EXTENSION) && !keep.contains(&path) {
                let _ = std::fs::remove_file(&path);
            }
        }
        drop(entries);
    }
}
