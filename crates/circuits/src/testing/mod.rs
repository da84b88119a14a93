//! Test fixtures the workspace's tests share (feature `test-util`): the development keys,
//! made once per machine.
//!
//! A development setup takes tens of seconds, and every test crate needs the same keys
//! (request and close, from [`DEV_SEED`]), so they are made once into a directory under
//! the temp dir and reused by every later test process. The directory's name carries a
//! version derived from what the circuits are (both R1CS digests, the QAP reduction and
//! the seed): a checkout whose circuits differ uses a directory of its own instead of
//! fighting over one, and never loads keys made for another circuit.

pub mod ptau;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::close::CloseCircuit;
use crate::error::CircuitError;
use crate::keys::{self, DEV_SEED};
use crate::request::RequestCircuit;
use crate::statement::{CircuitShape, StatementKind};

/// The directory holding the development request and close keys, made if missing or
/// damaged (see [`try_dev_keys_dir`]).
///
/// # Panics
///
/// If the keys can be neither found nor made (the temp dir is not writable): a test
/// cannot go on without them.
pub fn dev_keys_dir() -> &'static Path {
    try_dev_keys_dir().unwrap_or_else(|e| panic!("development keys: {e}"))
}

/// The directory holding the development request and close keys:
/// `$TMPDIR/zkcredits-dev-keys-<version>`, where the version hashes both circuits' R1CS
/// digests, the QAP reduction and [`DEV_SEED`].
///
/// Reused when both key sets load (their files match the hashes pinned in their
/// manifests) and were made for these circuits. Otherwise the keys are made in a
/// directory of this process's own and renamed into place, so another process never sees
/// half-written keys; when several processes race, each makes its own and whoever
/// renames last finds the winner's keys in place and uses them. Once per process: the
/// result is cached, and threads wait for the first one's setup.
pub fn try_dev_keys_dir() -> Result<&'static Path, CircuitError> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    static MAKING: Mutex<()> = Mutex::new(());
    if let Some(dir) = DIR.get() {
        return Ok(dir);
    }
    // A poisoned lock only means another test panicked: the directory is still checked.
    let _guard = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = DIR.get() {
        return Ok(dir);
    }
    let dir = install_dev_keys(&std::env::temp_dir())?;
    Ok(DIR.get_or_init(|| dir))
}

/// What the keys must have been made for: each circuit's R1CS digest.
struct Expected {
    request: String,
    close: String,
}

impl Expected {
    fn of_these_circuits() -> Result<Self, CircuitError> {
        Ok(Self {
            request: CircuitShape::extract_for::<RequestCircuit>()?.digest_hex(),
            close: CircuitShape::extract_for::<CloseCircuit>()?.digest_hex(),
        })
    }

    /// A short tag naming what the development setup makes for these circuits.
    fn version(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            keys::REQUEST_CIRCUIT_ID,
            &self.request,
            keys::CLOSE_CIRCUIT_ID,
            &self.close,
            keys::QAP,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(DEV_SEED);
        hex::encode(&h.finalize()[..8])
    }

    /// Whether `dir` holds intact keys of both circuits, made for these circuits: what a
    /// [`crate::prover::RequestProver`] and a `CloseProver` check before taking them.
    fn holds_keys(&self, dir: &Path) -> bool {
        let current = |kind: StatementKind, digest: &str| {
            keys::load_keys(kind, dir)
                .is_ok_and(|k| k.manifest.circuit_digest == digest && k.manifest.qap == keys::QAP)
                && keys::load_verifying_key_for(kind, dir).is_ok()
        };
        current(StatementKind::Request, &self.request) && current(StatementKind::Close, &self.close)
    }
}

/// Finds or makes the development keys under `root` and returns their directory.
fn install_dev_keys(root: &Path) -> Result<PathBuf, CircuitError> {
    let expected = Expected::of_these_circuits()?;
    let name = format!("zkcredits-dev-keys-{}", expected.version());
    let dir = root.join(&name);
    if expected.holds_keys(&dir) {
        return Ok(dir);
    }
    // Unique per process and per attempt, so racing processes never share a staging
    // directory.
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let unique = format!("{}-{nonce}", std::process::id());
    let staging = root.join(format!("{name}.tmp-{unique}"));
    let _ = std::fs::remove_dir_all(&staging);
    keys::setup_dev(&staging, DEV_SEED, |_| {})?;
    if std::fs::rename(&staging, &dir).is_ok() {
        return Ok(dir);
    }
    // The rename fails when `dir` exists: another process installed its keys meanwhile
    // (use them), or damaged keys are in the way (move them aside, atomically, then
    // install ours).
    if !expected.holds_keys(&dir) {
        let stale = root.join(format!("{name}.stale-{unique}"));
        if std::fs::rename(&dir, &stale).is_ok() {
            let _ = std::fs::remove_dir_all(&stale);
        }
        if std::fs::rename(&staging, &dir).is_ok() {
            return Ok(dir);
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    if expected.holds_keys(&dir) {
        Ok(dir)
    } else {
        Err(CircuitError::KeyFile {
            path: dir.display().to_string(),
            reason: "the development keys could not be installed there".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_names_the_circuits() {
        let a = Expected {
            request: "aa".into(),
            close: "bb".into(),
        };
        let b = Expected {
            request: "aa".into(),
            close: "bc".into(),
        };
        assert_eq!(a.version().len(), 16);
        assert_ne!(a.version(), b.version());
    }
}
