//! The shared store: PostgreSQL, for gateway replicas behind one database.
//!
//! Exactly-once admission rests on the primary key of `tickets`: `INSERT ... ON CONFLICT
//! (nullifier) DO NOTHING RETURNING` inserts for exactly one caller across every
//! connection and process. A losing insert waits until the winning transaction has
//! committed, so the `SELECT` that follows it (a new snapshot under READ COMMITTED) always
//! finds the winner's row. Each statement commits on its own, with `synchronous_commit =
//! on` set for every session (whatever the server's default, a commit the gateway answers
//! after is on disk), and PostgreSQL already shares WAL flushes between concurrent
//! commits, so a pool of connections gives group commit without a writer task.
//!
//! An insert whose connection fails before its result arrives may or may not have
//! committed. Admission then reads the row back on another connection rather than report
//! "nothing was charged": the ticket is ours if the row holds our share.

use std::str::FromStr;
use zkcredits_protocol::credits::Credits;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::{
    Admission, Corruption, FieldBytes, PendingSlash, Store, StoreError, StoredShare, Unanswered,
    Violation,
};

/// How to connect, beyond the URL.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Keep the tables in this schema (created when missing) instead of the connection's
    /// default one. Letters, digits and `_`, starting with a letter or `_`, at most 63.
    pub schema: Option<String>,
    /// Most connections held open.
    pub pool_size: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: None,
            pool_size: 16,
        }
    }
}

impl PostgresOptions {
    /// Splits the gateway's own `schema=NAME` query parameter off a `postgres://` URL,
    /// returning the URL to hand to the driver and the options.
    pub fn from_url(url: &str) -> Result<(String, Self), StoreError> {
        let mut options = Self::default();
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), options));
        };
        let mut kept = Vec::new();
        for param in query.split('&').filter(|p| !p.is_empty()) {
            match param.strip_prefix("schema=") {
                Some(name) => options.schema = Some(name.to_owned()),
                None => kept.push(param),
            }
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((url, options))
    }
}

/// Every statement, with the table names qualified once at connect time.
struct Sql {
    admit: String,
    ticket: String,
    unanswered: String,
    receipt: String,
    set_receipt: String,
    enqueue_slash: String,
    pending_slashes: String,
    slash_done: String,
    slash_failed: String,
    record_violation: String,
    pending_violations: String,
    mark_violations: String,
    cursor: String,
    set_cursor: String,
}

impl Sql {
    fn new(prefix: &str) -> Self {
        Self {
            admit: format!(
                "INSERT INTO {prefix}tickets (nullifier, x, y, next_commitment, admitted_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (nullifier) DO NOTHING RETURNING true"
            ),
            ticket: format!("SELECT x, y, receipt FROM {prefix}tickets WHERE nullifier = $1"),
            unanswered: format!(
                "SELECT nullifier, next_commitment FROM {prefix}tickets
                 WHERE receipt IS NULL AND next_commitment IS NOT NULL AND admitted_at < $1
                 ORDER BY admitted_at LIMIT $2"
            ),
            receipt: format!("SELECT receipt FROM {prefix}tickets WHERE nullifier = $1"),
            set_receipt: format!(
                "UPDATE {prefix}tickets SET receipt = $2 WHERE nullifier = $1 AND receipt IS NULL"
            ),
            enqueue_slash: format!(
                "INSERT INTO {prefix}slashes (k) VALUES ($1) ON CONFLICT (k) DO NOTHING"
            ),
            pending_slashes: format!(
                "SELECT k, attempts FROM {prefix}slashes WHERE tx IS NULL ORDER BY id LIMIT $1"
            ),
            slash_done: format!("UPDATE {prefix}slashes SET tx = $2 WHERE k = $1 AND tx IS NULL"),
            slash_failed: format!(
                "UPDATE {prefix}slashes SET attempts = attempts + 1 WHERE k = $1 AND tx IS NULL"
            ),
            record_violation: format!(
                "INSERT INTO {prefix}violations (nullifier, evidence_hash, penalty)
                 VALUES ($1, $2, $3)"
            ),
            pending_violations: format!(
                "SELECT id, nullifier, evidence_hash, penalty FROM {prefix}violations
                 WHERE tx IS NULL ORDER BY id LIMIT $1"
            ),
            mark_violations: format!(
                "UPDATE {prefix}violations SET tx = $2 WHERE id = ANY($1) AND tx IS NULL"
            ),
            cursor: format!("SELECT value FROM {prefix}cursors WHERE name = $1"),
            set_cursor: format!(
                "INSERT INTO {prefix}cursors (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
            ),
        }
    }
}

