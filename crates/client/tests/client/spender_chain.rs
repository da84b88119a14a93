//! The spender end to end against a real anvil chain: deposit two notes, paid requests
//! whose credentials a gateway would accept, receipts, concurrency, a forged receipt.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;

use zkcredits_chain::testing::TestChain;
use zkcredits_chain::{Indexer, IndexerConfig};
use zkcredits_client::deposit::deposit_notes;
use zkcredits_client::journal::{Journal, NoteStatus};
use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::{ClientError, ServerKeyCheck, Spender, SpenderConfig, TreeView};
use zkcredits_protocol::eddsa::PrivateKey;
use zkcredits_protocol::state::{Receipt, receipt_message};
use zkcredits_protocol::wire::WireFormat;

const PATH: &str = "/v1/chat/completions";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_requests_on_a_real_chain() {
    let chain = TestChain::start().await.unwrap();
    let deployment = chain.deployment().clone();
    let dir = tempfile::tempdir().unwrap();
    let wallet = common::wallet();
    let journal_path = dir.path().join("notes.sqlite");

    // Deposit two notes of 20,000 credit units in one transaction.
    let pool = chain.client(2).await.unwrap();
    {
        let mut journal =
            Journal::open(&journal_path, wallet.storage_key(StoragePurpose::Journal)).unwrap();
        let report = deposit_notes(
            &pool,
            &mut journal,
            &wallet.seed(),
            zkcredits_protocol::credits::Credits::new(20_000),
            2,
        )
        .await
        .unwrap();
        let numbers: Vec<u64> = report.notes.iter().map(|(j, _)| *j).collect();
        assert_eq!(numbers, vec![0, 1]);
        for (j, info) in &report.notes {
            let on_chain = pool.deposit_of(info.id).await.unwrap().unwrap();
            assert_eq!(
                on_chain.amount,
                zkcredits_protocol::credits::Credits::new(20_000)
            );
            assert_eq!(on_chain.leaf_index, info.leaf_index);
            assert_eq!(info.id, wallet.seed().note_secret(*j).id());
        }
    }

    // The provider registered the test gateway's receipt key (the spender checks).
    common::accept_on_chain(&chain, &common::gateway_key()).await;
    let indexer = Indexer::connect(
        &deployment,
        IndexerConfig {
            state_path: Some(dir.path().join("tree.bin")),
            ..IndexerConfig::default()
        },
    )
    .unwrap();
    let spender = Arc::new(
        Spender::new(
            &wallet,
            SpenderConfig {
                journal_path: journal_path.clone(),
                precompute_dir: Some(dir.path().join("precompute")),
                gateway: common::gateway_constants(&deployment),
                deployment: deployment.clone(),
                prover: common::prover(),
                tree: TreeView::from_indexer(indexer),
                server_key_check: ServerKeyCheck::Pool,
            },
        )
        .await
        .unwrap(),
    );

    // First request: note 0, index 0; the proof (made after the spender synced the tree
    // on its own) verifies with the inputs the gateway computes, under a root the pool
    // knows.
    let body = br#"{"model":"m","messages":[]}"#;
    let t = spender.begin("POST", PATH, body).await.unwrap();
    assert_eq!((t.note, t.index), (0, 0));
    assert!(common::gateway_accepts(
        &t.authorization,
        "POST",
        PATH,
        body,
        &deployment
    ));
    assert!(!common::gateway_accepts(
        &t.authorization,
        "POST",
        PATH,
        b"other body",
        &deployment
    ));
    let c = common::credential(&t.authorization);
    assert_eq!(t.nullifier, c.nullifier);
    assert!(pool.is_known_root(c.root).await.unwrap());
    let summary = spender
        .finish(t, &common::receipt_for(c.next_commitment, 400, 0))
        .await
        .unwrap();
    assert_eq!(
        (summary.next_index, summary.refunds.get(), summary.status),
        (1, 400, NoteStatus::Free)
    );
    assert_eq!(summary.remaining, 20_000 + 400 - 1000);

    // Second request: the same note at index 1, opening the receipt inside the proof.
    let t = spender.begin("POST", PATH, body).await.unwrap();
    assert_eq!((t.note, t.index), (0, 1));
    assert!(common::gateway_accepts(
        &t.authorization,
        "POST",
        PATH,
        body,
        &deployment
    ));
    let c = common::credential(&t.authorization);
    spender
        .finish(t, &common::receipt_for(c.next_commitment, 1000, 0))
        .await
        .unwrap();

    // Two concurrent requests take two different notes; a third finds every note busy.
    let (a, b) = tokio::join!(
        spender.begin("POST", PATH, b"a"),
        spender.begin("POST", PATH, b"b")
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.note, b.note);
    assert!(matches!(
        spender.begin("POST", PATH, b"c").await,
        Err(ClientError::AllNotesBusy)
    ));
    let err = spender.begin("POST", PATH, b"c").await.unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("all_notes_busy", 429));

    // A receipt signed by another key is refused and the note does not move.
    let note_a = a.note;
    let index_a = a.index;
    let ca = common::credential(&a.authorization);
    let forged = Receipt {
        refund: zkcredits_protocol::credits::Credits::new(1000),
        penalty: zkcredits_protocol::credits::Credits::ZERO,
        signature: PrivateKey::from_bytes([8; 32]).sign(receipt_message(
            ca.next_commitment,
            zkcredits_protocol::credits::Credits::new(1000),
            zkcredits_protocol::credits::Credits::ZERO,
        )),
    }
    .to_base64url();
    let err = spender.finish(a, &forged).await.unwrap_err();
    assert!(matches!(err, ClientError::BadReceipt(_)), "{err}");
    assert_eq!(err.code(), "bad_receipt");
    let notes = spender.notes().await.unwrap();
    let n = notes.iter().find(|n| n.note == note_a).unwrap();
    assert_eq!((n.status, n.next_index), (NoteStatus::InFlight, index_a));
    // A receipt for another T_next (the right key, the wrong commitment) too.
    let cb = common::credential(&b.authorization);
    let b_note = b.note;
    let err = spender
        .finish(b, &common::receipt_for(ca.next_commitment, 0, 0))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::BadReceipt(_)));
    // Recovery fetches the genuine receipts and both notes move on.
    let genuine_a = common::receipt_for(ca.next_commitment, 1000, 0);
    let genuine_b = common::receipt_for(cb.next_commitment, 0, 0);
    let (na, nb) = (ca.nullifier, cb.nullifier);
    let report = spender
        .recover(|n| {
            let r = if n == na {
                Some(genuine_a.clone())
            } else if n == nb {
                Some(genuine_b.clone())
            } else {
                None
            };
            async move { Ok(r) }
        })
        .await
        .unwrap();
    assert_eq!(report.completed.len(), 2);
    let notes = spender.notes().await.unwrap();
    assert!(notes.iter().all(|n| n.status == NoteStatus::Free));
    assert_eq!(
        notes.iter().find(|n| n.note == b_note).unwrap().next_index,
        if b_note == 0 { 3 } else { 1 }
    );
}
