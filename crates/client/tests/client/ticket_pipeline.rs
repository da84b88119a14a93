//! The ticket pipeline (`docs/CLIENT.md`, "Ticket precomputations"): each free note's
//! next ticket is precomputed in the background, a request prefers a note whose ticket
//! is ready, and a ticket precomputation is finished at most once. The attacks first: a
//! restart after the journal recorded the ticket, a precomputation for another state or
//! root, two requests racing for one precomputation. Real proofs, a fixed tree, no
//! chain.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zkcredits_chain::Deployment;
use zkcredits_circuits::sample::SampleNote;
use zkcredits_circuits::ticket::TicketPrecomputation;
use zkcredits_client::journal::{DepositInfo, Journal};
use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::ticket_cache::{TicketCache, TicketSlot};
use zkcredits_client::{Spender, SpenderConfig, TreeView, Wallet};
use zkcredits_protocol::Fr;
use zkcredits_protocol::merkle::{LeanImt, Root};
use zkcredits_protocol::note;

const PATH: &str = "/v1/x";
const DEPOSIT: u64 = 50_000;

/// A journal with `notes` deposited notes and the tree that holds them.
fn deposit(dir: &Path, wallet: &Wallet, notes: u64) -> LeanImt {
    let seed = wallet.seed();
    let mut tree = LeanImt::new();
    tree.push(Fr::from(5u64)).unwrap();
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
                9,
            ))
            .unwrap();
        journal
            .record_deposit(
                j,
                &DepositInfo {
                    id,
                    deposit: zkcredits_protocol::credits::Credits::new(DEPOSIT),
                    expiry_epoch: 9,
                    leaf_index,
                    tx_hash: [0; 32],
                },
            )
            .unwrap();
    }
    tree
}

async fn spender(dir: &Path, wallet: &Wallet, tree: LeanImt, deployment: &Deployment) -> Spender {
    Spender::new(
        wallet,
        SpenderConfig {
            journal_path: dir.join("notes.sqlite"),
            precompute_dir: Some(dir.join("precompute")),
            gateway: common::gateway_constants(deployment),
            deployment: deployment.clone(),
            prover: common::prover(),
            tree: TreeView::fixed(tree),
            server_key_check: zkcredits_client::ServerKeyCheck::UncheckedNoChain,
        },
    )
    .await
    .unwrap()
}

