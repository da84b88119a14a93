//! The global `--dev` flag. Development keys come from a public seed, so anyone can
//! forge request and close proofs with them: the gateway, the client commands and a
//! deployment refuse them unless the process was started with `--dev` (the devnet and
//! the demo pass it to every process they start).

use std::path::Path;
use std::sync::OnceLock;

use anyhow::bail;
use zkcredits_circuits::keys;

static DEV: OnceLock<bool> = OnceLock::new();

/// Records the flag once, at start-up, and says so loudly when it is on.
pub(crate) fn set(on: bool) {
    if on {
        eprintln!(
            "WARNING: --dev: development keys from a public seed are accepted; anyone can forge proofs with them. Never use this with real money."
        );
    }
    let _ = DEV.set(on);
}

/// Whether `--dev` was given.
pub(crate) fn enabled() -> bool {
    DEV.get().copied().unwrap_or(false)
}

/// Refuses the request keys in `dir` if they are development keys and `--dev` was not
/// given; `who` names the command for the message.
pub(crate) fn check_keys(dir: &Path, who: &str) -> anyhow::Result<()> {
    let manifest = keys::read_manifest(dir)?;
    let vk = keys::load_verifying_key(dir)?;
    if manifest.is_development(&vk) && !enabled() {
        bail!(
            "{who} refuses the development keys in {}: they come from a public seed and anyone can forge proofs with them. Import a ceremony's keys (`zkcredits setup import-zkey`, docs/CEREMONY.md), or pass --dev on a local devnet",
            dir.display()
        );
    }
    Ok(())
}
