//! The one error every adapter and policy constructor returns: a setting of its own
//! section that cannot work. Raised at startup, never per request. It knows the key but
//! not the file: `config::ConfigSource::setting_error` turns it into the crate's one
//! `ConfigError` (`Setting`), which names the line of `gateway.toml`.

/// A setting that cannot work, with what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration of {}: {message}", .key.join("."))]
pub struct SettingError {
    /// The key at fault, as a path of TOML keys (`["jsonrpc", "prices", "eth_call"]`),
    /// or the section when no single key is (`["openai"]`). Kept as a path rather than
    /// dotted text because model names contain dots; the gateway turns it into the line
    /// of `gateway.toml` it names.
    pub key: Vec<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl SettingError {
    /// A configuration error in `section`, a dotted path of keys without dots inside
    /// them (`openai`, `jsonrpc.timeout_ms`).
    pub fn new(section: impl AsRef<str>, message: impl Into<String>) -> Self {
        Self {
            key: section.as_ref().split('.').map(str::to_owned).collect(),
            message: message.into(),
        }
    }

    /// A configuration error at the key path `key`.
    pub fn at(key: &[&str], message: impl Into<String>) -> Self {
        Self {
            key: key.iter().map(|k| (*k).to_owned()).collect(),
            message: message.into(),
        }
    }
}