fn schema_ddl(prefix: &str) -> String {
    format!(
        "CREATE TABLE {prefix}tickets (
             nullifier       BYTEA PRIMARY KEY,
             x               BYTEA NOT NULL,
             y               BYTEA NOT NULL,
             receipt         BYTEA,
             next_commitment BYTEA,
             admitted_at     BIGINT
         );
         CREATE INDEX tickets_unanswered ON {prefix}tickets (admitted_at)
             WHERE receipt IS NULL AND next_commitment IS NOT NULL;
         CREATE TABLE {prefix}slashes (
             id       BIGSERIAL PRIMARY KEY,
             k        BYTEA NOT NULL UNIQUE,
             attempts INTEGER NOT NULL DEFAULT 0,
             tx       BYTEA
         );
         CREATE TABLE {prefix}violations (
             id            BIGSERIAL PRIMARY KEY,
             nullifier     BYTEA NOT NULL,
             evidence_hash BYTEA NOT NULL,
             penalty       BIGINT NOT NULL,
             tx            BYTEA
         );
         CREATE TABLE {prefix}cursors (
             name  TEXT PRIMARY KEY,
             value BIGINT NOT NULL
         );
         CREATE TABLE {prefix}meta (
             key   TEXT PRIMARY KEY,
             value TEXT NOT NULL
         );"
    )
}

/// From schema version 1 to 2: tickets keep `T_next` and their admission time.
fn upgrade_1_to_2(prefix: &str) -> String {
    format!(
        "ALTER TABLE {prefix}tickets ADD COLUMN next_commitment BYTEA;
         ALTER TABLE {prefix}tickets ADD COLUMN admitted_at BIGINT;
         CREATE INDEX tickets_unanswered ON {prefix}tickets (admitted_at)
             WHERE receipt IS NULL AND next_commitment IS NOT NULL;
         UPDATE {prefix}meta SET value = '2' WHERE key = 'schema_version';"
    )
}

/// Serialises schema installation between processes starting at once.
const MIGRATION_LOCK: i64 = 0x7a6b_6372_6564_6974;

/// The PostgreSQL store: a pool of connections to one database.
pub struct PostgresStore {
    pool: Pool,
    sql: Sql,
    /// The name of this schema's duty lock (one leader per deployment, not per database).
    duty_lock: String,
    /// The connection holding the duty lock while this process leads.
    duty_session: tokio::sync::Mutex<Option<deadpool_postgres::Object>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (a libpq-style `postgres://` URL without the gateway's own
    /// parameters; see [`PostgresOptions::from_url`]), installs the schema if the database
    /// has none, and checks its version.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(StoreError::PostgresUrl)?;
        // Durability must not depend on the server's default: every session asks for it.
        let session_options = {
            let given = config.get_options().unwrap_or_default();
            format!("{given} -c synchronous_commit=on")
                .trim()
                .to_owned()
        };
        config.options(&session_options);
        let schema = match &options.schema {
            Some(name) if valid_identifier(name) => Some(name.as_str()),
            Some(name) => return Err(StoreError::BadSchemaName(name.clone())),
            None => None,
        };
        let prefix = schema.map_or(String::new(), |s| format!("\"{s}\"."));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .build()
            .map_err(StoreError::PoolBuild)?;
        let store = Self {
            pool,
            sql: Sql::new(&prefix),
            duty_lock: format!("zkcredits duties {}", schema.unwrap_or("(default)")),
            duty_session: tokio::sync::Mutex::new(None),
        };
        store.migrate(schema, &prefix).await?;
        tracing::info!(
            schema = schema.unwrap_or("(default)"),
            "postgres store open"
        );
        Ok(store)
    }

