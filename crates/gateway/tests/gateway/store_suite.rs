//! The store's guarantees against a real SQLite file and the real PostgreSQL server at
//! 127.0.0.1:5432 (database `test`, one fresh schema per test): one suite run against both
//! implementations, then what only one of them promises (file mode, schema versions,
//! exactly-once across pools and OS processes, no loss when the process is SIGKILLed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use zkcredits_protocol::credits::Credits;

use rand::Rng;
use tempfile::TempDir;
use zkcredits_gateway::store::{
    Admission, Corruption, FieldBytes, PostgresOptions, PostgresStore, SqliteStore, Store,
    StoreError, StoredShare, Unanswered, open_from_url,
};

// ------------------------------------------------------------------ harness

/// The test database (trust auth).
const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Selects the child-process role when the test binary runs itself.
const CHILD_ENV: &str = "ZKC_STORE_TEST_CHILD";

fn random32() -> FieldBytes {
    rand::thread_rng().r#gen()
}

fn random_share() -> StoredShare {
    StoredShare {
        x: random32(),
        y: random32(),
    }
}

fn sqlite_store() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("gateway.db")).unwrap();
    (Arc::new(store), dir)
}

/// A schema of its own in the shared `test` database.
struct PgSchema(String);

impl PgSchema {
    fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        Self(format!(
            "zkc_t_{}_{}_{:08x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            rand::thread_rng().r#gen::<u32>()
        ))
    }

    fn options(&self) -> PostgresOptions {
        PostgresOptions {
            schema: Some(self.0.clone()),
            ..PostgresOptions::default()
        }
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(PG_URL, self.options())
            .await
            .expect("PostgreSQL at 127.0.0.1:5432, database test")
    }

    async fn drop_now(self) {
        execute_pg(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0)).await;
    }
}

async fn execute_pg(sql: &str) {
    let (client, connection) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    let task = tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = task.await;
}

/// Runs each named check once against a fresh SQLite file and once against a fresh
/// PostgreSQL schema.
macro_rules! on_both_stores {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let (store, _dir) = super::sqlite_store();
                    super::$check(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let schema = super::PgSchema::new();
                    super::$check(std::sync::Arc::new(schema.store().await)).await;
                    schema.drop_now().await;
                }
            )*
        }
    };
}

on_both_stores!(
    thirty_two_concurrent_offers_of_one_ticket_admit_one_and_replay_the_rest,
    thirty_two_concurrent_offers_with_other_requests_admit_one_and_reveal_it_to_the_rest,
    distinct_tickets_offered_at_once_are_all_fresh_and_stay_apart,
    a_receipt_round_trips_and_a_replay_carries_it,
    a_different_second_receipt_or_one_for_an_unknown_ticket_is_refused,
    a_slash_is_queued_once_counts_failed_attempts_and_leaves_the_queue_when_done,
    violations_stay_pending_in_order_until_marked,
    a_cursor_starts_empty_and_keeps_the_last_value,
    only_request_tickets_left_without_a_receipt_are_unanswered,
);

// ------------------------------------------------------------------ the suite

async fn offer_concurrently(
    store: &Arc<dyn Store>,
    nullifier: FieldBytes,
    shares: Vec<StoredShare>,
) -> Vec<(StoredShare, Admission)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(shares.len()));
    let tasks: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let (store, barrier) = (Arc::clone(store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                (share, store.admit(nullifier, share, None).await.unwrap())
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn thirty_two_concurrent_offers_of_one_ticket_admit_one_and_replay_the_rest(
    store: Arc<dyn Store>,
) {
    let nullifier = random32();
    let share = random_share();
    let outcomes = offer_concurrently(&store, nullifier, vec![share; 32]).await;
    let fresh = outcomes
        .iter()
        .filter(|(_, a)| *a == Admission::Fresh)
        .count();
    let replays = outcomes
        .iter()
        .filter(|(_, a)| *a == Admission::Replay { receipt: None })
        .count();
    assert_eq!((fresh, replays), (1, 31), "{outcomes:?}");
}

async fn thirty_two_concurrent_offers_with_other_requests_admit_one_and_reveal_it_to_the_rest(
    store: Arc<dyn Store>,
) {
    let nullifier = random32();
    let shares: Vec<_> = (0..32).map(|_| random_share()).collect();
    let outcomes = offer_concurrently(&store, nullifier, shares).await;
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|(_, a)| *a == Admission::Fresh)
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for (share, outcome) in &outcomes {
        if *share != winners[0] {
            assert_eq!(*outcome, Admission::DoubleSpend { first: winners[0] });
        }
    }
    // The winner offering again is a replay, not a double spend with itself.
    assert_eq!(
        store.admit(nullifier, winners[0], None).await.unwrap(),
        Admission::Replay { receipt: None }
    );
}

async fn distinct_tickets_offered_at_once_are_all_fresh_and_stay_apart(store: Arc<dyn Store>) {
    let tickets: Vec<_> = (0..256).map(|_| (random32(), random_share())).collect();
    let tasks: Vec<_> = tickets
        .iter()
        .map(|&(n, share)| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.admit(n, share, None).await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Admission::Fresh);
    }
    // Each ticket kept its own share: another x on it reveals exactly that share.
    for (n, share) in tickets.iter().take(16) {
        assert_eq!(
            store.admit(*n, random_share(), None).await.unwrap(),
            Admission::DoubleSpend { first: *share }
        );
    }
}

