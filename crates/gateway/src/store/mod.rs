//! Durable state of the gateway: spent tickets, issued receipts, and the on-chain work
//! still owed (slashes, violation records).
//!
//! Every method that returns `Ok` has made its write durable (SQLite: WAL with
//! `synchronous = FULL`; PostgreSQL: a committed transaction), so the gateway may answer
//! the client right after it. Implementations group-commit concurrent calls rather than
//! syncing each on its own. Field elements travel as 32-byte canonical big-endian
//! encodings (`zkcredits_protocol::field::to_be_bytes`).

use async_trait::async_trait;
use zkcredits_protocol::rln::{self, Recovered, RlnError, Share};
use zkcredits_protocol::{Fr, field};

/// A field element in its canonical 32-byte big-endian encoding.
pub type FieldBytes = [u8; 32];

/// One share `(x, y)` on a ticket's line, as the gateway received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredShare {
    /// The request binding `x`.
    pub x: FieldBytes,
    /// `y = k + a * x`.
    pub y: FieldBytes,
}

/// Why a stored share and another share of the same ticket did not give its key.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The stored share is not a pair of field elements (a marker share, or damage).
    #[error("the stored share is not in the field")]
    NotInField,
    /// The two shares do not determine a line (same `x`).
    #[error(transparent)]
    Rln(#[from] RlnError),
    /// The line's slope is not this ticket's: the store holds something else under it.
    #[error("the recovered slope does not match the ticket's nullifier")]
    OtherTicket,
}

impl StoredShare {
    /// `(k, a)` from this share and `second`, another share of the ticket `nullifier`,
    /// checked against the nullifier (both proofs verified, so the shares lie on the
    /// ticket's line; the check guards against a store holding something else).
    pub fn recover_with(&self, second: Share, nullifier: Fr) -> Result<Recovered, RecoveryError> {
        let (Some(x), Some(y)) = (
            field::from_be_bytes_canonical(&self.x),
            field::from_be_bytes_canonical(&self.y),
        ) else {
            return Err(RecoveryError::NotInField);
        };
        let recovered = rln::recover(Share { x, y }, second)?;
        if rln::nullifier(recovered.slope) != nullifier {
            return Err(RecoveryError::OtherTicket);
        }
        Ok(recovered)
    }
}

/// The `x` recorded for a ticket spent by a cooperative close (see
/// `service::endpoints::close_clearance`), with `y = 0`: 32 bytes of 0xff, never a request
/// or close binding (those are below 2^248) nor a field element, so it cannot collide
/// with a real share, and no key is ever recovered from it.
pub const CLEARANCE_X: FieldBytes = [0xff; 32];

/// The `x` of the share the chain watcher records on the first unspent ticket of a
/// slashed note (`duties::watcher`): 2^248, a field element that no request or close
/// binding can equal (those are 31-byte values, below 2^248). Its `y = k + a x` is a true
/// share of that ticket (the slash made `k` public), so the ticket can never be admitted
/// and no later ticket of the note can be proven (each needs the previous receipt).
pub const SLASHED_X: FieldBytes = {
    let mut x = [0; 32];
    x[0] = 1;
    x
};

/// The outcome of offering a ticket's nullifier to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The nullifier was unseen; it is now durably recorded with this share.
    Fresh,
    /// The same nullifier with the same `x` was seen before: a replay. Carries the
    /// receipt issued for it, if one was stored.
    Replay {
        /// The encoded receipt (`zkcredits_protocol::wire`), if already issued.
        receipt: Option<Vec<u8>>,
    },
    /// The same nullifier with another `x`: a double spend. Carries the first share,
    /// which with the new one recovers the note secret.
    DoubleSpend {
        /// The share stored first.
        first: StoredShare,
    },
}

/// A violation of the provider's policy, to be logged on chain with
/// `recordViolations`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Store-assigned id, used to mark it submitted.
    pub id: i64,
    /// The request's nullifier `N`.
    pub nullifier: FieldBytes,
    /// Hash of the evidence kept by the provider.
    pub evidence_hash: FieldBytes,
    /// The penalty put in the receipt, in credit units.
    pub penalty: u64,
}

