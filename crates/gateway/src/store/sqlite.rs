//! The embedded store: one SQLite file in WAL mode with `synchronous = FULL`.
//!
//! **Group commit.** One writer thread owns the write connection. Every write is a job
//! sent to it over a channel; the thread takes everything queued, runs each job inside
//! its own savepoint of one transaction, commits (one fsync for the whole batch), and
//! only then answers every caller. Under load a batch holds hundreds of admissions, so
//! the fsync cost is shared instead of paid per request, while each `Ok` still means
//! "on disk". Reads go through a second connection and never wait for the writer.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use zkcredits_protocol::credits::Credits;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{
    Admission, Corruption, FieldBytes, PendingSlash, Store, StoreError, StoredShare, Unanswered,
    Violation, schema,
};

/// Most jobs committed in one transaction; a bound on how long one caller waits behind
/// others in its own batch.
const MAX_BATCH: usize = 2048;

/// From schema version 1 to 2: tickets keep `T_next` and their admission time.
const UPGRADE_1_TO_2: &str = "
ALTER TABLE tickets ADD COLUMN next_commitment BLOB;
ALTER TABLE tickets ADD COLUMN admitted_at INTEGER;
CREATE INDEX tickets_unanswered ON tickets (admitted_at)
    WHERE receipt IS NULL AND next_commitment IS NOT NULL;
UPDATE meta SET value = '2' WHERE key = 'schema_version';
";

/// The schema this version of the gateway writes.
const SCHEMA: &str = "
CREATE TABLE tickets (
    nullifier       BLOB PRIMARY KEY,
    x               BLOB NOT NULL,
    y               BLOB NOT NULL,
    receipt         BLOB,
    next_commitment BLOB,
    admitted_at     INTEGER
) WITHOUT ROWID;
CREATE INDEX tickets_unanswered ON tickets (admitted_at)
    WHERE receipt IS NULL AND next_commitment IS NOT NULL;
CREATE TABLE slashes (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    k        BLOB NOT NULL UNIQUE,
    attempts INTEGER NOT NULL DEFAULT 0,
    tx       BLOB
);
CREATE INDEX slashes_pending ON slashes (id) WHERE tx IS NULL;
CREATE TABLE violations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    nullifier     BLOB NOT NULL,
    evidence_hash BLOB NOT NULL,
    penalty       INTEGER NOT NULL,
    tx            BLOB
);
CREATE INDEX violations_pending ON violations (id) WHERE tx IS NULL;
CREATE TABLE cursors (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// A write waiting for the writer thread, with its result type erased.
trait Job: Send {
    /// Runs the write against the open transaction; `Err` rolls back this job only.
    fn run(&mut self, db: &Connection) -> bool;
    /// Answers the caller once the batch's fate is known.
    fn answer(self: Box<Self>, commit: Result<(), Arc<rusqlite::Error>>);
}

struct TypedJob<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, db: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(db);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, commit: Result<(), Arc<rusqlite::Error>>) {
        let result = match (self.result, commit) {
            // A job that failed was rolled back on its own: its error stands.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(e)) => Err(StoreError::BatchCommit(e)),
            (None, Ok(())) => Err(StoreError::WriteSkipped),
        };
        // The caller may have gone away (request cancelled); nothing to do then.
        let _ = self.reply.send(result);
    }
}