async fn a_receipt_round_trips_and_a_replay_carries_it(store: Arc<dyn Store>) {
    let (n, share) = (random32(), random_share());
    assert_eq!(store.receipt(n).await.unwrap(), None);
    assert_eq!(store.admit(n, share, None).await.unwrap(), Admission::Fresh);
    assert_eq!(store.receipt(n).await.unwrap(), None);
    let receipt = b"an encoded receipt: r, p, sigma".to_vec();
    store.put_receipt(n, &receipt).await.unwrap();
    assert_eq!(store.receipt(n).await.unwrap(), Some(receipt.clone()));
    // Storing the identical receipt again is a no-op.
    store.put_receipt(n, &receipt).await.unwrap();
    assert_eq!(
        store.admit(n, share, None).await.unwrap(),
        Admission::Replay {
            receipt: Some(receipt)
        }
    );
}

async fn a_different_second_receipt_or_one_for_an_unknown_ticket_is_refused(store: Arc<dyn Store>) {
    let n = random32();
    assert!(matches!(
        store.put_receipt(n, b"receipt").await,
        Err(StoreError::ReceiptConflict(_))
    ));
    assert_eq!(store.receipt(n).await.unwrap(), None);
    store.admit(n, random_share(), None).await.unwrap();
    store.put_receipt(n, b"first receipt").await.unwrap();
    assert!(matches!(
        store.put_receipt(n, b"second receipt").await,
        Err(StoreError::ReceiptConflict(_))
    ));
    assert_eq!(
        store.receipt(n).await.unwrap(),
        Some(b"first receipt".to_vec())
    );
}

async fn a_slash_is_queued_once_counts_failed_attempts_and_leaves_the_queue_when_done(
    store: Arc<dyn Store>,
) {
    let (k1, k2) = (random32(), random32());
    assert!(store.pending_slashes(10).await.unwrap().is_empty());
    store.enqueue_slash(k1).await.unwrap();
    store.enqueue_slash(k2).await.unwrap();
    store.enqueue_slash(k1).await.unwrap();
    let pending = store.pending_slashes(10).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|p| (p.k, p.attempts))
            .collect::<Vec<_>>(),
        vec![(k1, 0), (k2, 0)],
        "oldest first, once per k"
    );
    assert_eq!(store.pending_slashes(1).await.unwrap().len(), 1);

    store.finish_slash(k1, None).await.unwrap();
    store.finish_slash(k1, None).await.unwrap();
    let pending = store.pending_slashes(10).await.unwrap();
    assert_eq!(pending[0].attempts, 2);

    store.finish_slash(k1, Some([7; 32])).await.unwrap();
    let pending = store.pending_slashes(10).await.unwrap();
    assert_eq!(pending.iter().map(|p| p.k).collect::<Vec<_>>(), vec![k2]);
    // A done slash offered again stays done.
    store.enqueue_slash(k1).await.unwrap();
    assert_eq!(store.pending_slashes(10).await.unwrap().len(), 1);
}

async fn violations_stay_pending_in_order_until_marked(store: Arc<dyn Store>) {
    let recorded: Vec<_> = (0..5u64)
        .map(|i| (random32(), random32(), Credits::new(i * 10)))
        .collect();
    for (n, e, p) in &recorded {
        store.record_violation(*n, *e, *p).await.unwrap();
    }
    let pending = store.pending_violations(10).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|v| (v.nullifier, v.evidence_hash, v.penalty))
            .collect::<Vec<_>>(),
        recorded
    );
    assert_eq!(store.pending_violations(2).await.unwrap(), pending[..2]);
    let ids: Vec<_> = pending[..3].iter().map(|v| v.id).collect();
    store
        .mark_violations_submitted(&ids, [9; 32])
        .await
        .unwrap();
    assert_eq!(store.pending_violations(10).await.unwrap(), pending[3..]);
}

