//! The per-note proving precomputations ([`NotePrecomputation`]), kept per
//! (note, root, verifying key) in memory and on disk, encrypted.
//!
//! A precomputation is derived from the note secret, so on disk it is sealed like the
//! journal's secrets (XChaCha20-Poly1305 under a key derived from the wallet seed) with
//! the note number, root and verifying-key hash as associated data, under a file name
//! that is a keyed hash of the same three values. A tampered file, or a file copied in
//! for another note, root or key, does not open and is refused (then deleted and
//! recomputed). A new root (after a resync) drops the entries of older roots.
//!
//! The cache is an optimisation only: a failed read or write is logged and the prover
//! recomputes, and the spender verifies every proof it makes before sending it, so a
//! wrong precomputation can never reach the gateway.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;
use zkcredits_circuits::precompute::NotePrecomputation;
use zkcredits_protocol::merkle::Root;

use crate::seal::StorageKey;

const MAGIC: &[u8; 4] = b"ZKCP";
const VERSION: u8 = 1;

/// Why a cached file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The file does not open: tampered, truncated, or made for another note, root,
    /// key or wallet.
    #[error(
        "cached precomputation {} is damaged or not for this note, root and key",
        .0.display()
    )]
    Refused(PathBuf),
    /// I/O error.
    #[error("precompute cache i/o on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("precompute cache: {0}")]
    Store(#[source] crate::wallet::WalletError),
}

struct Entry {
    root: Root,
    pre: Arc<NotePrecomputation>,
}

/// Precomputations per note, for one verifying key.
pub struct PrecomputeCache {
    dir: Option<PathBuf>,
    key: StorageKey,
    names: StorageKey,
    vk_hash: [u8; 32],
    entries: Mutex<HashMap<u64, Entry>>,
}

impl std::fmt::Debug for PrecomputeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrecomputeCache")
            .field("dir", &self.dir)
            .field("vk_hash", &hex::encode(self.vk_hash))
            .finish_non_exhaustive()
    }
}

impl PrecomputeCache {
    /// A cache for the verifying key with hash `vk_hash`, on disk under `dir` when given.
    /// `key` seals the files, `names` names them (both from the wallet, distinct
    /// purposes).
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

    fn aad(&self, note: u64, root: Root) -> Vec<u8> {
        let mut a = MAGIC.to_vec();
        a.push(VERSION);
        a.extend_from_slice(&note.to_be_bytes());
        a.extend_from_slice(&root.to_bytes());
        a.extend_from_slice(&self.vk_hash);
        a
    }

    /// The file that holds the precomputation of `note` under `root`, if on disk.
    pub fn path(&self, note: u64, root: Root) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!(
            "{}.pre",
            self.names.keyed_name(&self.aad(note, root))
        )))
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The precomputation of `note` under `root`: from memory, else from disk.
    pub fn get(&self, note: u64, root: Root) -> Option<Arc<NotePrecomputation>> {
        if let Some(e) = self.entries().get(&note)
            && e.root == root
        {
            return Some(e.pre.clone());
        }
        match self.load(note, root) {
            Ok(Some(pre)) => {
                let pre = Arc::new(pre);
                self.entries().insert(
                    note,
                    Entry {
                        root,
                        pre: pre.clone(),
                    },
                );
                Some(pre)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(note, error = %e, "dropping a cached precomputation");
                if let Some(path) = self.path(note, root) {
                    let _ = std::fs::remove_file(path);
                }
                None
            }
        }
    }

    /// Reads the file of `note` under `root`: `Ok(None)` when there is none.
    pub fn load(&self, note: u64, root: Root) -> Result<Option<NotePrecomputation>, CacheError> {
        let Some(path) = self.path(note, root) else {
            return Ok(None);
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::Io { path, source }),
        };
        let refused = || CacheError::Refused(path.clone());
        if bytes.len() < 5 || &bytes[..4] != MAGIC || bytes[4] != VERSION {
            return Err(refused());
        }
        let plain = self
            .key
            .open(&self.aad(note, root), &bytes[5..])
            .map_err(|_| refused())?;
        NotePrecomputation::from_bytes(&plain)
            .map(Some)
            .map_err(|_| refused())
    }

    /// Stores the precomputation of `note` under `root` in memory and (best effort) on
    /// disk.
    pub fn insert(
        &self,
        note: u64,
        root: Root,
        pre: NotePrecomputation,
    ) -> Arc<NotePrecomputation> {
        if let Err(e) = self.store(note, root, &pre) {
            tracing::warn!(note, error = %e, "could not write a precomputation to disk");
        }
        let pre = Arc::new(pre);
        self.entries().insert(
            note,
            Entry {
                root,
                pre: pre.clone(),
            },
        );
        pre
    }

    /// Writes the file of `note` under `root` (0600, atomic).
    pub fn store(&self, note: u64, root: Root, pre: &NotePrecomputation) -> Result<(), CacheError> {
        let Some(path) = self.path(note, root) else {
            return Ok(());
        };
        let plain = Zeroizing::new(pre.to_bytes());
        let mut file = MAGIC.to_vec();
        file.push(VERSION);
        file.extend_from_slice(&self.key.seal(&self.aad(note, root), &plain));
        crate::wallet::write_private_atomic(&path, &file).map_err(CacheError::Store)
    }

    /// Forgets the precomputation of `note` (memory and disk).
    pub fn remove(&self, note: u64) {
        if let Some(e) = self.entries().remove(&note)
            && let Some(path) = self.path(note, e.root)
        {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Keeps only precomputations for `root`: in memory, and on disk those of `notes`
    /// (every other `.pre` file in the directory is deleted).
    pub fn retain_root(&self, root: Root, notes: &[u64]) {
        self.entries().retain(|_, e| e.root == root);
        let Some(dir) = &self.dir else { return };
        let keep: std::collections::HashSet<PathBuf> =
            notes.iter().filter_map(|j| self.path(*j, root)).collect();
        let Ok(listing) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in listing.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "pre") && !keep.contains(&path) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}
