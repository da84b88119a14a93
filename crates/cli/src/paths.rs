//! Where zkcredits keeps its files: `$ZKCREDITS_HOME`, else `~/.zkcredits`, with the
//! keys in `$ZKCREDITS_KEYS`, else `keys/` there. One rule, the client's
//! ([`ClientHome`]), for every command.

use std::path::PathBuf;

use zkcredits_client::home::ClientHome;

/// The data directory.
pub(crate) fn home() -> PathBuf {
    ClientHome::from_env().dir().to_path_buf()
}

/// The default key directory.
pub(crate) fn default_keys() -> PathBuf {
    ClientHome::from_env().keys()
}