/// The SQLite store. Cheap to share behind an `Arc`; dropping it finishes the queued
/// writes and closes the file.
pub struct SqliteStore {
    path: PathBuf,
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    writer: Option<JoinHandle<()>>,
    reader: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates, with permissions 0600) the store at `path`, checks or installs
    /// the schema, and starts the writer thread. Blocking: call it before serving or
    /// from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        // Create the file ourselves so that it is never world-readable, not even for the
        // instant before a chmod; SQLite gives its -wal and -shm files the same mode.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;

        let mut writer = connect(&path)?;
        migrate(&mut writer, &path)?;
        let reader = connect(&path)?;

        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(writer, queue))
            .map_err(StoreError::WriterSpawn)?;
        tracing::info!(path = %path.display(), "sqlite store open");
        Ok(Self {
            path,
            jobs: Some(jobs),
            writer: Some(thread),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the writer thread inside the next batch; returns once that batch
    /// is committed (or failed).
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            work: Some(work),
            result: None,
            reply,
        });
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or(StoreError::WriterStopped)?;
        answer
            .await
            .map_err(|_| StoreError::WriterStoppedMidBatch)?
    }

    /// Runs `work` on the read connection in the blocking pool.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let db = reader.lock().map_err(|_| StoreError::ReaderPoisoned)?;
            work(&db)
        })
        .await
        .map_err(|source| StoreError::Task {
            what: "a read task",
            source,
        })?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and exit.
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let db = Connection::open(path).map_err(sql_error)?;
    db.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql_error)?;
    // WAL lets the reader work beside the writer; FULL syncs the WAL at every commit,
    // which is what makes an answered request survive a power cut.
    let mode: String = db
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sql_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    db.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(sql_error)?;
    Ok(db)
}

/// Installs the schema in a new file, or checks the version of an existing one.
fn migrate(db: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = db
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    let has_meta: bool = tx
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql_error)?
        > 0;
    if has_meta {
        let version: Option<String> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_error)?;
        if schema::check_version(version.as_deref(), &path.display().to_string())? == 1 {
            tx.execute_batch(UPGRADE_1_TO_2).map_err(sql_error)?;
            tracing::info!(path = %path.display(), "store upgraded to schema version 2");
        }
    } else {
        let tables: i64 = tx
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(sql_error)?;
        if tables > 0 {
            return Err(Corruption::NotAGatewayStore(path.to_path_buf()).into());
        }
        tx.execute_batch(SCHEMA).map_err(sql_error)?;
        tx.execute_batch("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);")
            .map_err(sql_error)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
            params![schema::VERSION.to_string()],
        )
        .map_err(sql_error)?;
    }
    tx.commit().map_err(sql_error)
}

fn write_loop(mut db: Connection, queue: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    // Blocks for the first job of a batch, then takes whatever else is already waiting.
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = run_batch(&mut db, &mut batch).map_err(Arc::new);
        if let Err(e) = &commit {
            tracing::error!(error = %e, jobs = batch.len(), "store batch failed");
        }
        for job in batch.drain(..) {
            job.answer(commit.clone());
        }
    }
    tracing::debug!("store writer stopped");
}

fn run_batch(db: &mut Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        // A savepoint per job: one failing write leaves the others of the batch intact.
        tx.execute_batch("SAVEPOINT job")?;
        let ok = job.run(&tx);
        let end = if ok {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        tx.execute_batch(end)?;
    }
    tx.commit()
}

/// Maps a SQLite error to the store's: damage is [`Corruption::Sqlite`], anything else
/// [`StoreError::Sqlite`].
pub(super) fn sql_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Corruption::Sqlite(e).into(),
        _ => StoreError::Sqlite(e),
    }
}

/// Whether SQLite refused for a lock another connection holds (busy or locked): the
/// same statement may pass once that connection is done.
pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn blob32(bytes: Vec<u8>, what: &'static str) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| Corruption::WrongLength { what, len: b.len() }.into())
}

fn to_sql_int(value: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::TooLarge { what, value })
}

fn from_sql_int(value: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| Corruption::Negative { what, value }.into())
}

