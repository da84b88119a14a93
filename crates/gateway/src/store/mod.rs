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
    /// The penalty put in the receipt.
    pub penalty: Credits,
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
/// request is not charged, whatever the variant; [`StoreError::is_transient`] tells a
/// failure worth retrying from one that needs an operator.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed or refused the operation (busy, locked, I/O, a full disk).
    #[error("store unavailable: SQLite: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// The SQLite batch holding this write did not commit. Every write of the batch gets
    /// the same error, hence the `Arc`.
    #[error("store unavailable: the batch holding this write did not commit: {0}")]
    BatchCommit(#[source] Arc<rusqlite::Error>),
    /// The SQLite writer thread has stopped (the store is closing, or the thread died):
    /// the write was not queued, nothing was written.
    #[error("store unavailable: the store's writer has stopped")]
    WriterStopped,
    /// The SQLite writer thread stopped with this write in its batch, without answering.
    #[error("store unavailable: the store's writer stopped mid-batch")]
    WriterStoppedMidBatch,
    /// The SQLite writer committed a batch without running this write.
    #[error("store unavailable: the store's writer skipped this write")]
    WriteSkipped,
    /// The SQLite writer thread could not be started.
    #[error("store unavailable: cannot start the writer: {0}")]
    WriterSpawn(#[source] std::io::Error),
    /// A task holding the SQLite read connection panicked: it is unusable until restart.
    #[error("store unavailable: the read connection is poisoned; restart the gateway")]
    ReaderPoisoned,
    /// A blocking task of the store (opening SQLite, a read) panicked or was cancelled.
    #[error("store unavailable: {what} failed: {source}")]
    Task {
        /// What the task was doing.
        what: &'static str,
        /// Why it ended.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The SQLite file could not be opened or created.
    #[error(
        "store unavailable: cannot open or create {}: {source}; check the directory exists \
         and is writable",
        path.display()
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The SQLite file's file system does not support WAL mode.
    #[error(
        "store unavailable: {} refused WAL mode (got {mode}); put it on a local file system",
        path.display()
    )]
    NoWal {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite fell back to.
        mode: String,
    },
    /// A `sqlite://` URL without a path.
    #[error(
        "store unavailable: sqlite:// needs a file path, e.g. \
         sqlite:///var/lib/zkcredits/gateway.db"
    )]
    NoSqlitePath,
    /// The directory of the SQLite file does not exist.
    #[error(
        "store unavailable: the SQLite file's directory {} does not exist",
        .0.display()
    )]
    NoSqliteDirectory(PathBuf),
    /// A store URL of a scheme no store reads.
    #[error(
        "store unavailable: unsupported store URL {scheme:?}: use sqlite:///path/to/gateway.db \
         or postgres://user@host:port/database[?schema=name]"
    )]
    UnsupportedUrl {
        /// The URL's scheme (the whole URL when it has none).
        scheme: String,
    },
    /// A `postgres://` URL the driver does not accept.
    #[error(
        "store unavailable: invalid PostgreSQL URL: {0}; use \
         postgres://user@host:port/database[?schema=name]"
    )]
    PostgresUrl(#[source] tokio_postgres::Error),
    /// The `schema=` parameter is not a plain identifier.
    #[error(
        "store unavailable: schema name {0:?} is not a plain identifier; use lowercase \
         letters, digits and _ (at most 63, not starting with a digit)"
    )]
    BadSchemaName(String),
    /// The PostgreSQL connection pool could not be built.
    #[error("store unavailable: connection pool: {0}")]
    PoolBuild(#[source] deadpool_postgres::BuildError),
    /// No PostgreSQL connection could be had (the server is down or unreachable, the pool
    /// timed out or is closed).
    #[error("store unavailable: cannot get a PostgreSQL connection: {0}; check the server is up")]
    Pool(#[source] deadpool_postgres::PoolError),
    /// PostgreSQL failed or refused the operation: the server's SQLSTATE and message when
    /// it answered, the driver's error otherwise (a lost connection).
    #[error("store unavailable: {}", postgres::describe(.0))]
    Postgres(#[source] tokio_postgres::Error),
    /// A ticket insert lost its connection before its answer, and reading the ticket back
    /// failed too: whether it was recorded is unknown.
    #[error(
        "store unavailable: a ticket insert was interrupted and could not be read back \
         ({0}); whether it was recorded is unknown: retry with the same credential (a \
         recorded ticket answers as a replay)"
    )]
    InsertInterrupted(#[source] Box<StoreError>),
    /// A receipt update matched no ticket, yet the ticket then showed no receipt: it raced
    /// with another writer (the ticket's admission committed in between).
    #[error("store unavailable: the receipt update raced with another writer; retry")]
    ReceiptRaced,
    /// A value does not fit the store's integer columns (a signed 64-bit integer).
    #[error("store unavailable: {what} {value} does not fit the store")]
    TooLarge {
        /// What the value is.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// The stored data is not what this version of the gateway wrote.
    #[error("store corrupt: {0}")]
    Corrupt(#[from] Corruption),
    /// A receipt was offered for a nullifier the store never admitted, or a second,
    /// different receipt for one that already has one.
    #[error("receipt conflict: {0}")]
    ReceiptConflict(&'static str),
}

impl StoreError {
    /// Whether the same call may succeed if tried again, with nothing changed by an
    /// operator:
    ///
    /// - transient: SQLite busy or locked (`ErrorCode::DatabaseBusy`/`DatabaseLocked`,
    ///   also as a batch's commit error), the SQLite writer stopped or skipping a write, a
    ///   blocking task cancelled (the runtime shutting down), no PostgreSQL connection
    ///   from the pool, a PostgreSQL transport failure (a closed connection or an I/O
    ///   error: no answer from the server) or a refusal whose SQLSTATE says the server is
    ///   overloaded, shutting down or starting, or that the transaction lost a race
    ///   (classes 08, 40, 53, `55P03`, `57P01`–`57P03`), an interrupted ticket insert, a
    ///   raced receipt update;
    /// - permanent: every other SQLite or PostgreSQL error (a constraint, a full disk, a
    ///   refused login), a bad URL, schema name or path, a file that cannot be opened, a
    ///   panicked task, a poisoned read connection, a value too large, corruption and
    ///   receipt conflicts.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Sqlite(e) => sqlite::is_busy(e),
            Self::BatchCommit(e) => sqlite::is_busy(e),
            Self::Postgres(e) => postgres::is_transient(e),
            Self::Pool(e) => !matches!(e, deadpool_postgres::PoolError::NoRuntimeSpecified),
            Self::Task { source, .. } => source.is_cancelled(),
            Self::WriterStopped
            | Self::WriterStoppedMidBatch
            | Self::WriteSkipped
            | Self::InsertInterrupted(_)
            | Self::ReceiptRaced => true,
            Self::WriterSpawn(_)
            | Self::ReaderPoisoned
            | Self::Open { .. }
            | Self::NoWal { .. }
            | Self::NoSqlitePath
            | Self::NoSqliteDirectory(_)
            | Self::UnsupportedUrl { .. }
            | Self::PostgresUrl(_)
            | Self::BadSchemaName(_)
            | Self::PoolBuild(_)
            | Self::TooLarge { .. }
            | Self::Corrupt(_)
            | Self::ReceiptConflict(_) => false,
        }
    }
}

/// What is wrong with the stored data. Every case needs an operator: the advice says what
/// to do.
#[derive(Debug, thiserror::Error)]
pub enum Corruption {
    /// SQLite reports damage (`SQLITE_CORRUPT`, `SQLITE_NOTADB`).
    #[error("{0}; restore the store from a backup (the chain still holds every slash and close)")]
    Sqlite(#[source] rusqlite::Error),
    /// The store was written by a newer gateway.
    #[error(
        "{place} has schema version {version}, newer than version {} that this gateway \
         writes; run the gateway release that created it (or a newer one)",
        schema::VERSION
    )]
    NewerSchema {
        /// The SQLite file or PostgreSQL schema.
        place: String,
        /// The version it holds.
        version: u32,
    },
    /// The store was written by a gateway too old to be upgraded in place.
    #[error(
        "{place} has schema version {version}, which this gateway (version {}) cannot \
         read; run the gateway release that created it, or start with a fresh store once \
         every issued receipt has been fetched",
        schema::VERSION
    )]
    OlderSchema {
        /// The SQLite file or PostgreSQL schema.
        place: String,
        /// The version it holds.
        version: u32,
    },
    /// The stored schema version is not a number.
    #[error("{place} has an unreadable schema version {stored:?}; restore it from a backup")]
    UnreadableSchemaVersion {
        /// The SQLite file or PostgreSQL schema.
        place: String,
        /// What is stored instead.
        stored: String,
    },
    /// The meta table holds no schema version.
    #[error("{place} has a meta table without a schema version; restore it from a backup")]
    NoSchemaVersion {
        /// The SQLite file or PostgreSQL schema.
        place: String,
    },
    /// The SQLite file holds another program's tables.
    #[error(
        "{} holds tables but no zkcredits schema version; it is not a gateway store, point \
         the gateway at another file",
        .0.display()
    )]
    NotAGatewayStore(PathBuf),
    /// A stored field is not 32 bytes long.
    #[error("a stored {what} has {len} bytes instead of 32; restore the store from a backup")]
    WrongLength {
        /// What the field holds.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A stored count is negative.
    #[error("a stored {what} is negative ({value}); restore the store from a backup")]
    Negative {
        /// What the count is.
        what: &'static str,
        /// The value.
        value: i64,
    },
    /// A stored value is not a canonical field element.
    #[error("a stored {0} is not a field element; restore the store from a backup")]
    NotInField(&'static str),
    /// A ticket refused as a duplicate was gone a moment later.
    #[error("a ticket refused as a duplicate is gone; someone deletes tickets, stop them")]
    TicketGone,
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
        penalty: Credits,
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

use std::path::PathBuf;
use std::sync::Arc;
use zkcredits_protocol::credits::Credits;

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
            return Err(StoreError::NoSqlitePath);
        }
        let dir = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir.filter(|d| !d.is_dir()) {
            return Err(StoreError::NoSqliteDirectory(dir.to_path_buf()));
        }
        return Ok(());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (url, options) = PostgresOptions::from_url(url)?;
        <tokio_postgres::Config as std::str::FromStr>::from_str(&url)
            .map_err(StoreError::PostgresUrl)?;
        if let Some(name) = options.schema.filter(|n| !postgres::valid_identifier(n)) {
            return Err(StoreError::BadSchemaName(name));
        }
        return Ok(());
    }
    Err(unsupported(url))
}

