//! The encrypted precompute cache: round trip on disk, tampered files refused, a file
//! for another note, root or key refused, and a wrong precomputation in memory caught
//! before a credential leaves.

#![allow(clippy::unwrap_used)]

use crate::common;

use zkcredits_circuits::sample::SampleNote;
use zkcredits_client::journal::{DepositInfo, Journal};
use zkcredits_client::precompute_cache::{CacheError, PrecomputeCache};
use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::{Spender, SpenderConfig, TreeView};
use zkcredits_protocol::Fr;
use zkcredits_protocol::merkle::{LeanImt, Root};
use zkcredits_protocol::note;

fn cache(
    dir: &std::path::Path,
    wallet: &zkcredits_client::Wallet,
    vk: [u8; 32],
) -> PrecomputeCache {
    PrecomputeCache::new(
        Some(dir.to_path_buf()),
        wallet.storage_key(StoragePurpose::PrecomputeCache),
        wallet.storage_key(StoragePurpose::CacheNames),
        vk,
    )
}

#[test]
fn a_precomputation_round_trips_encrypted_and_any_change_is_refused() {
    let prover = common::prover();
    let sample = SampleNote::new(
        5,
        zkcredits_protocol::credits::Credits::new(1_000_000),
        0,
        zkcredits_protocol::credits::Credits::ZERO,
    );
    let pre = prover.precompute(sample.circuit().unwrap()).unwrap();
    let root = sample.tree.root();
    let vk = prover.verifying_key_hash();
    let dir = tempfile::tempdir().unwrap();
    let wallet = common::wallet();
    let c = cache(dir.path(), &wallet, vk);
    c.store(4, root, &pre).unwrap();
    let path = c.path(4, root).unwrap();
    // Encrypted: no 16-byte window of the plain encoding is in the file.
    let file = std::fs::read(&path).unwrap();
    let plain = pre.to_bytes();
    assert!(
        !plain
            .chunks(16)
            .any(|chunk| file.windows(16).any(|w| w == chunk))
    );
    // The name says nothing about the note or the root.
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!name.contains(&hex::encode(&root.to_bytes()[..8])));
    assert_eq!(c.load(4, root).unwrap(), Some(pre.clone()));

    // A file copied in for another note, another root, another key or another wallet
    // does not open.
    let other_root = Root::from_field(root.field() + Fr::from(1u64));
    for (cache_, note, root_) in [
        (cache(dir.path(), &wallet, vk), 5, root),
        (cache(dir.path(), &wallet, vk), 4, other_root),
        (cache(dir.path(), &wallet, [1; 32]), 4, root),
        (
            cache(dir.path(), &zkcredits_client::Wallet::generate(), vk),
            4,
            root,
        ),
    ] {
        let target = cache_.path(note, root_).unwrap();
        assert_ne!(target, path);
        std::fs::copy(&path, &target).unwrap();
        assert!(matches!(
            cache_.load(note, root_),
            Err(CacheError::Refused(_))
        ));
        std::fs::remove_file(&target).unwrap();
    }

    // A flipped byte anywhere is refused, and `get` drops the file.
    for pos in [0, 4, 10, file.len() / 2, file.len() - 1] {
        let mut bad = file.clone();
        bad[pos] ^= 0x20;
        std::fs::write(&path, &bad).unwrap();
        assert!(
            matches!(c.load(4, root), Err(CacheError::Refused(_))),
            "byte {pos}"
        );
    }
    std::fs::write(&path, &file[..file.len() - 1]).unwrap();
    assert!(matches!(c.load(4, root), Err(CacheError::Refused(_))));
    let fresh = cache(dir.path(), &wallet, vk);
    assert!(fresh.get(4, root).is_none());
    assert!(!path.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_precomputation_for_another_note_is_caught_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let wallet = common::wallet();
    let seed = wallet.seed();
    let deployment = common::offline_deployment();
    let mut tree = LeanImt::new();
    tree.push(Fr::from(5u64)).unwrap();
    {
        let mut journal = Journal::open(
            &dir.path().join("notes.sqlite"),
            wallet.storage_key(StoragePurpose::Journal),
        )
        .unwrap();
        let j = journal.reserve_notes(1).unwrap()[0];
        let id = seed.note_secret(j).id();
        let leaf_index = tree
            .push(note::leaf(
                id,
                zkcredits_protocol::credits::Credits::new(50_000),
                9,
            ))
            .unwrap();
        journal
            .record_deposit(
                j,
                &DepositInfo {
                    id,
                    deposit: zkcredits_protocol::credits::Credits::new(50_000),
                    expiry_epoch: 9,
                    leaf_index,
                    tx_hash: [0; 32],
                },
            )
            .unwrap();
    }
    let root = tree.root();
    let spender = Spender::new(
        &wallet,
        SpenderConfig {
            journal_path: dir.path().join("notes.sqlite"),
            precompute_dir: Some(dir.path().join("precompute")),
            gateway: common::gateway_constants(&deployment),
            deployment: deployment.clone(),
            prover: common::prover(),
            tree: TreeView::fixed(tree),
            server_key_check: zkcredits_client::ServerKeyCheck::UncheckedNoChain,
        },
    )
    .await
    .unwrap();
    // Plant the precomputation of another note (the sample's) for note 0 under the
    // current root, in memory and on disk.
    let wrong = common::prover()
        .precompute(
            SampleNote::new(
                5,
                zkcredits_protocol::credits::Credits::new(1_000_000),
                0,
                zkcredits_protocol::credits::Credits::ZERO,
            )
            .circuit()
            .unwrap(),
        )
        .unwrap();
    let wrong_fingerprint = wrong.fingerprint();
    spender.precompute_cache().insert(0, root, wrong);

    let t = spender.begin("POST", "/v1/x", b"1").await.unwrap();
    assert!(common::gateway_accepts(
        &t.authorization,
        "POST",
        "/v1/x",
        b"1",
        &deployment
    ));
    // The planted entry is gone, replaced by the note's own.
    let now = spender.precompute_cache().get(0, root).unwrap();
    assert_ne!(now.fingerprint(), wrong_fingerprint);
    let c = common::credential(&t.authorization);
    spender
        .finish(t, &common::receipt_for(c.next_commitment, 10, 0))
        .await
        .unwrap();
    // The next request reuses the note's own precomputation, from a restarted spender's
    // disk cache, and still verifies.
    drop(spender);
    let t = {
        let mut tree = LeanImt::new();
        tree.push(Fr::from(5u64)).unwrap();
        tree.push(note::leaf(
            seed.note_secret(0).id(),
            zkcredits_protocol::credits::Credits::new(50_000),
            9,
        ))
        .unwrap();
        let s = Spender::new(
            &wallet,
            SpenderConfig {
                journal_path: dir.path().join("notes.sqlite"),
                precompute_dir: Some(dir.path().join("precompute")),
                gateway: common::gateway_constants(&deployment),
                deployment: deployment.clone(),
                prover: common::prover(),
                tree: TreeView::fixed(tree),
                server_key_check: zkcredits_client::ServerKeyCheck::UncheckedNoChain,
            },
        )
        .await
        .unwrap();
        assert!(s.precompute_cache().load(0, root).unwrap().is_some());
        s.begin("POST", "/v1/x", b"2").await.unwrap()
    };
    assert_eq!(t.index, 1);
    assert!(common::gateway_accepts(
        &t.authorization,
        "POST",
        "/v1/x",
        b"2",
        &deployment
    ));
}
