//! The schema version both stores write, and the check that refuses any other.

use super::StoreError;

/// The layout this version of the gateway writes (`meta.schema_version`).
///
/// - 1: tickets `(nullifier, x, y, receipt)`, slashes, violations, cursors.
/// - 2: tickets also keep `next_commitment` (`T_next`) and `admitted_at` (unix ms), so that
///   a ticket admitted by a process that died before answering can be refunded in full.
pub(crate) const VERSION: u32 = 2;

/// The oldest layout this gateway upgrades in place (tickets it admitted have no
/// `T_next`, so they are never refunded that way).
pub(crate) const UPGRADES_FROM: u32 = 1;

/// The stored version if this gateway can use it (`VERSION`, or an older one it
/// upgrades); explains what to do otherwise.
pub(crate) fn check_version(stored: Option<&str>, place: &str) -> Result<u32, StoreError> {
    match stored.map(str::parse::<u32>) {
        Some(Ok(v)) if (UPGRADES_FROM..=VERSION).contains(&v) => Ok(v),
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
