//! The tree: Rust roots equal the contract's committed roots; the indexer rebuilds the
//! tree and the roots from logs alone, resumes from its state file, honours its
//! confirmation depth, and stops on a gap or a forged root.

use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zkcredits_chain::testing::TestChain;
use zkcredits_chain::{CommittedRoot, Error, Indexer, IndexerConfig};
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::merkle::LeanImt;
use zkcredits_protocol::note::{leaf, note_id};

use crate::{TempDir, random_fr};

#[tokio::test]
async fn hundreds_of_mixed_deposits_give_the_contracts_roots_and_the_indexer_rebuilds_them_from_logs()
-> zkcredits_chain::Result<()> {
    let chain = TestChain::start().await?;
    let user = chain.client(2).await?;
    let other = chain.client(3).await?;
    user.approve(U256::MAX).await?;
    other.approve(U256::MAX).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(0x7ee);
    let mut tree = LeanImt::new();
    let mut commits: Vec<CommittedRoot> = Vec::new();
    let mut live = Indexer::connect(
        chain.deployment(),
        IndexerConfig {
            page_blocks: 4,
            ..IndexerConfig::default()
        },
    )?;
    let mut singles = 0;
    let mut batches = 0;
    let mut mid_block = None;
    while tree.len() < 300 {
        let who = if rng.gen_bool(0.5) { &user } else { &other };
        let roll: f64 = rng.r#gen();
        if roll < 0.55 {
            let id = note_id(random_fr(&mut rng));
            let credits = rng.gen_range(1..=5_000u64);
            let out = who.deposit(id, Credits::new(credits)).await?;
            assert_eq!(out.notes.len(), 1);
            assert_eq!(out.committed, None, "a single deposit commits no root");
            let note = out.notes[0];
            assert_eq!(note.id, id);
            assert_eq!(note.leaf_index, tree.len());
            assert_eq!(note.amount, Credits::new(credits));
            assert_eq!(
                note.leaf,
                leaf(id, Credits::new(credits), note.expiry_epoch)
            );
            tree.push(note.leaf)?;
            singles += 1;
        } else if roll < 0.8 {
            let n = rng.gen_range(1..=12usize);
            let notes: Vec<_> = (0..n)
                .map(|_| {
                    (
                        note_id(random_fr(&mut rng)),
                        Credits::new(rng.gen_range(1..=5_000u64)),
                    )
                })
                .collect();
            let out = who.deposit_many(&notes).await?;
            assert_eq!(out.notes.len(), n);
            for (note, (id, credits)) in out.notes.iter().zip(&notes) {
                assert_eq!(
                    (note.id, note.amount, note.leaf_index),
                    (*id, *credits, tree.len())
                );
                tree.push(note.leaf)?;
            }
            let committed = out.committed.expect("depositMany commits its root");
            assert_eq!(
                committed,
                CommittedRoot {
                    root: tree.root(),
                    size: tree.len()
                }
            );
            commits.push(committed);
            batches += 1;
        } else {
            let out = who.commit_root().await?;
            let last = commits.last().map_or(0, |c| c.size);
            if last == tree.len() {
                assert_eq!(out.committed, None, "nothing new to commit");
            } else {
                let committed = out.committed.expect("a new root");
                assert_eq!(
                    committed,
                    CommittedRoot {
                        root: tree.root(),
                        size: tree.len()
                    }
                );
                commits.push(committed);
            }
        }
        if let Some(c) = commits.last() {
            assert_eq!(user.root().await?, c.root);
            assert!(user.is_known_root(c.root).await?);
        }
        if rng.gen_bool(0.1) {
            live.sync().await?;
            assert_eq!(live.tree(), &tree);
        }
        if mid_block.is_none() && tree.len() >= 150 {
            mid_block = Some(chain.block_number().await?);
        }
    }
    assert!(
        singles >= 50 && batches >= 15,
        "{singles} singles, {batches} batches"
    );
    let out = user.commit_root().await?;
    if let Some(c) = out.committed {
        commits.push(c);
    }
    assert_eq!(
        user.root().await?,
        tree.root(),
        "the Rust tree's root is the committed root"
    );
    assert_eq!(user.tree_size().await?, tree.len());
    assert_eq!(user.committed_size().await?, tree.len());
    // The ring holds the last 64 committed roots, and only those.
    for (i, c) in commits.iter().rev().enumerate() {
        assert_eq!(
            user.is_known_root(c.root).await?,
            i < 64,
            "commit {i} from the end"
        );
    }

    // A fresh indexer, small pages, from logs alone.
    let mut fresh = Indexer::connect(
        chain.deployment(),
        IndexerConfig {
            page_blocks: 7,
            ..IndexerConfig::default()
        },
    )?;
    let report = fresh.sync().await?;
    assert_eq!(report.deposits, tree.len());
    assert_eq!(report.commits, commits.len() as u64);
    assert_eq!(fresh.tree(), &tree);
    let window: Vec<_> = commits.iter().rev().take(64).rev().copied().collect();
    assert_eq!(fresh.committed_roots().copied().collect::<Vec<_>>(), window);
    assert!(fresh.is_recent_root(&tree.root()));
    assert_eq!(fresh.recent_roots().len(), 64);
    live.sync().await?;
    assert_eq!(live.tree(), &tree);
    assert_eq!(
        live.recent_roots().collect::<Vec<_>>(),
        fresh.recent_roots().collect::<Vec<_>>(),
        "page size does not change the per-block roots"
    );

    // Resume: sync half way with a state file, drop, reopen, finish.
    let dir = TempDir::new("resume");
    let config = IndexerConfig {
        page_blocks: 16,
        state_path: Some(dir.path().join("indexer.state")),
        progress: true,
        ..IndexerConfig::default()
    };
    let mid = mid_block.expect("passed 150 leaves");
    let half_len = {
        let mut first = Indexer::connect(chain.deployment(), config.clone())?;
        first.sync_to(mid).await?;
        assert_eq!(first.next_block(), mid + 1);
        assert!(first.tree().len() >= 150 && first.tree().len() < tree.len());
        first.tree().len()
    };
    let mut resumed = Indexer::connect(chain.deployment(), config)?;
    assert_eq!(resumed.next_block(), mid + 1, "progress survives a restart");
    assert_eq!(resumed.tree().len(), half_len);
    let report = resumed.sync().await?;
    assert_eq!(report.from_block, Some(mid + 1));
    assert_eq!(report.deposits, tree.len() - half_len);
    assert_eq!(resumed.tree(), &tree);
    assert_eq!(
        resumed.committed_roots().collect::<Vec<_>>(),
        fresh.committed_roots().collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn the_indexer_leaves_the_last_blocks_until_they_are_confirmed() -> zkcredits_chain::Result<()>
{
    let chain = TestChain::start().await?;
    let user = chain.client(2).await?;
    user.approve(U256::MAX).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..5 {
        user.deposit(note_id(random_fr(&mut rng)), Credits::new(10))
            .await?;
    }
    let head = chain.block_number().await?;
    let mut indexer = Indexer::connect(
        chain.deployment(),
        IndexerConfig {
            confirmations: 3,
            ..IndexerConfig::default()
        },
    )?;
    indexer.sync().await?;
    assert_eq!(indexer.next_block(), head - 3 + 1);
    assert_eq!(
        indexer.tree().len(),
        2,
        "the last three deposits are not deep enough yet"
    );
    for _ in 0..3 {
        chain.anvil().mine().await?;
    }
    indexer.sync().await?;
    assert_eq!(indexer.tree().len(), 5);
    Ok(())
}

/// Slot 0 of the pool packs `_treeSize` (low 8 bytes), `_rootCount` and `_committedSize`.
async fn bump_tree_size(chain: &TestChain) -> zkcredits_chain::Result<()> {
    let pool = chain.deployment().pool;
    let provider = chain.provider()?;
    let slot0 = provider.get_storage_at(pool, U256::ZERO).await?;
    chain
        .anvil()
        .set_storage(pool, U256::ZERO, B256::from(slot0 + U256::from(1)))
        .await
}

#[tokio::test]
async fn a_gap_in_leaf_indices_stops_the_indexer_with_a_clear_error() -> zkcredits_chain::Result<()>
{
    let chain = TestChain::start().await?;
    let user = chain.client(2).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for _ in 0..2 {
        user.deposit(note_id(random_fr(&mut rng)), Credits::new(10))
            .await?;
    }
    let mut indexer = Indexer::connect(chain.deployment(), IndexerConfig::default())?;
    indexer.sync().await?;
    let before = indexer.next_block();
    bump_tree_size(&chain).await?;
    let out = user
        .deposit(note_id(random_fr(&mut rng)), Credits::new(10))
        .await?;
    assert_eq!(out.notes[0].leaf_index, 3);
    match indexer.sync().await {
        Err(
            e @ Error::LeafIndexGap {
                expected: 2,
                got: 3,
            },
        ) => {
            assert!(e.to_string().contains("expected leaf 2"), "{e}");
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(
        indexer.next_block(),
        before,
        "nothing of the bad page is applied"
    );
    assert_eq!(indexer.tree().len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_committed_root_that_disagrees_with_the_logs_stops_the_indexer()
-> zkcredits_chain::Result<()> {
    let chain = TestChain::start().await?;
    let user = chain.client(2).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..3 {
        user.deposit(note_id(random_fr(&mut rng)), Credits::new(10))
            .await?;
    }
    // Size 3: the root folds _frontier[1] (slot 4) into the last leaf; corrupt it.
    let pool = chain.deployment().pool;
    chain
        .anvil()
        .set_storage(pool, U256::from(4), B256::from(U256::from(12_345)))
        .await?;
    let out = user.commit_root().await?;
    assert_eq!(out.committed.map(|c| c.size), Some(3));
    let mut indexer = Indexer::connect(chain.deployment(), IndexerConfig::default())?;
    assert!(matches!(
        indexer.sync().await,
        Err(Error::RootMismatch {
            size: 3,
            tree_size: 3,
            ..
        })
    ));
    assert!(matches!(indexer.sync().await, Err(Error::IndexerPoisoned)));
    assert!(matches!(indexer.persist(), Err(Error::IndexerPoisoned)));
    Ok(())
}

#[tokio::test]
async fn a_reorg_of_deposit_blocks_is_rewound_and_the_tree_follows_the_new_chain()
-> zkcredits_chain::Result<()> {
    let chain = TestChain::start().await?;
    let user = chain.client(2).await?;
    user.approve(U256::MAX).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(0x0e06);
    let dir = TempDir::new("reorg");
    let config = IndexerConfig {
        state_path: Some(dir.path().join("indexer.bin")),
        ..IndexerConfig::default()
    };
    let mut indexer = Indexer::connect(chain.deployment(), config.clone())?;
    let first = user
        .deposit(random_fr(&mut rng), Credits::new(100))
        .await?
        .notes[0]
        .leaf;
    indexer.sync().await?;

    // Two deposits the indexer sees, then a reorg takes them back.
    let snapshot = chain.anvil().snapshot().await?;
    user.deposit(random_fr(&mut rng), Credits::new(200)).await?;
    user.deposit(random_fr(&mut rng), Credits::new(300)).await?;
    indexer.sync().await?;
    assert_eq!(indexer.tree().len(), 3);
    let dropped_root = indexer.root();
    // The state (with its checkpoints) is what a restarted gateway resumes from.
    let mut indexer = Indexer::connect(chain.deployment(), config)?;
    chain.anvil().revert(snapshot).await?;

    // The new chain: another deposit in the same block height, then an empty block.
    let other = user
        .deposit(random_fr(&mut rng), Credits::new(400))
        .await?
        .notes[0]
        .leaf;
    chain.anvil().mine().await?;
    let report = indexer.sync().await?;
    assert_eq!(report.reorgs, 1);
    let mut expected = LeanImt::new();
    expected.push(first).expect("push");
    expected.push(other).expect("push");
    assert_eq!(indexer.tree(), &expected);
    assert!(
        !indexer.is_recent_root(&dropped_root),
        "a root of blocks the reorg dropped is never accepted again"
    );
    assert!(indexer.is_recent_root(&expected.root()));
    // And the contract agrees once it commits.
    let committed = user.commit_root().await?.committed.expect("a new root");
    assert_eq!(committed.root, expected.root());
    indexer.sync().await?;
    assert_eq!(indexer.tree(), &expected);
    Ok(())
}

#[tokio::test]
async fn the_sync_benchmark_fills_a_pool_and_a_fresh_indexer_reaches_its_root()
-> zkcredits_chain::Result<()> {
    // What `zkcredits bench sync` runs, small: bench_sync itself refuses a synced tree
    // whose size or root differs from the pool's.
    let f = zkcredits_chain::bench_sync(1_500, 400).await?;
    assert_eq!(f.notes, 1_500);
    assert_eq!(f.commits, 4, "one committed root per depositMany");
    assert!(f.log_pages >= 1);
    assert_eq!(
        f.rpc_calls,
        f.log_pages + 3,
        "the head, the target's hash before and after, and the pages"
    );
    Ok(())
}
