//! The note journal across crashes, on a real SQLite file, with real proofs against a
//! fixed tree: a ticket index is never used twice, a lost receipt sends the note to
//! needs_close(m = 1), a fetched receipt advances it, and a rolled-back state is refused.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use zkcredits_client::journal::{DepositInfo, Journal, JournalError, NoteStatus};
use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::{ClientError, ServerKeyCheck, Spender, SpenderConfig, TreeView};
use zkcredits_protocol::Fr;
use zkcredits_protocol::merkle::LeanImt;
use zkcredits_protocol::note;

const DEPOSIT: u64 = 20_000;
const EXPIRY: u64 = 40;
const PATH: &str = "/v1/chat/completions";

/// Records `notes` deposited notes in the journal under `dir` and returns the tree
/// holding them (after two leaves of other users).
fn deposit_offline(dir: &Path, notes: u64) -> LeanImt {
    let wallet = common::wallet();
    let seed = wallet.seed();
    let mut tree = LeanImt::new();
    tree.push(Fr::from(1111u64)).unwrap();
    tree.push(Fr::from(2222u64)).unwrap();
    let mut journal = Journal::open(
        &dir.join("notes.sqlite"),
        wallet.storage_key(StoragePurpose::Journal),
    )
    .unwrap();
    for j in journal.reserve_notes(notes).unwrap() {
        let id = seed.note_secret(j).id();
        let leaf_index = tree
            .push(note::leaf(
                id,
                zkcredits_protocol::credits::Credits::new(DEPOSIT),
                EXPIRY,
            ))
            .unwrap();
        journal
            .record_deposit(
                j,
                &DepositInfo {
                    id,
                    deposit: zkcredits_protocol::credits::Credits::new(DEPOSIT),
                    expiry_epoch: EXPIRY,
                    leaf_index,
                    tx_hash: [9; 32],
                },
            )
            .unwrap();
    }
    tree
}

async fn spender(dir: &Path, tree: &LeanImt) -> Spender {
    let deployment = common::offline_deployment();
    Spender::new(
        &common::wallet(),
        SpenderConfig {
            journal_path: dir.join("notes.sqlite"),
            precompute_dir: Some(dir.join("precompute")),
            gateway: common::gateway_constants(&deployment),
            deployment,
            prover: common::prover(),
            tree: TreeView::fixed(tree.clone()),
            server_key_check: ServerKeyCheck::UncheckedNoChain,
        },
    )
    .await
    .unwrap()
}