/// Waits until the background maker has note `j`'s ticket `index` ready. Not a timing
/// assertion: the deadline only keeps a broken maker from hanging the suite.
async fn wait_ready(spender: &Spender, j: u64, index: u64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !spender.ticket_ready(j, index) {
        assert!(
            Instant::now() < deadline,
            "note {j}'s ticket {index} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn slot(spender: &Spender, note: u64, index: u64) -> TicketSlot {
    TicketSlot {
        note,
        index,
        root: spender.tree().root(),
    }
}

/// A ticket precomputation for the sample note's ticket: valid points, made for
/// another note, state and root than any of the wallet's.
fn foreign_precomputation() -> TicketPrecomputation {
    let prover = common::prover();
    let sample = SampleNote::new(
        5,
        zkcredits_protocol::credits::Credits::new(1_000_000),
        0,
        zkcredits_protocol::credits::Credits::ZERO,
    );
    let note_pre = prover.precompute(sample.circuit().unwrap()).unwrap();
    prover
        .precompute_ticket(&note_pre, sample.circuit().unwrap(), &mut rand::rngs::OsRng)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_ticket_is_finished_its_file_gone_before_the_request_leaves_and_the_next_follows_the_receipt()
 {
    let dir = tempfile::tempdir().unwrap();
    let wallet = common::wallet();
    let deployment = common::offline_deployment();
    let tree = deposit(dir.path(), &wallet, 2);
    let spender = spender(dir.path(), &wallet, tree, &deployment).await;
    spender.prepare_tickets().await.unwrap();
    wait_ready(&spender, 0, 0).await;
    wait_ready(&spender, 1, 0).await;
    // Note 0's ticket is dropped: the request prefers note 1, whose ticket is ready.
    spender.ticket_cache().discard(slot(&spender, 0, 0));
    assert!(!spender.ticket_ready(0, 0));
    let file = spender.ticket_cache().path(slot(&spender, 1, 0)).unwrap();
    assert!(file.exists());

    let t = spender.begin("POST", PATH, b"1").await.unwrap();
    assert_eq!((t.note, t.index), (1, 0));
    assert_eq!(spender.finished_from_tickets(), 1);
    // Taken out before the credential was handed back: no file, nothing in memory.
    assert!(!file.exists());
    assert!(!spender.ticket_ready(1, 0));
    assert!(common::gateway_accepts(
        &t.authorization,
        "POST",
        PATH,
        b"1",
        &deployment
    ));
    let c = common::credential(&t.authorization);
    spender
        .finish(t, &common::receipt_for(c.next_commitment, 10, 0))
        .await
        .unwrap();

    // The receipt started note 1's next ticket; it is finished for the next request.
    wait_ready(&spender, 1, 1).await;
    let t = spender.begin("POST", PATH, b"2").await.unwrap();
    assert_eq!((t.note, t.index), (1, 1));
    assert_eq!(spender.finished_from_tickets(), 2);
    assert!(!spender.ticket_ready(1, 1));
    assert!(common::gateway_accepts(
        &t.authorization,
        "POST",
        PATH,
        b"2",
        &deployment
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_the_journal_recorded_the_ticket_never_reuses_its_precomputation() {
    let dir = tempfile::tempdir().unwrap();
    let wallet = common::wallet();
    let deployment = common::offline_deployment();
    let tree = deposit(dir.path(), &wallet, 1);
    let first = spender(dir.path(), &wallet, tree.clone(), &deployment).await;
    first.prepare_tickets().await.unwrap();
    wait_ready(&first, 0, 0).await;
    let s0 = slot(&first, 0, 0);
    let file = first.ticket_cache().path(s0).unwrap();
    // The attacker's (or a crash's) copy of the file: as if its deletion was lost.
    let copy = std::fs::read(&file).unwrap();

    let t = first.begin("POST", PATH, b"first").await.unwrap();
    assert_eq!((t.note, t.index), (0, 0));
    assert!(!file.exists(), "deleted before the request could leave");
    let sent = common::credential(&t.authorization);
    // The process dies with the request out and its receipt unknown.
    drop(t);
    drop(first);
    std::fs::write(&file, &copy).unwrap();

    let second = spender(dir.path(), &wallet, tree, &deployment).await;
    // The note is in flight in the journal: starting the pipeline deletes the file
    // instead of loading it, and nothing can take it.
    second.prepare_tickets().await.unwrap();
    assert!(!file.exists());
    assert!(!second.ticket_ready(0, 0));
    // Even handed the file back directly, the journal refuses its ticket: the maker
    // discards it (it only loads what the journal has not recorded), and a request
    // cannot start on the note until its ticket is recovered.
    std::fs::write(&file, &copy).unwrap();
    assert!(matches!(
        second.begin("POST", PATH, b"second").await,
        Err(zkcredits_client::ClientError::AllNotesBusy)
    ));
    assert!(file.exists(), "a refused begin takes nothing");
    let report = second
        .recover(|_n| async { Ok(Some(common::receipt_for(sent.next_commitment, 10, 0))) })
        .await
        .unwrap();
    assert_eq!(report.completed.len(), 1);
    assert_eq!(second.finished_from_tickets(), 0);
    // Recovered: the note is at index 1, and the stale file for index 0 is never
    // taken; the next request spends index 1 with a proof of its own.
    second.prepare_tickets().await.unwrap();
    assert!(!file.exists());
    let t = second.begin("POST", PATH, b"second").await.unwrap();
    assert_eq!((t.note, t.index), (0, 1));
    assert!(common::gateway_accepts(
        &t.authorization,
        "POST",
        PATH,
        b"second",
        &deployment
    ));
    assert_ne!(
        common::credential(&t.authorization).nullifier,
        sent.nullifier
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_precomputation_for_another_state_or_root_is_refused_and_the_request_proves() {
    let dir = tempfile::tempdir().unwrap();
    let wallet = common::wallet();
    let deployment = common::offline_deployment();
    let tree = deposit(dir.path(), &wallet, 1);
    let spender = spender(dir.path(), &wallet, tree, &deployment).await;

    // Another ticket's precomputation planted under note 0's slot (a bug, or a file
    // swapped in): `finish_ticket` refuses it, the request proves, and the proof
    // verifies.
    let s0 = slot(&spender, 0, 0);
    spender.ticket_cache().insert(s0, foreign_precomputation());
    assert!(spender.ticket_ready(0, 0));
    let file = spender.ticket_cache().path(s0).unwrap();
    assert!(file.exists());
    let t = spender.begin("POST", PATH, b"1").await.unwrap();
    assert_eq!((t.note, t.index), (0, 0));
    assert!(!file.exists());
    assert!(common::gateway_accepts(
        &t.authorization,
        "POST",
        PATH,
        b"1",
        &deployment
    ));
    let c = common::credential(&t.authorization);
    spender
        .finish(t, &common::receipt_for(c.next_commitment, 10, 0))
        .await
        .unwrap();

    // One for another root (the tree moved on) is never ready for this root, and a
    // request drops it.
    let other_root = TicketSlot {
        root: Root::from_field(s0.root.field() + Fr::from(1u64)),
        ..slot(&spender, 0, 1)
    };
    spender
        .ticket_cache()
        .insert(other_root, foreign_precomputation());
    assert!(!spender.ticket_ready(0, 1));
    let t = spender.begin("POST", PATH, b"2").await.unwrap();
    assert_eq!((t.note, t.index), (0, 1));
    assert!(spender.ticket_cache().ready().is_empty());
    assert!(!spender.ticket_cache().path(other_root).unwrap().exists());
    // Both requests proved: neither precomputation was finished.
    assert_eq!(spender.finished_from_tickets(), 0);
    assert!(common::gateway_accepts(
        &t.authorization,
        "POST",
        PATH,
        b"2",
        &deployment
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_requests_never_take_the_same_precomputation() {
    // The cache alone: eight threads race for one slot, one gets it.
    let dir = tempfile::tempdir().unwrap();
    let wallet = common::wallet();
    let cache = Arc::new(TicketCache::new(
        Some(dir.path().to_path_buf()),
        wallet.storage_key(StoragePurpose::PrecomputeCache),
        wallet.storage_key(StoragePurpose::CacheNames),
        common::prover().verifying_key_hash(),
    ));
    let s = TicketSlot {
        note: 3,
        index: 7,
        root: Root::from_field(Fr::from(11u64)),
    };
    cache.insert(s, foreign_precomputation());
    // From memory, and from disk only (a fresh cache over the same directory).
    for from_disk in [false, true] {
        let cache = if from_disk {
            cache.insert(s, foreign_precomputation());
            Arc::new(TicketCache::new(
                Some(dir.path().to_path_buf()),
                wallet.storage_key(StoragePurpose::PrecomputeCache),
                wallet.storage_key(StoragePurpose::CacheNames),
                common::prover().verifying_key_hash(),
            ))
        } else {
            cache.clone()
        };
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let takers: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    cache.take(s).is_some()
                })
            })
            .collect();
        let taken = takers
            .into_iter()
            .map(|t| t.join().unwrap_or(false))
            .filter(|got| *got)
            .count();
        assert_eq!(taken, 1, "from disk: {from_disk}");
        assert!(!cache.path(s).unwrap().exists());
    }

    // The spender: two requests at once with both notes' tickets ready take one each,
    // and both proofs verify.
    let dir = tempfile::tempdir().unwrap();
    let deployment = common::offline_deployment();
    let tree = deposit(dir.path(), &wallet, 2);
    let spender = spender(dir.path(), &wallet, tree, &deployment).await;
    spender.prepare_tickets().await.unwrap();
    wait_ready(&spender, 0, 0).await;
    wait_ready(&spender, 1, 0).await;
    let (a, b) = tokio::join!(
        spender.begin("POST", PATH, b"a"),
        spender.begin("POST", PATH, b"b")
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.note, b.note);
    assert_eq!(spender.finished_from_tickets(), 2);
    assert!(spender.ticket_cache().ready().is_empty());
    for (t, body) in [(&a, b"a"), (&b, b"b")] {
        assert!(common::gateway_accepts(
            &t.authorization,
            "POST",
            PATH,
            body,
            &deployment
        ));
    }
    assert_ne!(
        common::credential(&a.authorization).proof,
        common::credential(&b.authorization).proof
    );
}

#[test]
fn a_ticket_file_is_encrypted_and_opens_only_for_its_note_index_root_key_and_wallet() {
    let dir = tempfile::tempdir().unwrap();
    let wallet = common::wallet();
    let vk = common::prover().verifying_key_hash();
    let cache = |wallet: &Wallet, vk: [u8; 32]| {
        TicketCache::new(
            Some(dir.path().to_path_buf()),
            wallet.storage_key(StoragePurpose::PrecomputeCache),
            wallet.storage_key(StoragePurpose::CacheNames),
            vk,
        )
    };
    let pre = foreign_precomputation();
    let plain = pre.to_bytes();
    let fingerprint = pre.fingerprint();
    let s = TicketSlot {
        note: 2,
        index: 4,
        root: Root::from_field(Fr::from(99u64)),
    };
    let c = cache(&wallet, vk);
    c.store(s, &pre).unwrap();
    let path = c.path(s).unwrap();
    let file = std::fs::read(&path).unwrap();
    assert!(
        !plain
            .chunks(16)
            .any(|chunk| file.windows(16).any(|w| w == chunk)),
        "no 16-byte window of the secret points is in the file"
    );
    assert_eq!(c.load(s).unwrap().unwrap().fingerprint(), fingerprint);

    // Copied in for another note, index, root, key or wallet: refused and deleted.
    for (other, slot_) in [
        (cache(&wallet, vk), TicketSlot { note: 3, ..s }),
        (cache(&wallet, vk), TicketSlot { index: 5, ..s }),
        (
            cache(&wallet, vk),
            TicketSlot {
                root: Root::from_field(Fr::from(98u64)),
                ..s
            },
        ),
        (cache(&wallet, [1; 32]), s),
        (cache(&Wallet::generate(), vk), s),
    ] {
        let target = other.path(slot_).unwrap();
        assert_ne!(target, path);
        std::fs::copy(&path, &target).unwrap();
        assert!(other.load(slot_).is_err());
        assert!(!target.exists());
        assert!(other.take(slot_).is_none());
    }
    // A flipped byte anywhere is refused.
    for pos in [0, 4, 10, file.len() / 2, file.len() - 1] {
        let mut bad = file.clone();
        bad[pos] ^= 0x20;
        std::fs::write(&path, &bad).unwrap();
        assert!(c.load(s).is_err(), "byte {pos}");
    }
    // `retain` keeps only the slots it is given.
    c.store(s, &pre).unwrap();
    let other = TicketSlot { note: 9, ..s };
    c.store(other, &pre).unwrap();
    c.retain(&[s]);
    assert!(path.exists());
    assert!(!c.path(other).unwrap().exists());
}

#[test]
fn the_journal_picks_a_ready_note_first_and_the_note_in_the_making_last() {
    // `Spender::begin` ranks notes 0 (ticket ready), 1 (idle), 2 (ticket in the
    // making): a request that proves must not take the note the maker is working on,
    // or the maker's ticket is wasted.
    let dir = tempfile::tempdir().unwrap();
    let wallet = common::wallet();
    deposit(dir.path(), &wallet, 3);
    let mut journal = Journal::open(
        &dir.path().join("notes.sqlite"),
        wallet.storage_key(StoragePurpose::Journal),
    )
    .unwrap();
    let limits = zkcredits_protocol::state::Limits {
        c_max: zkcredits_protocol::credits::Credits::new(1000),
        p_max: zkcredits_protocol::credits::Credits::new(5000),
    };
    let mut acquire = |rank: &dyn Fn(u64, u64) -> u8| {
        journal
            .acquire(
                &wallet.seed(),
                limits,
                Fr::from(1u64),
                |_, _| Fr::from(2u64),
                |_| 0,
                rank,
            )
            .unwrap()
            .note
            .j
    };
    // Note 0 in the making, none ready: the lowest idle note.
    assert_eq!(acquire(&|j, _| if j == 0 { 2 } else { 1 }), 1);
    // Note 2 ready (note 1 is in flight now): note 2 before note 0.
    assert_eq!(acquire(&|j, _| if j == 2 { 0 } else { 2 }), 2);
    // Only the note in the making is left: it is still used.
    assert_eq!(acquire(&|_, _| 2), 0);
}