/// The error for a URL of no supported scheme.
fn unsupported(url: &str) -> StoreError {
    StoreError::UnsupportedUrl {
        scheme: url
            .split_once("://")
            .map_or(url, |(scheme, _)| scheme)
            .to_owned(),
    }
}

/// Opens the store named by `url`:
///
/// - `sqlite:///absolute/path.db` or `sqlite://relative/path.db`: an embedded SQLite file
///   (created with mode 0600 when missing);
/// - `postgres://user@host:port/db` (or `postgresql://`): a shared PostgreSQL database;
///   an optional `schema=NAME` query parameter keeps this gateway's tables in schema
///   `NAME` (created if missing), e.g. to run several deployments in one database.
///
/// An unsupported scheme is [`StoreError::UnsupportedUrl`], whose message names the
/// accepted forms.
pub async fn open_from_url(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::NoSqlitePath);
        }
        let path = path.to_owned();
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(path))
            .await
            .map_err(|source| StoreError::Task {
                what: "opening the store",
                source,
            })??;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (url, options) = PostgresOptions::from_url(url)?;
        return Ok(Arc::new(PostgresStore::connect(&url, options).await?));
    }
    Err(unsupported(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `SQLITE_BUSY`: a second connection, with no busy timeout, wants the write
    /// lock another connection holds.
    #[test]
    fn sqlite_busy_is_transient_and_other_sqlite_errors_are_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("busy.db");
        let holder = rusqlite::Connection::open(&path).expect("open");
        holder.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let other = rusqlite::Connection::open(&path).expect("open");
        other
            .busy_timeout(std::time::Duration::ZERO)
            .expect("busy timeout");
        let busy = other
            .execute_batch("BEGIN IMMEDIATE")
            .expect_err("the write lock is held");
        assert!(sqlite::is_busy(&busy), "{busy}");
        let busy = sqlite::sql_error(busy);
        assert!(matches!(busy, StoreError::Sqlite(_)), "{busy:?}");
        assert!(busy.is_transient(), "{busy}");
        let StoreError::Sqlite(cause) = busy else {
            unreachable!()
        };
        assert!(StoreError::BatchCommit(Arc::new(cause)).is_transient());

        let missing = other
            .execute_batch("SELECT * FROM no_such_table")
            .expect_err("no such table");
        let missing = sqlite::sql_error(missing);
        assert!(matches!(missing, StoreError::Sqlite(_)), "{missing:?}");
        assert!(!missing.is_transient(), "{missing}");
    }

    #[test]
    fn bad_urls_and_corruption_are_permanent() {
        for (url, bad) in [
            ("redis://127.0.0.1/0", check_url("redis://127.0.0.1/0")),
            ("sqlite://", check_url("sqlite://")),
            (
                "schema=Bad-Name",
                check_url("postgres://gateway@127.0.0.1:5432/db?schema=Bad-Name"),
            ),
        ] {
            let e = bad.expect_err(url);
            assert!(
                matches!(
                    e,
                    StoreError::UnsupportedUrl { .. }
                        | StoreError::NoSqlitePath
                        | StoreError::BadSchemaName(_)
                ),
                "{url}: {e:?}"
            );
            assert!(!e.is_transient(), "{url}: {e}");
        }
        let newer = schema::check_version(Some("99"), "test").expect_err("newer schema");
        assert!(
            matches!(
                newer,
                StoreError::Corrupt(Corruption::NewerSchema { version: 99, .. })
            ),
            "{newer:?}"
        );
        assert!(!newer.is_transient());
    }

    /// A refused TCP connection is a transport failure: no answer from the server.
    #[tokio::test]
    async fn a_postgres_transport_failure_is_transient() {
        let refused = tokio_postgres::connect(
            "host=127.0.0.1 port=1 user=gateway dbname=test connect_timeout=5",
            tokio_postgres::NoTls,
        )
        .await
        .err()
        .expect("nothing listens on port 1");
        assert!(refused.as_db_error().is_none(), "{refused}");
        let e = StoreError::Postgres(refused);
        assert!(e.is_transient(), "{e}");
        assert!(
            e.to_string().starts_with("store unavailable: PostgreSQL: "),
            "{e}"
        );
    }
}