/// A request ticket admitted without a receipt (see [`Store::unanswered`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unanswered {
    /// The ticket's nullifier.
    pub nullifier: FieldBytes,
    /// The `T_next` its receipt signs.
    pub next_commitment: FieldBytes,
}

/// A slash still to be submitted on chain: the recovered note secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingSlash {
    /// The recovered note secret `k`.
    pub k: FieldBytes,
    /// How many submissions failed so far.
    pub attempts: u32,
}

/// Why a store operation failed. The gateway answers 503 `store_unavailable` and the
/// request is not charged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or refused the operation.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The stored data is not what this version of the gateway wrote.
    #[error("store corrupt: {0}")]
    Corrupt(String),
    /// A receipt was offered for a nullifier the store never admitted, or a second,
    /// different receipt for one that already has one.
    #[error("receipt conflict: {0}")]
    ReceiptConflict(&'static str),
}

/// The nullifier, receipt and duty store shared by every request handler.
///
/// Implementations: SQLite (embedded default) and PostgreSQL (replicas sharing one
/// database). Both must be safe under concurrent calls from many tasks and, for
/// PostgreSQL, from many processes.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Atomically inserts `(nullifier, share)` if the nullifier is unseen, else reports
    /// what was there. Durable before it returns `Fresh`. A request's ticket also keeps
    /// `next_commitment` (`T_next`) and the time, so that it can be refunded in full if its
    /// process dies before answering ([`Store::unanswered`]); closes and blocks pass `None`.
    async fn admit(
        &self,
        nullifier: FieldBytes,
        share: StoredShare,
        next_commitment: Option<FieldBytes>,
    ) -> Result<Admission, StoreError>;

    /// Request tickets admitted before `admitted_before` (unix milliseconds) that have no
    /// receipt yet, oldest first.
    async fn unanswered(
        &self,
        admitted_before: i64,
        limit: usize,
    ) -> Result<Vec<Unanswered>, StoreError>;

    /// Whether this process may run the on-chain duties now. Replicas sharing a store
    /// must not all send the provider's transactions (they would collide on its nonce):
    /// PostgreSQL hands the duties to the holder of a session advisory lock, kept until its
    /// connection ends, so another replica takes over when the leader dies. A store owned
    /// by one process always leads.
    async fn lead_duties(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Whether one gateway process owns this store (SQLite), so that at startup every
    /// unanswered ticket was left by a process that is gone. `false` for a store shared by
    /// replicas, where only an old unanswered ticket is known to be abandoned.
    fn single_process(&self) -> bool {
        false
    }

    /// Stores the receipt issued for an admitted nullifier. Durable before it returns.
    /// Storing the identical receipt again is a no-op.
    async fn put_receipt(&self, nullifier: FieldBytes, receipt: &[u8]) -> Result<(), StoreError>;

    /// The receipt issued for a nullifier, if any.
    async fn receipt(&self, nullifier: FieldBytes) -> Result<Option<Vec<u8>>, StoreError>;

    /// Queues `slash(k)` for the chain worker. Idempotent per `k`.
    async fn enqueue_slash(&self, k: FieldBytes) -> Result<(), StoreError>;

    /// Slashes not yet confirmed on chain, oldest first.
    async fn pending_slashes(&self, limit: usize) -> Result<Vec<PendingSlash>, StoreError>;

    /// Records the outcome of a slash submission: `Some(tx)` once it is on chain (or the
    /// note was already slashed or closed), `None` for a failed attempt to retry.
    async fn finish_slash(&self, k: FieldBytes, tx: Option<[u8; 32]>) -> Result<(), StoreError>;

    /// Records a policy violation for the next `recordViolations` batch.
    async fn record_violation(
        &self,
        nullifier: FieldBytes,
        evidence_hash: FieldBytes,
        penalty: u64,
    ) -> Result<(), StoreError>;

    /// Violations not yet logged on chain, oldest first.
    async fn pending_violations(&self, limit: usize) -> Result<Vec<Violation>, StoreError>;

    /// Marks violations as logged by transaction `tx`.
    async fn mark_violations_submitted(&self, ids: &[i64], tx: [u8; 32]) -> Result<(), StoreError>;

    /// A small key-value slot for the chain watcher's progress (last block scanned).
    async fn cursor(&self, name: &str) -> Result<Option<u64>, StoreError>;

    /// Sets a cursor, durably.
    async fn set_cursor(&self, name: &str, value: u64) -> Result<(), StoreError>;
}