async fn a_cursor_starts_empty_and_keeps_the_last_value(store: Arc<dyn Store>) {
    assert_eq!(store.cursor("closes").await.unwrap(), None);
    store.set_cursor("closes", 17).await.unwrap();
    store.set_cursor("slashes", 3).await.unwrap();
    store.set_cursor("closes", 1_000_000_007).await.unwrap();
    assert_eq!(store.cursor("closes").await.unwrap(), Some(1_000_000_007));
    assert_eq!(store.cursor("slashes").await.unwrap(), Some(3));
}

async fn only_request_tickets_left_without_a_receipt_are_unanswered(store: Arc<dyn Store>) {
    let (answered, waiting, closed) = (random32(), random32(), random32());
    let (t1, t2) = (random32(), random32());
    store
        .admit(answered, random_share(), Some(t1))
        .await
        .unwrap();
    store.put_receipt(answered, b"receipt").await.unwrap();
    store
        .admit(waiting, random_share(), Some(t2))
        .await
        .unwrap();
    // A close's or a block's ticket has no T_next: nothing to refund.
    store.admit(closed, random_share(), None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(
        store.unanswered(later, 10).await.unwrap(),
        [Unanswered {
            nullifier: waiting,
            next_commitment: t2,
        }]
    );
    // Admitted after the cut-off: not (yet) abandoned.
    assert!(
        store
            .unanswered(later - 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.put_receipt(waiting, b"refund").await.unwrap();
    assert!(store.unanswered(later, 10).await.unwrap().is_empty());
}

// ------------------------------------------------------------------ SQLite only

#[test]
fn a_sqlite_file_of_schema_version_1_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.db");
    let (n, share) = (random32(), random_share());
    // The layout the first release wrote, with one answered ticket.
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute_batch(
        "CREATE TABLE tickets (nullifier BLOB PRIMARY KEY, x BLOB NOT NULL, y BLOB NOT NULL,
             receipt BLOB) WITHOUT ROWID;
         CREATE TABLE slashes (id INTEGER PRIMARY KEY AUTOINCREMENT, k BLOB NOT NULL UNIQUE,
             attempts INTEGER NOT NULL DEFAULT 0, tx BLOB);
         CREATE TABLE violations (id INTEGER PRIMARY KEY AUTOINCREMENT, nullifier BLOB NOT NULL,
             evidence_hash BLOB NOT NULL, penalty INTEGER NOT NULL, tx BLOB);
         CREATE TABLE cursors (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
         CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO meta VALUES ('schema_version', '1');",
    )
    .unwrap();
    db.execute(
        "INSERT INTO tickets VALUES (?1, ?2, ?3, x'01')",
        rusqlite::params![&n[..], &share.x[..], &share.y[..]],
    )
    .unwrap();
    drop(db);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = SqliteStore::open(&path).unwrap();
    rt.block_on(async {
        assert_eq!(
            store.admit(n, share, None).await.unwrap(),
            Admission::Replay {
                receipt: Some(vec![1])
            }
        );
        let (m, t) = (random32(), random32());
        store.admit(m, random_share(), Some(t)).await.unwrap();
        assert_eq!(store.unanswered(i64::MAX, 10).await.unwrap().len(), 1);
    });
    drop(store);
    let db = rusqlite::Connection::open(&path).unwrap();
    let version: String = db
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "2");
}

#[tokio::test]
async fn the_sqlite_file_is_created_owner_only_and_keeps_tickets_across_reopen() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.db");
    let (n, share) = (random32(), random_share());
    {
        let store = open_from_url(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert_eq!(store.admit(n, share, None).await.unwrap(), Admission::Fresh);
        store.put_receipt(n, b"receipt").await.unwrap();
        store.set_cursor("closes", 5).await.unwrap();
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.admit(n, share, None).await.unwrap(),
        Admission::Replay {
            receipt: Some(b"receipt".to_vec())
        }
    );
    assert_eq!(store.cursor("closes").await.unwrap(), Some(5));
}

#[test]
fn a_sqlite_file_of_another_schema_version_or_another_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.db");
    drop(SqliteStore::open(&path).unwrap());
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(db);
    match SqliteStore::open(&path) {
        Err(StoreError::Corrupt(Corruption::NewerSchema { version, .. })) => {
            assert_eq!(version, 99)
        }
        other => panic!("expected a newer schema, got {other:?}"),
    }

    let other = dir.path().join("other.db");
    let db = rusqlite::Connection::open(&other).unwrap();
    db.execute_batch("CREATE TABLE notes (body TEXT)").unwrap();
    drop(db);
    match SqliteStore::open(&other) {
        Err(StoreError::Corrupt(Corruption::NotAGatewayStore(path))) => assert_eq!(path, other),
        other => panic!("expected another program's file to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_store_url_is_refused_with_the_accepted_forms() {
    match open_from_url("redis://127.0.0.1/0").await {
        Err(StoreError::UnsupportedUrl { scheme }) => assert_eq!(scheme, "redis"),
        Err(other) => panic!("expected UnsupportedUrl, got {other:?}"),
        Ok(_) => panic!("a redis URL opened a store"),
    }
}

/// Kills a child that admits under load (64 tasks) with SIGKILL, then checks that every
/// ticket the child was told was `Fresh` is in the file.
#[test]
fn every_ticket_answered_fresh_survives_a_sigkill_of_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "store_suite::child_process",
            "--nocapture",
        ])
        .env(CHILD_ENV, "sqlite-load")
        .env("ZKC_STORE_PATH", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut answered = Vec::new();
    while answered.len() < 3000 {
        let line = lines
            .next()
            .expect("the child ended early")
            .expect("child stdout");
        if let Some(fresh) = parse_fresh(&line) {
            answered.push(fresh);
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix: no destructor, no final commit.
    child.wait().unwrap();
    // Lines already in the pipe were answered Fresh too; a cut last line is skipped.
    answered.extend(lines.map_while(Result::ok).filter_map(|l| parse_fresh(&l)));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = SqliteStore::open(&path).unwrap();
    rt.block_on(async {
        for (n, share) in &answered {
            assert_eq!(
                store.admit(*n, *share, None).await.unwrap(),
                Admission::Replay { receipt: None },
                "a ticket answered Fresh was lost"
            );
        }
    });
    eprintln!("{} tickets answered Fresh all survived", answered.len());
}

fn parse_fresh(line: &str) -> Option<(FieldBytes, StoredShare)> {
    let mut words = line.strip_prefix("fresh ")?.split(' ');
    let mut next = || -> Option<FieldBytes> { hex::decode(words.next()?).ok()?.try_into().ok() };
    let n = next()?;
    let x = next()?;
    let y = next()?;
    Some((n, StoredShare { x, y }))
}

// ------------------------------------------------------------------ PostgreSQL only

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connection_pools_on_one_database_admit_each_ticket_exactly_once() {
    let schema = PgSchema::new();
    let a: Arc<dyn Store> = Arc::new(schema.store().await);
    let b: Arc<dyn Store> = Arc::new(schema.store().await);
    for _ in 0..8 {
        let nullifier = random32();
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let store = Arc::clone(if i % 2 == 0 { &a } else { &b });
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.admit(nullifier, random_share(), None).await.unwrap()
                })
            })
            .collect();
        let mut fresh = 0;
        for t in tasks {
            match t.await.unwrap() {
                Admission::Fresh => fresh += 1,
                Admission::DoubleSpend { .. } => {}
                other => panic!("random x cannot replay: {other:?}"),
            }
        }
        assert_eq!(fresh, 1);
    }
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_os_processes_on_one_database_admit_each_ticket_exactly_once() {
    let schema = PgSchema::new();
    // Install the schema first, as a deployment would; the children race on tickets only.
    drop(schema.store().await);
    let spawn = || {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "store_suite::child_process",
                "--nocapture",
            ])
            .env(CHILD_ENV, "postgres-race")
            .env("ZKC_STORE_SCHEMA", &schema.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let children = [spawn(), spawn()];
    let mut outcomes: HashMap<u32, Vec<String>> = HashMap::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed");
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            if let Some(rest) = line.strip_prefix("ticket ") {
                let (i, what) = rest.split_once(' ').unwrap();
                outcomes
                    .entry(i.parse().unwrap())
                    .or_default()
                    .push(what.to_owned());
            }
        }
    }
    assert_eq!(outcomes.len(), RACE_TICKETS as usize);
    for (i, mut seen) in outcomes {
        seen.sort();
        assert_eq!(seen, ["double_spend", "fresh"], "ticket {i}");
    }
    schema.drop_now().await;
}

