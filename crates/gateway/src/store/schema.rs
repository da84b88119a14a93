//! The schema version both stores write, and the check that refuses any other.

use super::{Corruption, StoreError};

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
    let place = place.to_owned();
    let corrupt = match stored.map(str::parse::<u32>) {
        Some(Ok(v)) if (UPGRADES_FROM..=VERSION).contains(&v) => return Ok(v),
        Some(Ok(version)) if version > VERSION => Corruption::NewerSchema { place, version },
        Some(Ok(version)) => Corruption::OlderSchema { place, version },
        Some(Err(_)) => Corruption::UnreadableSchemaVersion {
            place,
            stored: stored.unwrap_or_default().to_owned(),
        },
        None => Corruption::NoSchemaVersion { place },
    };
    Err(corrupt.into())
}
