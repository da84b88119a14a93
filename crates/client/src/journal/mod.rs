//! The note journal: every note of the wallet, its state, and a write-ahead record of
//! every ticket, in one SQLite file (WAL, `synchronous = FULL`, mode 0600).
//!
//! **The rule it keeps: a ticket index is never used twice.** [`Journal::acquire`]
//! records the ticket `(note, i, x, rho_next, N)` durably and marks the note in flight in
//! one transaction, before any proof exists; `UNIQUE (note, ticket_index)` refuses a
//! second record for one index whatever the note's status says. The note's index only
//! moves in [`Journal::complete`], which stores the receipt and advances the state in
//! one transaction. After a crash, [`Journal::pending`] lists the tickets still in
//! flight; each ends either completed (its receipt was fetched) or lost (the note then
//! needs a close with `m = 1`). Only a ticket that provably never left the process
//! ([`Journal::release_unsent`]) is forgotten.
//!
//! **What is encrypted.** Plain columns hold bookkeeping only: the note number `j`, the
//! status, `D`, `E`, `i`, `R`, `P` and ticket indices. Everything derived from the note
//! secret or linking the journal to the chain or the gateway (the note ID, leaf index,
//! deposit transaction, the last receipt's opening `T, rho, r, p, sigma`, and per ticket
//! `x, rho_next, N` and the receipt) is sealed with XChaCha20-Poly1305 under a key
//! derived from the wallet seed ([`crate::seal`]). The plain numbers of a note are part
//! of its sealed record's associated data, so rolling a note's state back in the file
//! is detected when the note is next opened.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::note::WalletSeed;
use zkcredits_protocol::rln::{Nullifier, Ticket};
use zkcredits_protocol::state::{Limits, NoteState, Receipt};

use crate::seal::StorageKey;

mod record;
use record::{NoteRecord, TicketSecrets};

const SCHEMA_VERSION: i64 = 1;

/// One step of [`Journal::migrate`]: `MIGRATIONS[v - 1]` takes a journal from schema
/// version `v` to `v + 1` inside the transaction it is given. Version 1 is the first:
/// nothing to migrate yet.
type Migration = fn(&rusqlite::Transaction<'_>) -> Result<()>;
const MIGRATIONS: [Migration; (SCHEMA_VERSION - 1) as usize] = [];
const CHECK_AAD: &[u8] = b"zkcredits/journal/check/v1";
const CHECK_PLAINTEXT: &[u8] = b"zkcredits journal key check";

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Every solvent free note is busy.
    #[error("every solvent note has a request in flight")]
    AllNotesBusy,
    /// No note can pay.
    #[error("no note can pay for another request")]
    NoSolventNote,
    /// SQLite failed.
    #[error("journal database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The journal was written with another wallet's key.
    #[error(
        "the note journal belongs to another wallet; use that wallet or another ZKCREDITS_HOME"
    )]
    WrongWallet,
    /// A sealed record does not open or decode (tampered or damaged).
    #[error(
        "the note journal is damaged ({0}); keep the file and do not put an older copy in its place: an old journal reuses ticket indices, which gets notes slashed (docs/CLIENT.md, 'A restored journal')"
    )]
    Corrupt(String),
    /// A status column holds a value no zkcredits writes (tampered or damaged).
    #[error(
        "the note journal is damaged (unknown {what} {stored:?}); keep the file and do not put an older copy in its place: an old journal reuses ticket indices, which gets notes slashed (docs/CLIENT.md, 'A restored journal')"
    )]
    UnknownStatus {
        /// Which status (`note status`, `ticket status`).
        what: &'static str,
        /// What the column holds.
        stored: String,
    },
    /// A sealed record opens but holds a signature that does not decode.
    #[error(
        "the note journal is damaged (stored signature: {0}); keep the file and do not put an older copy in its place: an old journal reuses ticket indices, which gets notes slashed (docs/CLIENT.md, 'A restored journal')"
    )]
    CorruptSignature(#[source] zkcredits_protocol::eddsa::SignatureError),
    /// A sealed record opens but holds a receipt that does not decode.
    #[error(
        "the note journal is damaged (stored receipt: {0}); keep the file and do not put an older copy in its place: an old journal reuses ticket indices, which gets notes slashed (docs/CLIENT.md, 'A restored journal')"
    )]
    CorruptReceipt(#[source] zkcredits_protocol::wire::WireError),
    /// The journal's directory or file could not be created.
    #[error("cannot create {}: {source}; check the permissions of the client home", path.display())]
    Create {
        /// The directory or file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No such note.
    #[error("note {0} is not in the journal")]
    UnknownNote(u64),
    /// No such ticket, or it is not in flight.
    #[error("ticket {0} is not in flight in the journal")]
    TicketNotInFlight(i64),
    /// A value does not fit SQLite's signed 64-bit integers.
    #[error("{0} is too large for the journal")]
    TooLarge(&'static str),
    /// The journal was written by a newer zkcredits, whose records this one would
    /// misread.
    #[error(
        "the note journal has schema version {found}, newer than this zkcredits reads ({supported}); upgrade zkcredits (never replace the journal with an older copy)"
    )]
    NewerSchema {
        /// The journal's version.
        found: i64,
        /// The newest this build reads.
        supported: i64,
    },
}

type Result<T> = std::result::Result<T, JournalError>;

