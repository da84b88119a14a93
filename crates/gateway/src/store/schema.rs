//! The schema version both stores write, and the check that refuses any other.

use super::StoreError;

/// The layout this version of the gateway writes (`meta.schema_version`).
pub(crate) const VERSION: u32 = 1;

/// Accepts the stored version if it is ours; explains what to do otherwise.
pub(crate) fn check_version(stored: Option<&str>, place: &str) -> Result<(), StoreError> {
    match stored.map(str::parse::<u32>) {
        Some(Ok(VERSION)) => Ok(()),
        Some(Ok(v)) if v > VERSION => Err(StoreError::Corrupt(format!(
            "{place} has schema version {v}, newer than version {VERSION} that this gateway \
             writes; run the gateway release that created it (or a newer one)"
        ))),
        Some(Ok(v)) => Err(StoreError::Corrupt(format!(
            "{place} has schema version {v}, which this gateway (version {VERSION}) cannot \
             read; run the gateway release that created it, or start with a fresh store once \
             every issued receipt has been fetched"
        ))),
        Some(Err(_)) => Err(StoreError::Corrupt(format!(
            "{place} has an unreadable schema version {stored:?}; restore it from a backup"
        ))),
        None => Err(StoreError::Corrupt(format!(
            "{place} has a meta table without a schema version; restore it from a backup"
        ))),
    }
}