fn status(notes: &[zkcredits_client::NoteSummary], j: u64) -> (NoteStatus, u64) {
    let n = notes.iter().find(|n| n.note == j).unwrap();
    (n.status, n.next_index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_with_a_ticket_in_flight_never_reuses_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let tree = deposit_offline(dir.path(), 2);
    let deployment = common::offline_deployment();
    {
        let s = spender(dir.path(), &tree).await;
        let t = s.begin("POST", PATH, b"{\"n\":1}").await.unwrap();
        assert_eq!((t.note, t.index), (0, 0));
        assert!(common::gateway_accepts(
            &t.authorization,
            "POST",
            PATH,
            b"{\"n\":1}",
            &deployment
        ));
        // Crash: the spender goes away with the ticket neither finished nor abandoned.
    }
    let s = spender(dir.path(), &tree).await;
    let report = s
        .recover(|n| async move {
            assert!(n.to_string().starts_with("0x"));
            Ok(None)
        })
        .await
        .unwrap();
    assert_eq!(report.needs_close, vec![0]);
    assert!(report.completed.is_empty());
    let notes = s.notes().await.unwrap();
    assert_eq!(status(&notes, 0), (NoteStatus::NeedsClose { m: 1 }, 0));
    // Note 0 is never used again: the next request takes note 1.
    let t = s.begin("POST", PATH, b"{\"n\":2}").await.unwrap();
    assert_eq!((t.note, t.index), (1, 0));
    assert!(matches!(
        s.begin("POST", PATH, b"{\"n\":3}").await,
        Err(ClientError::AllNotesBusy)
    ));
    let c = common::credential(&t.authorization);
    let summary = s
        .finish(t, &common::receipt_for(c.next_commitment, 250, 0))
        .await
        .unwrap();
    assert_eq!(
        (summary.note, summary.next_index, summary.refunds.get()),
        (1, 1, 250)
    );
    // A second recovery finds nothing to do.
    let again = s.recover(|_| async { Ok(None) }).await.unwrap();
    assert_eq!(again, Default::default());
    // On disk: exactly one ticket was ever recorded for (note 0, index 0).
    let conn = rusqlite::Connection::open(dir.path().join("notes.sqlite")).unwrap();
    let rows: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM tickets WHERE j = 0 AND ticket_index = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 1);
    let mode = std::fs::metadata(dir.path().join("notes.sqlite"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_then_a_fetched_receipt_advances_the_note() {
    let dir = tempfile::tempdir().unwrap();
    let tree = deposit_offline(dir.path(), 1);
    let deployment = common::offline_deployment();
    let (nullifier, stored_receipt) = {
        let s = spender(dir.path(), &tree).await;
        let t = s.begin("GET", "/v1/models", b"").await.unwrap();
        let c = common::credential(&t.authorization);
        // The gateway answered and stored the receipt; the answer was lost in the crash.
        (t.nullifier, common::receipt_for(c.next_commitment, 600, 7))
    };
    let s = spender(dir.path(), &tree).await;
    assert!(matches!(
        s.begin("GET", "/v1/models", b"").await,
        Err(ClientError::AllNotesBusy)
    ));
    let report = s
        .recover(|n| {
            let found = (n == nullifier).then(|| stored_receipt.clone());
            async move { Ok(found) }
        })
        .await
        .unwrap();
    assert_eq!(report.completed.len(), 1);
    let done = &report.completed[0];
    assert_eq!(
        (
            done.note,
            done.next_index,
            done.refunds.get(),
            done.penalties.get()
        ),
        (0, 1, 600, 7)
    );
    assert_eq!(done.remaining, i128::from(DEPOSIT) + 600 - 7 - 1000);
    // The next request opens the recovered receipt (index 1, signature checked in the
    // circuit) and the gateway accepts it.
    let t = s.begin("POST", PATH, b"next").await.unwrap();
    assert_eq!((t.note, t.index), (0, 1));
    assert!(common::gateway_accepts(
        &t.authorization,
        "POST",
        PATH,
        b"next",
        &deployment
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_state_or_another_wallet_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tree = deposit_offline(dir.path(), 1);
    {
        let s = spender(dir.path(), &tree).await;
        let t = s.begin("GET", "/a", b"").await.unwrap();
        let c = common::credential(&t.authorization);
        s.finish(t, &common::receipt_for(c.next_commitment, 0, 0))
            .await
            .unwrap();
    }
    let path = dir.path().join("notes.sqlite");
    // Someone rolls the note back to index 0 to make the client reuse a ticket.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE notes SET state_index = 0 WHERE j = 0", [])
        .unwrap();
    drop(conn);
    let wallet = common::wallet();
    let journal = Journal::open(&path, wallet.storage_key(StoragePurpose::Journal)).unwrap();
    assert!(matches!(journal.note(0), Err(JournalError::Corrupt(_))));
    drop(journal);
    let s = spender(dir.path(), &tree).await;
    assert!(matches!(
        s.begin("GET", "/a", b"").await,
        Err(ClientError::Journal(JournalError::Corrupt(_)))
    ));
    let other = zkcredits_client::Wallet::generate();
    assert!(matches!(
        Journal::open(&path, other.storage_key(StoragePurpose::Journal)),
        Err(JournalError::WrongWallet)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_ticket_whose_receipt_cannot_be_opened_retires_the_note() {
    // A journal put back from an old copy, whose next ticket the gateway holds a receipt
    // for that this wallet cannot open (a ticket made before blindings were derived, so
    // its rho_next is gone): the note must never spend that index again.
    let dir = tempfile::tempdir().unwrap();
    let tree = deposit_offline(dir.path(), 2);
    let s = spender(dir.path(), &tree).await;
    let k = common::wallet().seed().note_secret(0).expose();
    let spent = zkcredits_protocol::rln::Ticket::new(k, 0).nullifier;
    let unopenable = common::receipt_for(Fr::from(12345u64), 900, 0);
    let report = s
        .locate(|n| {
            let found = (n == spent).then(|| unopenable.clone());
            async move { Ok(found) }
        })
        .await
        .unwrap();
    assert_eq!(report.needs_close.len(), 1, "{report:?}");
    assert_eq!(report.needs_close[0].0, 0);
    assert!(report.fast_forwarded.is_empty());
    assert!(s.is_located(0) && s.is_located(1));
    let notes = s.notes().await.unwrap();
    assert_eq!(status(&notes, 0), (NoteStatus::NeedsClose { m: 1 }, 0));
    assert_eq!(status(&notes, 1), (NoteStatus::Free, 0));
    // The next request takes note 1; note 0 is never spent at index 0 again.
    let t = s.begin("POST", PATH, b"{}").await.unwrap();
    assert_eq!((t.note, t.index), (1, 0));
    // A gateway that cannot be asked leaves a note unchecked.
    let dir = tempfile::tempdir().unwrap();
    let tree = deposit_offline(dir.path(), 1);
    let s = spender(dir.path(), &tree).await;
    let report = s
        .locate(|_| async {
            Err(ClientError::ReceiptFetch(
                zkcredits_client::gateway_client::GatewayError::Unexpected("down".into()),
            ))
        })
        .await
        .unwrap();
    assert_eq!(report.unreachable, 1);
    assert!(!s.is_located(0));
}

/// The journal knows its schema version: a journal written by a newer zkcredits (which
/// this build would misread, and so reuse a ticket index) is refused with what to do, a
/// damaged version is refused as damage, and the notes are untouched either way.
#[test]
fn a_journal_of_a_newer_or_unknown_schema_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    deposit_offline(dir.path(), 2);
    let path = dir.path().join("notes.sqlite");
    let set_schema = |value: Vec<u8>| {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema'",
            rusqlite::params![value],
        )
        .unwrap();
    };
    let open = || Journal::open(&path, common::wallet().storage_key(StoragePurpose::Journal));
    assert_eq!(open().unwrap().notes().unwrap().len(), 2);

    set_schema(2i64.to_be_bytes().to_vec());
    match open() {
        Err(JournalError::NewerSchema { found, supported }) => {
            assert_eq!((found, supported), (2, 1));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    for damaged in [vec![0, 1], 0i64.to_be_bytes().to_vec()] {
        set_schema(damaged);
        assert!(matches!(open(), Err(JournalError::Corrupt(_))));
    }
    // Nothing was changed by the refusals: back at version 1 the notes are all there.
    set_schema(1i64.to_be_bytes().to_vec());
    assert_eq!(open().unwrap().notes().unwrap().len(), 2);
}
