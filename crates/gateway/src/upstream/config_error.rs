//! The one error every adapter and policy constructor returns: a configuration the
//! gateway cannot start with. Raised at startup, never per request.

/// A configuration that cannot work, with what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration of {section}: {message}")]
pub struct ConfigError {
    /// Which part of the configuration (`openai`, `policy.blocklist[2]`...).
    pub section: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ConfigError {
    /// A configuration error in `section`.
    pub fn new(section: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            section: section.into(),
            message: message.into(),
        }
    }
}