/// Where a note is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteStatus {
    /// Reserved for a deposit whose outcome is not recorded yet.
    PendingDeposit,
    /// Deposited, no request in flight.
    Free,
    /// One request in flight.
    InFlight,
    /// The receipt of ticket `i` was lost (m = 1) or the note is to be closed (m = 0).
    NeedsClose {
        /// The close circuit's flag.
        m: u8,
    },
    /// Closed on chain.
    Closed,
    /// Slashed on chain.
    Slashed,
}

impl NoteStatus {
    /// What the `status` column holds for this status (`close_m` holds `m`).
    fn stored(self) -> StoredNoteStatus {
        match self {
            Self::PendingDeposit => StoredNoteStatus::PendingDeposit,
            Self::Free => StoredNoteStatus::Free,
            Self::InFlight => StoredNoteStatus::InFlight,
            Self::NeedsClose { .. } => StoredNoteStatus::NeedsClose,
            Self::Closed => StoredNoteStatus::Closed,
            Self::Slashed => StoredNoteStatus::Slashed,
        }
    }

    /// The status of a row whose `status` column reads `stored` and `close_m` reads `m`.
    fn from_columns(stored: &str, m: i64) -> Result<Self> {
        Ok(match StoredNoteStatus::parse(stored)? {
            StoredNoteStatus::PendingDeposit => Self::PendingDeposit,
            StoredNoteStatus::Free => Self::Free,
            StoredNoteStatus::InFlight => Self::InFlight,
            StoredNoteStatus::NeedsClose => Self::NeedsClose {
                m: u8::from(m != 0),
            },
            StoredNoteStatus::Closed => Self::Closed,
            StoredNoteStatus::Slashed => Self::Slashed,
        })
    }
}

impl std::fmt::Display for NoteStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NeedsClose { m } => write!(f, "needs_close(m={m})"),
            other => f.write_str(other.stored().as_sql()),
        }
    }
}

/// Declares the type of a `status` column from its one table of variants and stored
/// texts: the enum, `as_sql` (the text bound in SQL), `parse` (a text read back; an
/// unknown one is [`JournalError::Corrupt`], never a default) and `ToSql`, so statements
/// bind statuses as parameters and a misspelt status does not compile. The texts are
/// what journals on users' disks hold: changing one is a schema migration.
macro_rules! stored_status {
    (
        $(#[$meta:meta])*
        enum $name:ident ($what:literal) {
            $($(#[$variant_meta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            #[cfg(test)]
            const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The text the column holds.
            fn as_sql(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The status whose text the column holds.
            fn parse(stored: &str) -> Result<Self> {
                match stored {
                    $($text => Ok(Self::$variant),)+
                    other => Err(JournalError::UnknownStatus {
                        what: $what,
                        stored: other.to_owned(),
                    }),
                }
            }
        }

        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_sql().into())
            }
        }
    };
}

stored_status! {
    /// The `notes.status` column: [`NoteStatus`] without `m`, which `close_m` holds.
    enum StoredNoteStatus ("note status") {
        /// Reserved for a deposit whose outcome is not recorded yet.
        PendingDeposit => "pending_deposit",
        /// Deposited, no request in flight.
        Free => "free",
        /// One request in flight.
        InFlight => "in_flight",
        /// Makes no further request; `close_m` is the close's `m`.
        NeedsClose => "needs_close",
        /// Closed on chain (or a reservation whose deposit failed).
        Closed => "closed",
        /// Slashed on chain.
        Slashed => "slashed",
    }
}

stored_status! {
    /// The `tickets.status` column.
    enum TicketStatus ("ticket status") {
        /// Journaled; its request is sent, or possibly sent, without a receipt yet.
        InFlight => "in_flight",
        /// Known not to have reached the gateway, still pending for recovery: its index
        /// is never reused.
        Abandoned => "abandoned",
        /// Its receipt is stored and its note advanced past it.
        Completed => "completed",
        /// Its receipt is lost: the note needs a close with `m = 1`.
        Lost => "lost",
    }
}

impl TicketStatus {
    /// The tickets [`Journal::pending`] lists and recovery may still complete or lose.
    const PENDING: [Self; 2] = [Self::InFlight, Self::Abandoned];

    fn is_pending(self) -> bool {
        Self::PENDING.contains(&self)
    }
}

/// What a deposit established about a note.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepositInfo {
    /// `ID = H(ID, k_j)`.
    pub id: Fr,
    /// `D`, credit units.
    pub deposit: Credits,
    /// `E`, the expiry epoch.
    pub expiry_epoch: u64,
    /// The leaf's index in the pool's tree.
    pub leaf_index: u64,
    /// The deposit transaction hash.
    pub tx_hash: [u8; 32],
}

/// A note as the journal holds it (secrets opened).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalNote {
    /// The note number `j` (`k_j = H(NOTE, seed, j)`).
    pub j: u64,
    /// The status.
    pub status: NoteStatus,
    /// The deposit, once recorded.
    pub deposit: Option<DepositInfo>,
    /// The state `(i, R, P)` with the last receipt.
    pub state: NoteState,
    /// The server key id that signed the last receipt.
    pub last_key_id: Option<u32>,
}

/// A ticket journaled before its request left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TicketRecord {
    /// The journal's row id.
    pub id: i64,
    /// The note number.
    pub j: u64,
    /// The ticket index `i`.
    pub index: u64,
    /// The request binding.
    pub x: Fr,
    /// `rho_next`, the blinding of `T_next`. Secret.
    pub rho_next: Fr,
    /// `N`.
    pub nullifier: Nullifier,
    /// The server key id named in the credential.
    pub key_id: u32,
    /// Whether the request is known not to have reached the gateway.
    pub abandoned: bool,
}