pub mod postgres;
mod schema;
pub mod sqlite;

use std::sync::Arc;

pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;

/// `put_receipt` for a nullifier the store never admitted.
const NOT_ADMITTED: &str = "no ticket was admitted under this nullifier";
/// `put_receipt` with a receipt other than the one already stored.
const OTHER_RECEIPT: &str = "another receipt is already stored for this nullifier";

/// Now, in unix milliseconds (what `admitted_at` holds).
pub(crate) fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What a second offer of a nullifier means, given the share stored first.
fn classify(first: StoredShare, offered: StoredShare, receipt: Option<Vec<u8>>) -> Admission {
    if first.x == offered.x {
        Admission::Replay { receipt }
    } else {
        Admission::DoubleSpend { first }
    }
}

/// Checks the syntax of a store URL as [`open_from_url`] reads it, without opening or
/// connecting to anything (`zkcredits gateway check`). A SQLite file's directory must
/// exist.
pub fn check_url(url: &str) -> Result<(), StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::Unavailable(
                "sqlite:// needs a file path, e.g. sqlite:///var/lib/zkcredits/gateway.db".into(),
            ));
        }
        let dir = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir.filter(|d| !d.is_dir()) {
            return Err(StoreError::Unavailable(format!(
                "the SQLite file's directory {} does not exist",
                dir.display()
            )));
        }
        return Ok(());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (url, options) = PostgresOptions::from_url(url)?;
        <tokio_postgres::Config as std::str::FromStr>::from_str(&url)
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        if let Some(name) = options.schema.filter(|n| !postgres::valid_identifier(n)) {
            return Err(StoreError::Unavailable(format!(
                "schema name {name:?} is not a plain identifier; use letters, digits and _"
            )));
        }
        return Ok(());
    }
    Err(StoreError::Unavailable(format!(
        "unsupported store URL {:?}: use sqlite:///path/to/gateway.db or \
         postgres://user@host:port/database[?schema=name]",
        url.split_once("://").map_or(url, |(scheme, _)| scheme)
    )))
}

/// Opens the store named by `url`:
///
/// - `sqlite:///absolute/path.db` or `sqlite://relative/path.db`: an embedded SQLite file
///   (created with mode 0600 when missing);
/// - `postgres://user@host:port/db` (or `postgresql://`): a shared PostgreSQL database;
///   an optional `schema=NAME` query parameter keeps this gateway's tables in schema
///   `NAME` (created if missing), e.g. to run several deployments in one database.
///
/// An unsupported scheme is `StoreError::Unavailable` naming the accepted forms.
pub async fn open_from_url(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::Unavailable(
                "sqlite:// needs a file path, e.g. sqlite:///var/lib/zkcredits/gateway.db".into(),
            ));
        }
        let path = path.to_owned();
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(path))
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening the store failed: {e}")))??;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (url, options) = PostgresOptions::from_url(url)?;
        return Ok(Arc::new(PostgresStore::connect(&url, options).await?));
    }
    Err(StoreError::Unavailable(format!(
        "unsupported store URL {:?}: use sqlite:///path/to/gateway.db or \
         postgres://user@host:port/database[?schema=name]",
        url.split_once("://").map_or(url, |(scheme, _)| scheme)
    )))
}