    /// After an insert whose outcome is unknown: reads the ticket back (on fresh
    /// connections, a few times). Our share there means our insert committed (`Fresh`);
    /// another share is what `admit` would have said; no row means nothing was charged.
    async fn resolve_ambiguous_admit(
        &self,
        nullifier: FieldBytes,
        share: StoredShare,
        cause: tokio_postgres::Error,
    ) -> Result<Admission, StoreError> {
        tracing::warn!(error = %cause, "ticket insert interrupted; reading it back");
        let mut last = pg_error(cause);
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
            }
            let read = async {
                let client = self.client().await?;
                let select = client
                    .prepare_cached(&self.sql.ticket)
                    .await
                    .map_err(pg_error)?;
                client
                    .query_opt(&select, &[&&nullifier[..]])
                    .await
                    .map_err(pg_error)
            };
            match read.await {
                Ok(None) => return Err(last),
                Ok(Some(row)) => {
                    let first = stored_share(&row)?;
                    if first == share {
                        return Ok(Admission::Fresh);
                    }
                    return Ok(super::classify(first, share, row.get(2)));
                }
                Err(e) => last = e,
            }
        }
        Err(StoreError::InsertInterrupted(Box::new(last)))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            // The server answered: its own words say what is wrong (a role, a database, a
            // password), not "check the server is up".
            deadpool_postgres::PoolError::Backend(e) if e.as_db_error().is_some() => pg_error(e),
            e => StoreError::Pool(e),
        })
    }

    async fn migrate(&self, schema: Option<&str>, prefix: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_error)?;
        if let Some(schema) = schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .await
                .map_err(pg_error)?;
        }
        let has_meta: bool = tx
            .query_one(
                "SELECT count(*) > 0 FROM information_schema.tables
                 WHERE table_schema = COALESCE($1, current_schema()) AND table_name = 'meta'",
                &[&schema],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        let place = format!("PostgreSQL schema {}", schema.unwrap_or("(default)"));
        if has_meta {
            let version: Option<String> = tx
                .query_opt(
                    &format!("SELECT value FROM {prefix}meta WHERE key = 'schema_version'"),
                    &[],
                )
                .await
                .map_err(pg_error)?
                .map(|row| row.get(0));
            if super::schema::check_version(version.as_deref(), &place)? == 1 {
                tx.batch_execute(&upgrade_1_to_2(prefix))
                    .await
                    .map_err(pg_error)?;
                tracing::info!(place = %place, "store upgraded to schema version 2");
            }
        } else {
            tx.batch_execute(&schema_ddl(prefix))
                .await
                .map_err(pg_error)?;
            tx.execute(
                &format!("INSERT INTO {prefix}meta (key, value) VALUES ('schema_version', $1)"),
                &[&super::schema::VERSION.to_string()],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)
    }
}

pub(crate) fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

fn pg_error(e: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres(e)
}

/// The message of [`StoreError::Postgres`]: the SQLSTATE code and the server's own words
/// when it answered, the driver's error otherwise.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "PostgreSQL refused ({}): {}",
            db.code().code(),
            db.message()
        ),
        None => format!("PostgreSQL: {e}"),
    }
}

/// Whether a PostgreSQL error may pass on a retry: a transport failure (the connection
/// closed, or an I/O error: the server did not answer), or a refusal whose SQLSTATE says
/// the server is overloaded, shutting down or starting, or that the transaction lost a
/// race: classes 08 (connection exception), 40 (serialization failure, deadlock) and 53
/// (insufficient resources, e.g. too many connections), `55P03` (lock not available) and
/// `57P01`–`57P03` (admin or crash shutdown, cannot connect now). Any other refusal, and
/// a driver error that is not transport (a value that does not convert), is permanent.
pub(super) fn is_transient(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return ["08", "40", "53"]
            .iter()
            .any(|class| code.starts_with(class))
            || ["55P03", "57P01", "57P02", "57P03"].contains(&code);
    }
    e.is_closed() || std::error::Error::source(e).is_some_and(|cause| cause.is::<std::io::Error>())
}

fn blob32(bytes: Vec<u8>, what: &'static str) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| Corruption::WrongLength { what, len: b.len() }.into())
}

/// The share in columns 0 and 1 of a `tickets` row.
fn stored_share(row: &tokio_postgres::Row) -> Result<StoredShare, StoreError> {
    Ok(StoredShare {
        x: blob32(row.get(0), "share x")?,
        y: blob32(row.get(1), "share y")?,
    })
}