#[tokio::test]
async fn a_postgres_url_with_a_schema_parameter_opens_that_schema() {
    let schema = PgSchema::new();
    let store = open_from_url(&format!("{PG_URL}?schema={}", schema.0))
        .await
        .unwrap();
    let n = random32();
    store.admit(n, random_share(), None).await.unwrap();
    // The same schema through the typed constructor sees the ticket.
    let again = schema.store().await;
    assert!(matches!(
        again.admit(n, random_share(), None).await.unwrap(),
        Admission::DoubleSpend { .. }
    ));
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_per_postgres_schema_leads_the_duties_and_another_takes_over() {
    let schema = PgSchema::new();
    let other_schema = PgSchema::new();
    let (a, b) = (schema.store().await, schema.store().await);
    let elsewhere = other_schema.store().await;
    assert!(a.lead_duties().await.unwrap(), "the first replica leads");
    assert!(a.lead_duties().await.unwrap(), "and keeps the lead");
    assert!(
        !b.lead_duties().await.unwrap(),
        "a second replica stands by"
    );
    assert!(
        elsewhere.lead_duties().await.unwrap(),
        "another deployment's schema has its own leader"
    );
    // The leader dies (its connections close): the standby takes over.
    drop(a);
    let mut took_over = false;
    for _ in 0..100 {
        if b.lead_duties().await.unwrap() {
            took_over = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(took_over, "the standby never took over");
    drop((b, elsewhere));
    schema.drop_now().await;
    other_schema.drop_now().await;
}

#[test]
fn a_sqlite_store_always_leads_the_duties() {
    let (store, _dir) = sqlite_store();
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(rt.block_on(store.lead_duties()).unwrap());
}

#[tokio::test]
async fn a_postgres_schema_of_another_version_is_refused() {
    let schema = PgSchema::new();
    drop(schema.store().await);
    execute_pg(&format!(
        "UPDATE \"{}\".meta SET value = '3' WHERE key = 'schema_version'",
        schema.0
    ))
    .await;
    match PostgresStore::connect(PG_URL, schema.options()).await {
        Err(StoreError::Corrupt(Corruption::NewerSchema { version, .. })) => {
            assert_eq!(version, 3)
        }
        other => panic!("expected a newer schema, got {other:?}"),
    }
    schema.drop_now().await;
}

// ------------------------------------------------------------------ child processes

/// Tickets each PostgreSQL child offers.
const RACE_TICKETS: u32 = 300;

/// Not a test: the body of the child processes above, selected by `CHILD_ENV`.
#[test]
#[ignore = "run by other tests as a child process"]
fn child_process() {
    let role = std::env::var(CHILD_ENV).expect("set by the parent test");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match role.as_str() {
        "sqlite-load" => rt.block_on(sqlite_load_child()),
        "postgres-race" => rt.block_on(postgres_race_child()),
        other => panic!("unknown child role {other}"),
    }
}

/// Admits random tickets from 64 tasks forever, printing each one answered Fresh.
async fn sqlite_load_child() {
    let path = std::env::var("ZKC_STORE_PATH").unwrap();
    let store = Arc::new(SqliteStore::open(path).unwrap());
    let tasks: Vec<tokio::task::JoinHandle<()>> = (0..64)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                loop {
                    let (n, share) = (random32(), random_share());
                    if store.admit(n, share, None).await.unwrap() == Admission::Fresh {
                        println!(
                            "fresh {} {} {}",
                            hex::encode(n),
                            hex::encode(share.x),
                            hex::encode(share.y)
                        );
                    }
                }
            })
        })
        .collect();
    // The tasks never end: the parent kills this process. A panicking task ends it early.
    for t in tasks {
        if let Err(e) = t.await {
            panic!("admitting task failed: {e}");
        }
    }
}

/// Offers the tickets `0..RACE_TICKETS` (same nullifiers in every child, this child's own
/// x) from 16 tasks and prints each outcome.
async fn postgres_race_child() {
    let schema = std::env::var("ZKC_STORE_SCHEMA").unwrap();
    let options = PostgresOptions {
        schema: Some(schema),
        pool_size: 8,
    };
    let store = Arc::new(PostgresStore::connect(PG_URL, options).await.unwrap());
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, next) = (Arc::clone(&store), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as u32;
                    if i >= RACE_TICKETS {
                        break;
                    }
                    let mut n = [0u8; 32];
                    n[..4].copy_from_slice(&i.to_be_bytes());
                    let what = match store.admit(n, random_share(), None).await.unwrap() {
                        Admission::Fresh => "fresh",
                        Admission::Replay { .. } => "replay",
                        Admission::DoubleSpend { .. } => "double_spend",
                    };
                    println!("ticket {i} {what}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}