/// What [`Journal::acquire`] hands out: a note in flight and its journaled ticket.
#[derive(Clone, Debug)]
pub struct Acquired {
    /// The note, as it was when acquired.
    pub note: JournalNote,
    /// The ticket.
    pub ticket: TicketRecord,
}

/// The note journal. Not `Sync`: share it behind a mutex.
#[derive(Debug)]
pub struct Journal {
    conn: Connection,
    key: StorageKey,
}

fn to_i64(v: u64, what: &'static str) -> Result<i64> {
    i64::try_from(v).map_err(|_| JournalError::TooLarge(what))
}

fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| JournalError::Corrupt("negative number".into()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The plain numbers of a note row, bound into its sealed record.
struct Plain {
    j: u64,
    deposit: u64,
    expiry: u64,
    index: u64,
    refunds: u64,
    penalties: u64,
}

impl Plain {
    fn aad(&self) -> Vec<u8> {
        let mut a = b"zkcredits/journal/note/v1".to_vec();
        for v in [
            self.j,
            self.deposit,
            self.expiry,
            self.index,
            self.refunds,
            self.penalties,
        ] {
            a.extend_from_slice(&v.to_be_bytes());
        }
        a
    }
}

fn ticket_aad(j: u64, index: u64) -> Vec<u8> {
    let mut a = b"zkcredits/journal/ticket/v1".to_vec();
    a.extend_from_slice(&j.to_be_bytes());
    a.extend_from_slice(&index.to_be_bytes());
    a
}

/// The sealed record of a note with `info` in `state` (`key_id` signed its receipt).
fn sealed_note(info: &DepositInfo, state: &NoteState, key_id: Option<u32>) -> Vec<u8> {
    NoteRecord {
        id: info.id,
        leaf_index: info.leaf_index,
        tx_hash: info.tx_hash,
        last: state.last.map(|s| (s, key_id.unwrap_or_default())),
    }
    .encode()
}

/// The sealed record of ticket `t`, with its receipt once it came.
fn sealed_ticket(t: &TicketRecord, receipt: Option<&Receipt>) -> Vec<u8> {
    TicketSecrets {
        x: t.x,
        rho_next: t.rho_next,
        nullifier: t.nullifier,
        key_id: t.key_id,
        receipt: receipt.copied(),
    }
    .encode()
}

/// A `notes` row: `j, status, close_m, deposit, expiry, state_index, refunds, penalties,
/// sealed`.
type NoteRow = (i64, String, i64, i64, i64, i64, i64, i64, Option<Vec<u8>>);

fn note_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NoteRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

impl Journal {
    /// Opens (or creates) the journal at `path` with the wallet's journal key. Refuses a
    /// journal written under another wallet.
    pub fn open(path: &Path, key: StorageKey) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::wallet::create_private_dir(dir).map_err(|source| JournalError::Create {
                path: dir.to_owned(),
                source,
            })?;
        }
        if !path.exists() {
            // Create the file 0600 before SQLite opens it, so it is never world-readable.
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            options.open(path).map_err(|source| JournalError::Create {
                path: path.to_owned(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (
                 key TEXT PRIMARY KEY,
                 value BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS notes (
                 j INTEGER PRIMARY KEY,
                 status TEXT NOT NULL,
                 close_m INTEGER NOT NULL DEFAULT 0,
                 deposit INTEGER NOT NULL DEFAULT 0,
                 expiry INTEGER NOT NULL DEFAULT 0,
                 state_index INTEGER NOT NULL DEFAULT 0,
                 refunds INTEGER NOT NULL DEFAULT 0,
                 penalties INTEGER NOT NULL DEFAULT 0,
                 sealed BLOB,
                 created_at INTEGER NOT NULL,
                 updated_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS tickets (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 j INTEGER NOT NULL REFERENCES notes(j),
                 ticket_index INTEGER NOT NULL,
                 status TEXT NOT NULL,
                 sealed BLOB NOT NULL,
                 created_at INTEGER NOT NULL,
                 updated_at INTEGER NOT NULL,
                 UNIQUE (j, ticket_index)
             );",
        )?;
        let mut journal = Self { conn, key };
        journal.check_key()?;
        journal.migrate()?;
        Ok(journal)
    }

    /// Brings the journal's schema to [`SCHEMA_VERSION`], one step per version (each in
    /// its own transaction with the version it reaches, so a crash leaves a journal at
    /// a version it names), and refuses a journal newer than this build.
    fn migrate(&mut self) -> Result<()> {
        let found = self.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(JournalError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for from in found..SCHEMA_VERSION {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let step = MIGRATIONS
                .get(usize::try_from(from - 1).unwrap_or(usize::MAX))
                .ok_or_else(|| {
                    JournalError::Corrupt(format!("no migration from schema version {from}"))
                })?;
            step(&tx)?;
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'schema'",
                params![(from + 1).to_be_bytes().to_vec()],
            )?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The schema version the journal records (written with the key check at creation).
    fn schema_version(&self) -> Result<i64> {
        let stored: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let bytes: [u8; 8] = stored
            .ok_or_else(|| JournalError::Corrupt("no schema version".into()))?
            .try_into()
            .map_err(|_| JournalError::Corrupt("the schema version is not 8 bytes".into()))?;
        let version = i64::from_be_bytes(bytes);
        if version < 1 {
            return Err(JournalError::Corrupt(format!("schema version {version}")));
        }
        Ok(version)
    }

    fn check_key(&self) -> Result<()> {
        let stored: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match stored {
            Some(sealed) => {
                let opened = self
                    .key
                    .open(CHECK_AAD, &sealed)
                    .map_err(|_| JournalError::WrongWallet)?;
                if opened.as_slice() != CHECK_PLAINTEXT {
                    return Err(JournalError::WrongWallet);
                }
            }
            None => {
                self.conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('key_check', ?1), ('schema', ?2)",
                    params![
                        self.key.seal(CHECK_AAD, CHECK_PLAINTEXT),
                        SCHEMA_VERSION.to_be_bytes().to_vec()
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Reserves `count` new note numbers (never used before) for a deposit about to be
    /// sent: after a crash they show as `pending_deposit` and can be resolved from the
    /// chain with the secrets they name.
    pub fn reserve_notes(&mut self, count: u64) -> Result<Vec<u64>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let next: i64 = tx.query_row("SELECT COALESCE(MAX(j) + 1, 0) FROM notes", [], |r| {
            r.get(0)
        })?;
        let next = to_u64(next)?;
        let t = now();
        let mut out = Vec::new();
        for j in next..next + count {
            tx.execute(
                "INSERT INTO notes (j, status, created_at, updated_at) VALUES (?1, ?3, ?2, ?2)",
                params![
                    to_i64(j, "note number")?,
                    t,
                    StoredNoteStatus::PendingDeposit
                ],
            )?;
            out.push(j);
        }
        tx.commit()?;
        Ok(out)
    }

    /// Records a confirmed deposit for a reserved note (or a note not yet in the
    /// journal); the note becomes free.
    pub fn record_deposit(&mut self, j: u64, info: &DepositInfo) -> Result<()> {
        let state = NoteState::fresh();
        let plain = Plain {
            j,
            deposit: info.deposit.get(),
            expiry: info.expiry_epoch,
            index: 0,
            refunds: 0,
            penalties: 0,
        };
        let sealed = self
            .key
            .seal(&plain.aad(), &sealed_note(info, &state, None));
        let t = now();
        self.conn.execute(
            "INSERT INTO notes (j, status, deposit, expiry, state_index, refunds, penalties, sealed, created_at, updated_at)
             VALUES (?1, ?6, ?2, ?3, 0, 0, 0, ?4, ?5, ?5)
             ON CONFLICT (j) DO UPDATE SET status = ?6, deposit = ?2, expiry = ?3,
                 state_index = 0, refunds = 0, penalties = 0, sealed = ?4, updated_at = ?5
             WHERE notes.status = ?7",
            params![
                to_i64(j, "note number")?,
                to_i64(info.deposit.get(), "deposit")?,
                to_i64(info.expiry_epoch, "expiry")?,
                sealed,
                t,
                StoredNoteStatus::Free,
                StoredNoteStatus::PendingDeposit
            ],
        )?;
        Ok(())
    }

    /// Forgets reserved note numbers whose deposit failed (they are never reused: the
    /// next reservation starts above the highest number ever recorded only while a row
    /// exists, so the rows stay, marked closed).
    pub fn cancel_reserved(&mut self, notes: &[u64]) -> Result<()> {
        for j in notes {
            self.conn.execute(
                "UPDATE notes SET status = ?3, updated_at = ?2 WHERE j = ?1 AND status = ?4",
                params![
                    to_i64(*j, "note number")?,
                    now(),
                    StoredNoteStatus::Closed,
                    StoredNoteStatus::PendingDeposit
                ],
            )?;
        }
        Ok(())
    }

    fn read_note(key: &StorageKey, row: NoteRow) -> Result<JournalNote> {
        let (j, status, m, deposit, expiry, index, refunds, penalties, sealed) = row;
        let plain = Plain {
            j: to_u64(j)?,
            deposit: to_u64(deposit)?,
            expiry: to_u64(expiry)?,
            index: to_u64(index)?,
            refunds: to_u64(refunds)?,
            penalties: to_u64(penalties)?,
        };
        let status = NoteStatus::from_columns(&status, m)?;
        let (deposit_info, last, key_id) = match sealed {
            None => (None, None, None),
            Some(sealed) => {
                let opened = key.open(&plain.aad(), &sealed).map_err(|_| {
                    JournalError::Corrupt(format!("note {} does not open", plain.j))
                })?;
                let record = NoteRecord::decode(&opened)?;
                let info = DepositInfo {
                    id: record.id,
                    deposit: Credits::new(plain.deposit),
                    expiry_epoch: plain.expiry,
                    leaf_index: record.leaf_index,
                    tx_hash: record.tx_hash,
                };
                match record.last {
                    Some((s, k)) => (Some(info), Some(s), Some(k)),
                    None => (Some(info), None, None),
                }
            }
        };
        Ok(JournalNote {
            j: plain.j,
            status,
            deposit: deposit_info,
            state: NoteState {
                index: plain.index,
                refunds: Credits::new(plain.refunds),
                penalties: Credits::new(plain.penalties),
                last,
            },
            last_key_id: key_id,
        })
    }

    const NOTE_COLUMNS: &'static str =
        "j, status, close_m, deposit, expiry, state_index, refunds, penalties, sealed";

    fn note_in(tx: &Connection, key: &StorageKey, j: u64) -> Result<JournalNote> {
        let row = tx
            .query_row(
                &format!("SELECT {} FROM notes WHERE j = ?1", Self::NOTE_COLUMNS),
                params![to_i64(j, "note number")?],
                note_row,
            )
            .optional()?
            .ok_or(JournalError::UnknownNote(j))?;
        Self::read_note(key, row)
    }

    /// One note.
    pub fn note(&self, j: u64) -> Result<JournalNote> {
        Self::note_in(&self.conn, &self.key, j)
    }

    /// Every note, by number.
    pub fn notes(&self) -> Result<Vec<JournalNote>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {} FROM notes ORDER BY j",
            Self::NOTE_COLUMNS
        ))?;
        let rows = stmt
            .query_map([], note_row)?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|row| Self::read_note(&self.key, row))
            .collect()
    }

    /// Atomically picks a free note that can pay under `limits`, journals its ticket for
    /// the request bound to `x` (with `rho_next_for(note, index)` and the ticket's
    /// nullifier, for the receipt named by `key_id`) and marks the note in flight. The
    /// note is the one of lowest `rank(note, index)`, the lowest-numbered among equals
    /// (the spender ranks first the notes whose next ticket is precomputed, last the one
    /// whose ticket is in the making).
    ///
    /// Fails with [`JournalError::AllNotesBusy`] when no free note can pay but a note in
    /// flight might, and [`JournalError::NoSolventNote`] when no note can pay at all.
    pub fn acquire(
        &mut self,
        seed: &WalletSeed,
        limits: Limits,
        x: Fr,
        rho_next_for: impl Fn(u64, u64) -> Fr,
        key_id_for: impl Fn(&JournalNote) -> u32,
        rank: impl Fn(u64, u64) -> u8,
    ) -> Result<Acquired> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let candidates: Vec<(i64, i64, i64, i64, i64)> = {
            let mut stmt = tx.prepare(
                "SELECT j, deposit, state_index, refunds, penalties FROM notes WHERE status = ?1 ORDER BY j",
            )?;
            stmt.query_map(params![StoredNoteStatus::Free], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<std::result::Result<_, _>>()?
        };
        // The solvent note of lowest rank, the lowest number among equals.
        let mut chosen: Option<(u8, u64)> = None;
        for (j, deposit, index, refunds, penalties) in candidates {
            let state = NoteState {
                index: to_u64(index)?,
                refunds: Credits::new(to_u64(refunds)?),
                penalties: Credits::new(to_u64(penalties)?),
                last: None,
            };
            if state.can_pay(Credits::new(to_u64(deposit)?), limits) {
                let j = to_u64(j)?;
                let rank = rank(j, state.index);
                if chosen.is_none_or(|(best, _)| rank < best) {
                    chosen = Some((rank, j));
                }
                if rank == 0 {
                    break;
                }
            }
        }
        let Some((_, j)) = chosen else {
            let busy: i64 = tx.query_row(
                "SELECT COUNT(*) FROM notes WHERE status = ?1",
                params![StoredNoteStatus::InFlight],
                |r| r.get(0),
            )?;
            return Err(if busy > 0 {
                JournalError::AllNotesBusy
            } else {
                JournalError::NoSolventNote
            });
        };
        let note = Self::note_in(&tx, &self.key, j)?;
        let k = seed.note_secret(j);
        let ticket = Ticket::new(k.expose(), note.state.index);
        let mut record = TicketRecord {
            id: 0,
            j,
            index: note.state.index,
            x,
            rho_next: rho_next_for(j, note.state.index),
            nullifier: ticket.nullifier,
            key_id: key_id_for(&note),
            abandoned: false,
        };
        let sealed = self
            .key
            .seal(&ticket_aad(j, record.index), &sealed_ticket(&record, None));
        let t = now();
        tx.execute(
            "INSERT INTO tickets (j, ticket_index, status, sealed, created_at, updated_at) VALUES (?1, ?2, ?5, ?3, ?4, ?4)",
            params![
                to_i64(j, "note number")?,
                to_i64(record.index, "index")?,
                sealed,
                t,
                TicketStatus::InFlight
            ],
        )?;
        record.id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE notes SET status = ?3, updated_at = ?2 WHERE j = ?1",
            params![to_i64(j, "note number")?, t, StoredNoteStatus::InFlight],
        )?;
        tx.commit()?;
        let mut note = note;
        note.status = NoteStatus::InFlight;
        Ok(Acquired {
            note,
            ticket: record,
        })
    }

    fn ticket_in(
        tx: &Connection,
        key: &StorageKey,
        id: i64,
    ) -> Result<(TicketRecord, TicketStatus)> {
        let (j, index, status, sealed): (i64, i64, String, Vec<u8>) = tx
            .query_row(
                "SELECT j, ticket_index, status, sealed FROM tickets WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?
            .ok_or(JournalError::TicketNotInFlight(id))?;
        let status = TicketStatus::parse(&status)?;
        let record = Self::open_ticket(key, id, to_u64(j)?, to_u64(index)?, status, &sealed)?;
        Ok((record, status))
    }

    fn open_ticket(
        key: &StorageKey,
        id: i64,
        j: u64,
        index: u64,
        status: TicketStatus,
        sealed: &[u8],
    ) -> Result<TicketRecord> {
        let b = key
            .open(&ticket_aad(j, index), sealed)
            .map_err(|_| JournalError::Corrupt(format!("ticket {id} does not open")))?;
        let secrets = TicketSecrets::decode(&b)?;
        Ok(TicketRecord {
            id,
            j,
            index,
            x: secrets.x,
            rho_next: secrets.rho_next,
            nullifier: secrets.nullifier,
            key_id: secrets.key_id,
            abandoned: status == TicketStatus::Abandoned,
        })
    }

    /// The ticket with row id `id`, if it is still in flight (or abandoned).
    pub fn ticket(&mut self, id: i64) -> Result<TicketRecord> {
        let tx = self.conn.transaction()?;
        let (record, status) = Self::ticket_in(&tx, &self.key, id)?;
        if !status.is_pending() {
            return Err(JournalError::TicketNotInFlight(id));
        }
        Ok(record)
    }

    /// Whether the journal holds a ticket of note `j` at `index`, in any state (in
    /// flight, abandoned, lost or completed): such a ticket is used, and a ticket
    /// precomputation for it must never be finished.
    pub fn ticket_recorded(&self, j: u64, index: u64) -> Result<bool> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM tickets WHERE j = ?1 AND ticket_index = ?2",
            params![to_i64(j, "note number")?, to_i64(index, "index")?],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Every ticket still in flight (sent, or possibly sent, without a receipt).
    pub fn pending(&self) -> Result<Vec<TicketRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, j, ticket_index, status, sealed FROM tickets WHERE status IN (?1, ?2) ORDER BY id",
        )?;
        let rows: Vec<(i64, i64, i64, String, Vec<u8>)> = stmt
            .query_map(rusqlite::params_from_iter(TicketStatus::PENDING), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<std::result::Result<_, _>>()?;
        rows.into_iter()
            .map(|(id, j, index, status, sealed)| {
                let status = TicketStatus::parse(&status)?;
                Self::open_ticket(&self.key, id, to_u64(j)?, to_u64(index)?, status, &sealed)
            })
            .collect()
    }

    /// Stores the receipt of ticket `id` and moves its note to `next` (signed by
    /// `key_id`), freeing it: one transaction.
    pub fn complete(
        &mut self,
        id: i64,
        receipt: &Receipt,
        next: &NoteState,
        key_id: u32,
    ) -> Result<JournalNote> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (record, status) = Self::ticket_in(&tx, &self.key, id)?;
        if !status.is_pending() {
            return Err(JournalError::TicketNotInFlight(id));
        }
        let note = Self::note_in(&tx, &self.key, record.j)?;
        let info = note
            .deposit
            .ok_or_else(|| JournalError::Corrupt(format!("note {} has no deposit", note.j)))?;
        if note.state.index != record.index || next.index != record.index + 1 {
            return Err(JournalError::TicketNotInFlight(id));
        }
        let sealed_ticket = self.key.seal(
            &ticket_aad(record.j, record.index),
            &sealed_ticket(&record, Some(receipt)),
        );
        let t = now();
        Self::advance_in(&tx, &self.key, note.j, &info, next, key_id, t)?;
        tx.execute(
            "UPDATE tickets SET status = ?4, sealed = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, sealed_ticket, t, TicketStatus::Completed],
        )?;
        tx.commit()?;
        self.note(record.j)
    }

    /// Moves note `j` (deposited as `info`) to state `next`, whose last receipt `key_id`
    /// signed, and frees it: the note half of [`Journal::complete`] and
    /// [`Journal::fast_forward`], inside their transaction.
    fn advance_in(
        tx: &Connection,
        key: &StorageKey,
        j: u64,
        info: &DepositInfo,
        next: &NoteState,
        key_id: u32,
        t: i64,
    ) -> Result<()> {
        let plain = Plain {
            j,
            deposit: info.deposit.get(),
            expiry: info.expiry_epoch,
            index: next.index,
            refunds: next.refunds.get(),
            penalties: next.penalties.get(),
        };
        let sealed = key.seal(&plain.aad(), &sealed_note(info, next, Some(key_id)));
        tx.execute(
            "UPDATE notes SET status = ?7, close_m = 0, state_index = ?2, refunds = ?3, penalties = ?4, sealed = ?5, updated_at = ?6 WHERE j = ?1",
            params![
                to_i64(j, "note number")?,
                to_i64(next.index, "index")?,
                to_i64(next.refunds.get(), "refunds")?,
                to_i64(next.penalties.get(), "penalties")?,
                sealed,
                t,
                StoredNoteStatus::Free
            ],
        )?;
        Ok(())
    }

    /// Marks ticket `id` as known not to have reached the gateway. It stays pending for
    /// recovery: its index is never reused.
    pub fn abandon(&mut self, id: i64) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE tickets SET status = ?3, updated_at = ?2 WHERE id = ?1 AND status = ?4",
            params![id, now(), TicketStatus::Abandoned, TicketStatus::InFlight],
        )?;
        if n == 0 {
            return Err(JournalError::TicketNotInFlight(id));
        }
        Ok(())
    }

    /// Ticket `id`'s receipt is lost: the note can make no further request and needs a
    /// close with `m = 1`.
    pub fn mark_lost(&mut self, id: i64) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (record, status) = Self::ticket_in(&tx, &self.key, id)?;
        if !status.is_pending() {
            return Err(JournalError::TicketNotInFlight(id));
        }
        let t = now();
        tx.execute(
            "UPDATE tickets SET status = ?3, updated_at = ?2 WHERE id = ?1",
            params![id, t, TicketStatus::Lost],
        )?;
        tx.execute(
            "UPDATE notes SET status = ?3, close_m = 1, updated_at = ?2 WHERE j = ?1",
            params![
                to_i64(record.j, "note number")?,
                t,
                StoredNoteStatus::NeedsClose
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets ticket `id`, which provably never left this process (proving failed
    /// before the credential existed), and frees its note.
    pub fn release_unsent(&mut self, id: i64) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (record, status) = Self::ticket_in(&tx, &self.key, id)?;
        if status != TicketStatus::InFlight {
            return Err(JournalError::TicketNotInFlight(id));
        }
        tx.execute("DELETE FROM tickets WHERE id = ?1", params![id])?;
        tx.execute(
            "UPDATE notes SET status = ?3, updated_at = ?2 WHERE j = ?1 AND status = ?4",
            params![
                to_i64(record.j, "note number")?,
                now(),
                StoredNoteStatus::Free,
                StoredNoteStatus::InFlight
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets unsent ticket `id` and marks its note `needs_close(m = 0)`: the note can
    /// make no further request (its last receipt's key was retired) but lost nothing.
    pub fn release_to_close(&mut self, id: i64) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (record, status) = Self::ticket_in(&tx, &self.key, id)?;
        if status != TicketStatus::InFlight {
            return Err(JournalError::TicketNotInFlight(id));
        }
        tx.execute("DELETE FROM tickets WHERE id = ?1", params![id])?;
        tx.execute(
            "UPDATE notes SET status = ?3, close_m = 0, updated_at = ?2 WHERE j = ?1",
            params![
                to_i64(record.j, "note number")?,
                now(),
                StoredNoteStatus::NeedsClose
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks note `j` `needs_close(m)`: it makes no further request. `m = 1` when the
    /// share of ticket `i` has left without a receipt the note can use.
    pub fn mark_needs_close(&mut self, j: u64, m: u8) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE notes SET status = ?4, close_m = ?2, updated_at = ?3 WHERE j = ?1 AND status IN (?5, ?6, ?4)",
            params![
                to_i64(j, "note number")?,
                i64::from(m.min(1)),
                now(),
                StoredNoteStatus::NeedsClose,
                StoredNoteStatus::Free,
                StoredNoteStatus::InFlight
            ],
        )?;
        if n == 0 {
            return Err(JournalError::UnknownNote(j));
        }
        Ok(())
    }

    /// Records that ticket `index` of free note `j` was spent by a request this journal
    /// has no record of (a restored journal), with the receipt the gateway kept for it,
    /// and moves the note to `next`: one transaction. The ticket's row keeps `x = 0`
    /// (unknown) and the derived `rho_next` that opened the receipt.
    #[allow(clippy::too_many_arguments)]
    pub fn fast_forward(
        &mut self,
        j: u64,
        index: u64,
        rho_next: Fr,
        nullifier: Nullifier,
        key_id: u32,
        receipt: &Receipt,
        next: &NoteState,
    ) -> Result<JournalNote> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let note = Self::note_in(&tx, &self.key, j)?;
        let info = note
            .deposit
            .ok_or_else(|| JournalError::Corrupt(format!("note {j} has no deposit")))?;
        if note.status != NoteStatus::Free || note.state.index != index || next.index != index + 1 {
            return Err(JournalError::Corrupt(format!(
                "note {j} moved while its position was being checked"
            )));
        }
        let record = TicketRecord {
            id: 0,
            j,
            index,
            x: Fr::from(0u64),
            rho_next,
            nullifier,
            key_id,
            abandoned: false,
        };
        let sealed_ticket = self.key.seal(
            &ticket_aad(j, index),
            &sealed_ticket(&record, Some(receipt)),
        );
        let t = now();
        tx.execute(
            "INSERT INTO tickets (j, ticket_index, status, sealed, created_at, updated_at) VALUES (?1, ?2, ?5, ?3, ?4, ?4)",
            params![
                to_i64(j, "note number")?,
                to_i64(index, "index")?,
                sealed_ticket,
                t,
                TicketStatus::Completed
            ],
        )?;
        Self::advance_in(&tx, &self.key, j, &info, next, key_id, t)?;
        tx.commit()?;
        self.note(j)
    }

    /// Sets a note's status to closed or slashed (after the chain says so).
    pub fn set_final_status(&mut self, j: u64, status: NoteStatus) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE notes SET status = ?2, updated_at = ?3 WHERE j = ?1",
            params![to_i64(j, "note number")?, status.stored(), now()],
        )?;
        if n == 0 {
            return Err(JournalError::UnknownNote(j));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn fresh_journal() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(
            &dir.path().join("journal.db"),
            StorageKey::from_bytes([7; 32]),
        )
        .unwrap();
        (dir, journal)
    }

    /// Journals on users' disks hold exactly these texts: renaming a variant's text
    /// would make every existing journal unreadable.
    #[test]
    fn the_stored_status_texts_are_the_ones_existing_journals_hold() {
        let notes: Vec<_> = StoredNoteStatus::ALL.iter().map(|s| s.as_sql()).collect();
        assert_eq!(
            notes,
            [
                "pending_deposit",
                "free",
                "in_flight",
                "needs_close",
                "closed",
                "slashed"
            ]
        );
        let tickets: Vec<_> = TicketStatus::ALL.iter().map(|s| s.as_sql()).collect();
        assert_eq!(tickets, ["in_flight", "abandoned", "completed", "lost"]);
    }

    #[test]
    fn every_status_reads_back_from_its_stored_text() {
        for &s in StoredNoteStatus::ALL {
            assert_eq!(StoredNoteStatus::parse(s.as_sql()).unwrap(), s);
        }
        for &s in TicketStatus::ALL {
            assert_eq!(TicketStatus::parse(s.as_sql()).unwrap(), s);
        }
        for status in [
            NoteStatus::PendingDeposit,
            NoteStatus::Free,
            NoteStatus::InFlight,
            NoteStatus::NeedsClose { m: 0 },
            NoteStatus::NeedsClose { m: 1 },
            NoteStatus::Closed,
            NoteStatus::Slashed,
        ] {
            let close_m = match status {
                NoteStatus::NeedsClose { m } => i64::from(m),
                _ => 0,
            };
            let read = NoteStatus::from_columns(status.stored().as_sql(), close_m).unwrap();
            assert_eq!(read, status);
        }
    }

    #[test]
    fn an_unknown_stored_status_is_corrupt() {
        // A ticket's status in a note's column (and the reverse) is unknown too.
        for text in [
            "",
            "Free",
            "free ",
            "in-flight",
            "needs_close(m=1)",
            "completed",
        ] {
            assert!(
                matches!(
                    StoredNoteStatus::parse(text),
                    Err(JournalError::UnknownStatus {
                        what: "note status",
                        ..
                    })
                ),
                "{text:?}"
            );
        }
        for text in ["", "In_flight", "abandonned", "free", "closed"] {
            assert!(
                matches!(
                    TicketStatus::parse(text),
                    Err(JournalError::UnknownStatus {
                        what: "ticket status",
                        ..
                    })
                ),
                "{text:?}"
            );
        }
    }

    /// Each note status bound as a parameter is stored as the same TEXT a literal was,
    /// and the journal reads it back.
    #[test]
    fn the_journal_stores_and_reads_every_note_status() {
        let (_dir, mut journal) = fresh_journal();
        let notes = journal
            .reserve_notes(StoredNoteStatus::ALL.len() as u64)
            .unwrap();
        for (&j, &stored) in notes.iter().zip(StoredNoteStatus::ALL) {
            journal
                .conn
                .execute(
                    "UPDATE notes SET status = ?2, close_m = 1 WHERE j = ?1",
                    params![to_i64(j, "note number").unwrap(), stored],
                )
                .unwrap();
        }
        for (&j, &stored) in notes.iter().zip(StoredNoteStatus::ALL) {
            assert_eq!(journal.note(j).unwrap().status.stored(), stored);
            let (text, kind): (String, String) = journal
                .conn
                .query_row(
                    "SELECT status, typeof(status) FROM notes WHERE j = ?1",
                    params![to_i64(j, "note number").unwrap()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((text.as_str(), kind.as_str()), (stored.as_sql(), "text"));
        }
    }

    /// Each ticket status bound as a parameter is stored as TEXT, and [`Journal::pending`]
    /// lists exactly the in-flight and abandoned ones.
    #[test]
    fn the_journal_stores_every_ticket_status_and_lists_the_pending_ones() {
        let (_dir, mut journal) = fresh_journal();
        let j = journal.reserve_notes(1).unwrap()[0];
        let mut ids = Vec::new();
        for (index, &status) in (0u64..).zip(TicketStatus::ALL) {
            let record = TicketRecord {
                id: 0,
                j,
                index,
                x: Fr::from(index),
                rho_next: Fr::from(index + 100),
                nullifier: Nullifier::from_field(Fr::from(index + 200)),
                key_id: 1,
                abandoned: false,
            };
            let sealed = journal
                .key
                .seal(&ticket_aad(j, index), &sealed_ticket(&record, None));
            journal
                .conn
                .execute(
                    "INSERT INTO tickets (j, ticket_index, status, sealed, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 0, 0)",
                    params![
                        to_i64(j, "note number").unwrap(),
                        to_i64(index, "index").unwrap(),
                        status,
                        sealed
                    ],
                )
                .unwrap();
            ids.push((journal.conn.last_insert_rowid(), status));
        }
        for &(id, status) in &ids {
            let (text, kind): (String, String) = journal
                .conn
                .query_row(
                    "SELECT status, typeof(status) FROM tickets WHERE id = ?1",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((text.as_str(), kind.as_str()), (status.as_sql(), "text"));
        }
        let pending: Vec<_> = journal
            .pending()
            .unwrap()
            .iter()
            .map(|t| (t.id, t.abandoned))
            .collect();
        let expected: Vec<_> = ids
            .iter()
            .filter(|(_, status)| status.is_pending())
            .map(|&(id, status)| (id, status == TicketStatus::Abandoned))
            .collect();
        assert_eq!(pending, expected);
        assert_eq!(expected.len(), TicketStatus::PENDING.len());
    }

    /// A status no build wrote (a damaged file, or a newer build's status) is refused as
    /// corruption, never read as some default.
    #[test]
    fn the_journal_refuses_a_row_with_an_unknown_status() {
        let (_dir, mut journal) = fresh_journal();
        let j = journal.reserve_notes(1).unwrap()[0];
        journal
            .conn
            .execute(
                "UPDATE notes SET status = 'freed' WHERE j = ?1",
                params![to_i64(j, "note number").unwrap()],
            )
            .unwrap();
        let freed = |r: Result<_>| {
            matches!(
                r,
                Err(JournalError::UnknownStatus { what: "note status", stored }) if stored == "freed"
            )
        };
        assert!(freed(journal.note(j).map(drop)));
        assert!(freed(journal.notes().map(drop)));

        journal
            .conn
            .execute(
                "INSERT INTO tickets (j, ticket_index, status, sealed, created_at, updated_at) VALUES (?1, 0, 'inflight', x'00', 0, 0)",
                params![to_i64(j, "note number").unwrap()],
            )
            .unwrap();
        let id = journal.conn.last_insert_rowid();
        match journal.ticket(id) {
            Err(JournalError::UnknownStatus { what, stored }) => {
                assert_eq!((what, stored.as_str()), ("ticket status", "inflight"));
            }
            other => panic!("{other:?}"),
        }
    }
}