fn to_sql_int(value: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::TooLarge { what, value })
}

fn from_sql_int(value: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| Corruption::Negative { what, value }.into())
}

#[async_trait]
impl Store for PostgresStore {
    async fn admit(
        &self,
        nullifier: FieldBytes,
        share: StoredShare,
        next_commitment: Option<FieldBytes>,
    ) -> Result<Admission, StoreError> {
        let client = self.client().await?;
        let insert = client
            .prepare_cached(&self.sql.admit)
            .await
            .map_err(pg_error)?;
        let next = next_commitment.as_ref().map(|t| &t[..]);
        let admitted_at = super::unix_millis();
        let inserted = match client
            .query_opt(
                &insert,
                &[
                    &&nullifier[..],
                    &&share.x[..],
                    &&share.y[..],
                    &next,
                    &admitted_at,
                ],
            )
            .await
        {
            Ok(row) => row,
            // No answer from the server: the insert may have committed.
            Err(e) if e.as_db_error().is_none() => {
                drop(client);
                return self.resolve_ambiguous_admit(nullifier, share, e).await;
            }
            Err(e) => return Err(pg_error(e)),
        };
        if inserted.is_some() {
            return Ok(Admission::Fresh);
        }
        let select = client
            .prepare_cached(&self.sql.ticket)
            .await
            .map_err(pg_error)?;
        let row = client
            .query_opt(&select, &[&&nullifier[..]])
            .await
            .map_err(pg_error)?
            .ok_or(Corruption::TicketGone)?;
        Ok(super::classify(stored_share(&row)?, share, row.get(2)))
    }

    async fn put_receipt(&self, nullifier: FieldBytes, receipt: &[u8]) -> Result<(), StoreError> {
        let client = self.client().await?;
        let update = client
            .prepare_cached(&self.sql.set_receipt)
            .await
            .map_err(pg_error)?;
        if client
            .execute(&update, &[&&nullifier[..], &receipt])
            .await
            .map_err(pg_error)?
            == 1
        {
            return Ok(());
        }
        let select = client
            .prepare_cached(&self.sql.receipt)
            .await
            .map_err(pg_error)?;
        let stored: Option<Option<Vec<u8>>> = client
            .query_opt(&select, &[&&nullifier[..]])
            .await
            .map_err(pg_error)?
            .map(|row| row.get(0));
        match stored {
            None => Err(StoreError::ReceiptConflict(super::NOT_ADMITTED)),
            Some(Some(existing)) if existing == receipt => Ok(()),
            Some(Some(_)) => Err(StoreError::ReceiptConflict(super::OTHER_RECEIPT)),
            Some(None) => Err(StoreError::ReceiptRaced),
        }
    }

