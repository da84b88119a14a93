//! Where zkcredits keeps its files: `$ZKCREDITS_HOME`, else `~/.zkcredits`.

use std::path::PathBuf;

/// The data directory.
pub(crate) fn home() -> PathBuf {
    if let Some(dir) = std::env::var_os("ZKCREDITS_HOME") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    base.join(".zkcredits")
}

/// The default key directory.
pub(crate) fn default_keys() -> PathBuf {
    home().join("keys")
}