#[async_trait]
impl Store for SqliteStore {
    async fn admit(
        &self,
        nullifier: FieldBytes,
        share: StoredShare,
        next_commitment: Option<FieldBytes>,
    ) -> Result<Admission, StoreError> {
        let admitted_at = super::unix_millis();
        self.write(move |db| {
            let inserted = db
                .prepare_cached(
                    "INSERT INTO tickets (nullifier, x, y, next_commitment, admitted_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (nullifier) DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        &nullifier[..],
                        &share.x[..],
                        &share.y[..],
                        next_commitment.as_ref().map(|t| &t[..]),
                        admitted_at,
                    ])
                })
                .map_err(sql_error)?;
            if inserted == 1 {
                return Ok(Admission::Fresh);
            }
            let (x, y, receipt): (Vec<u8>, Vec<u8>, Option<Vec<u8>>) = db
                .prepare_cached("SELECT x, y, receipt FROM tickets WHERE nullifier = ?1")
                .and_then(|mut s| {
                    s.query_row(params![&nullifier[..]], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                })
                .map_err(sql_error)?;
            let first = StoredShare {
                x: blob32(x, "share x")?,
                y: blob32(y, "share y")?,
            };
            Ok(super::classify(first, share, receipt))
        })
        .await
    }

    async fn put_receipt(&self, nullifier: FieldBytes, receipt: &[u8]) -> Result<(), StoreError> {
        let receipt = receipt.to_vec();
        self.write(move |db| {
            let stored: Option<Option<Vec<u8>>> = db
                .prepare_cached("SELECT receipt FROM tickets WHERE nullifier = ?1")
                .and_then(|mut s| {
                    s.query_row(params![&nullifier[..]], |r| r.get(0))
                        .optional()
                })
                .map_err(sql_error)?;
            match stored {
                None => Err(StoreError::ReceiptConflict(super::NOT_ADMITTED)),
                Some(Some(existing)) if existing == receipt => Ok(()),
                Some(Some(_)) => Err(StoreError::ReceiptConflict(super::OTHER_RECEIPT)),
                Some(None) => db
                    .prepare_cached("UPDATE tickets SET receipt = ?2 WHERE nullifier = ?1")
                    .and_then(|mut s| s.execute(params![&nullifier[..], &receipt]))
                    .map(drop)
                    .map_err(sql_error),
            }
        })
        .await
    }

    async fn receipt(&self, nullifier: FieldBytes) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |db| {
            db.prepare_cached("SELECT receipt FROM tickets WHERE nullifier = ?1")
                .and_then(|mut s| {
                    s.query_row(params![&nullifier[..]], |r| r.get::<_, Option<Vec<u8>>>(0))
                        .optional()
                })
                .map(Option::flatten)
                .map_err(sql_error)
        })
        .await
    }

    async fn unanswered(
        &self,
        admitted_before: i64,
        limit: usize,
    ) -> Result<Vec<Unanswered>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |db| {
            let mut stmt = db
                .prepare_cached(
                    "SELECT nullifier, next_commitment FROM tickets
                     WHERE receipt IS NULL AND next_commitment IS NOT NULL AND admitted_at < ?1
                     ORDER BY admitted_at LIMIT ?2",
                )
                .map_err(sql_error)?;
            let rows = stmt
                .query_map(params![admitted_before, limit], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .map_err(sql_error)?;
            let mut out = Vec::new();
            for row in rows {
                let (n, t) = row.map_err(sql_error)?;
                out.push(Unanswered {
                    nullifier: blob32(n, "nullifier")?,
                    next_commitment: blob32(t, "next commitment")?,
                });
            }
            Ok(out)
        })
        .await
    }

    fn single_process(&self) -> bool {
        true
    }

    async fn enqueue_slash(&self, k: FieldBytes) -> Result<(), StoreError> {
        self.write(move |db| {
            db.prepare_cached("INSERT INTO slashes (k) VALUES (?1) ON CONFLICT (k) DO NOTHING")
                .and_then(|mut s| s.execute(params![&k[..]]))
                .map(drop)
                .map_err(sql_error)
        })
        .await
    }

    async fn pending_slashes(&self, limit: usize) -> Result<Vec<PendingSlash>, StoreError> {
        let limit = to_sql_int(limit as u64, "limit")?;
        self.read(move |db| {
            let mut s = db
                .prepare_cached(
                    "SELECT k, attempts FROM slashes WHERE tx IS NULL ORDER BY id LIMIT ?1",
                )
                .map_err(sql_error)?;
            let rows = s
                .query_map(params![limit], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(sql_error)?;
            rows.map(|row| {
                let (k, attempts) = row.map_err(sql_error)?;
                Ok(PendingSlash {
                    k: blob32(k, "slash key")?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                })
            })
            .collect()
        })
        .await
    }

    async fn finish_slash(&self, k: FieldBytes, tx: Option<[u8; 32]>) -> Result<(), StoreError> {
        self.write(move |db| {
            let result = match tx {
                Some(tx) => db
                    .prepare_cached("UPDATE slashes SET tx = ?2 WHERE k = ?1 AND tx IS NULL")
                    .and_then(|mut s| s.execute(params![&k[..], &tx[..]])),
                None => db
                    .prepare_cached(
                        "UPDATE slashes SET attempts = attempts + 1 WHERE k = ?1 AND tx IS NULL",
                    )
                    .and_then(|mut s| s.execute(params![&k[..]])),
            };
            result.map(drop).map_err(sql_error)
        })
        .await
    }

    async fn record_violation(
        &self,
        nullifier: FieldBytes,
        evidence_hash: FieldBytes,
        penalty: Credits,
    ) -> Result<(), StoreError> {
        let penalty = to_sql_int(penalty.get(), "penalty")?;
        self.write(move |db| {
            db.prepare_cached(
                "INSERT INTO violations (nullifier, evidence_hash, penalty) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![&nullifier[..], &evidence_hash[..], penalty]))
            .map(drop)
            .map_err(sql_error)
        })
        .await
    }

    async fn pending_violations(&self, limit: usize) -> Result<Vec<Violation>, StoreError> {
        let limit = to_sql_int(limit as u64, "limit")?;
        self.read(move |db| {
            let mut s = db
                .prepare_cached(
                    "SELECT id, nullifier, evidence_hash, penalty FROM violations
                     WHERE tx IS NULL ORDER BY id LIMIT ?1",
                )
                .map_err(sql_error)?;
            let rows = s
                .query_map(params![limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(sql_error)?;
            rows.map(|row| {
                let (id, nullifier, evidence, penalty) = row.map_err(sql_error)?;
                Ok(Violation {
                    id,
                    nullifier: blob32(nullifier, "violation nullifier")?,
                    evidence_hash: blob32(evidence, "evidence hash")?,
                    penalty: Credits::new(from_sql_int(penalty, "penalty")?),
                })
            })
            .collect()
        })
        .await
    }

    async fn mark_violations_submitted(&self, ids: &[i64], tx: [u8; 32]) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.write(move |db| {
            let mut s = db
                .prepare_cached("UPDATE violations SET tx = ?2 WHERE id = ?1 AND tx IS NULL")
                .map_err(sql_error)?;
            for id in ids {
                s.execute(params![id, &tx[..]]).map_err(sql_error)?;
            }
            Ok(())
        })
        .await
    }

    async fn cursor(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let name = name.to_owned();
        self.read(move |db| {
            let value: Option<i64> = db
                .prepare_cached("SELECT value FROM cursors WHERE name = ?1")
                .and_then(|mut s| s.query_row(params![name], |r| r.get(0)).optional())
                .map_err(sql_error)?;
            value.map(|v| from_sql_int(v, "cursor")).transpose()
        })
        .await
    }

    async fn set_cursor(&self, name: &str, value: u64) -> Result<(), StoreError> {
        let name = name.to_owned();
        let value = to_sql_int(value, "cursor")?;
        self.write(move |db| {
            db.prepare_cached(
                "INSERT INTO cursors (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut s| s.execute(params![name, value]))
            .map(drop)
            .map_err(sql_error)
        })
        .await
    }
}