    async fn receipt(&self, nullifier: FieldBytes) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        let select = client
            .prepare_cached(&self.sql.receipt)
            .await
            .map_err(pg_error)?;
        Ok(client
            .query_opt(&select, &[&&nullifier[..]])
            .await
            .map_err(pg_error)?
            .and_then(|row| row.get::<_, Option<Vec<u8>>>(0)))
    }

    async fn lead_duties(&self) -> Result<bool, StoreError> {
        let mut session = self.duty_session.lock().await;
        if let Some(held) = session.as_ref() {
            if !held.is_closed() {
                return Ok(true);
            }
            tracing::warn!("the connection holding the duty lock closed: leadership lost");
            *session = None;
        }
        let client = self.client().await?;
        let got: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext($1))",
                &[&self.duty_lock],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        if got {
            *session = Some(client);
        }
        Ok(got)
    }

    async fn unanswered(
        &self,
        admitted_before: i64,
        limit: usize,
    ) -> Result<Vec<Unanswered>, StoreError> {
        let client = self.client().await?;
        let select = client
            .prepare_cached(&self.sql.unanswered)
            .await
            .map_err(pg_error)?;
        let limit = to_sql_int(limit as u64, "limit")?;
        client
            .query(&select, &[&admitted_before, &limit])
            .await
            .map_err(pg_error)?
            .into_iter()
            .map(|row| {
                Ok(Unanswered {
                    nullifier: blob32(row.get(0), "nullifier")?,
                    next_commitment: blob32(row.get(1), "next commitment")?,
                })
            })
            .collect()
    }

    async fn enqueue_slash(&self, k: FieldBytes) -> Result<(), StoreError> {
        let client = self.client().await?;
        let insert = client
            .prepare_cached(&self.sql.enqueue_slash)
            .await
            .map_err(pg_error)?;
        client
            .execute(&insert, &[&&k[..]])
            .await
            .map(drop)
            .map_err(pg_error)
    }

    async fn pending_slashes(&self, limit: usize) -> Result<Vec<PendingSlash>, StoreError> {
        let limit = to_sql_int(limit as u64, "limit")?;
        let client = self.client().await?;
        let select = client
            .prepare_cached(&self.sql.pending_slashes)
            .await
            .map_err(pg_error)?;
        client
            .query(&select, &[&limit])
            .await
            .map_err(pg_error)?
            .into_iter()
            .map(|row| {
                Ok(PendingSlash {
                    k: blob32(row.get(0), "slash key")?,
                    attempts: u32::try_from(row.get::<_, i32>(1)).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn finish_slash(&self, k: FieldBytes, tx: Option<[u8; 32]>) -> Result<(), StoreError> {
        let client = self.client().await?;
        let result = match tx {
            Some(tx) => {
                let update = client
                    .prepare_cached(&self.sql.slash_done)
                    .await
                    .map_err(pg_error)?;
                client.execute(&update, &[&&k[..], &&tx[..]]).await
            }
            None => {
                let update = client
                    .prepare_cached(&self.sql.slash_failed)
                    .await
                    .map_err(pg_error)?;
                client.execute(&update, &[&&k[..]]).await
            }
        };
        result.map(drop).map_err(pg_error)
    }

    async fn record_violation(
        &self,
        nullifier: FieldBytes,
        evidence_hash: FieldBytes,
        penalty: Credits,
    ) -> Result<(), StoreError> {
        let penalty = to_sql_int(penalty.get(), "penalty")?;
        let client = self.client().await?;
        let insert = client
            .prepare_cached(&self.sql.record_violation)
            .await
            .map_err(pg_error)?;
        client
            .execute(&insert, &[&&nullifier[..], &&evidence_hash[..], &penalty])
            .await
            .map(drop)
            .map_err(pg_error)
    }

    async fn pending_violations(&self, limit: usize) -> Result<Vec<Violation>, StoreError> {
        let limit = to_sql_int(limit as u64, "limit")?;
        let client = self.client().await?;
        let select = client
            .prepare_cached(&self.sql.pending_violations)
            .await
            .map_err(pg_error)?;
        client
            .query(&select, &[&limit])
            .await
            .map_err(pg_error)?
            .into_iter()
            .map(|row| {
                Ok(Violation {
                    id: row.get(0),
                    nullifier: blob32(row.get(1), "violation nullifier")?,
                    evidence_hash: blob32(row.get(2), "evidence hash")?,
                    penalty: Credits::new(from_sql_int(row.get(3), "penalty")?),
                })
            })
            .collect()
    }

    async fn mark_violations_submitted(&self, ids: &[i64], tx: [u8; 32]) -> Result<(), StoreError> {
        let client = self.client().await?;
        let update = client
            .prepare_cached(&self.sql.mark_violations)
            .await
            .map_err(pg_error)?;
        client
            .execute(&update, &[&ids, &&tx[..]])
            .await
            .map(drop)
            .map_err(pg_error)
    }

    async fn cursor(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let select = client
            .prepare_cached(&self.sql.cursor)
            .await
            .map_err(pg_error)?;
        client
            .query_opt(&select, &[&name])
            .await
            .map_err(pg_error)?
            .map(|row| from_sql_int(row.get(0), "cursor"))
            .transpose()
    }

    async fn set_cursor(&self, name: &str, value: u64) -> Result<(), StoreError> {
        let value = to_sql_int(value, "cursor")?;
        let client = self.client().await?;
        let upsert = client
            .prepare_cached(&self.sql.set_cursor)
            .await
            .map_err(pg_error)?;
        client
            .execute(&upsert, &[&name, &value])
            .await
            .map(drop)
            .map_err(pg_error)
    }
}
