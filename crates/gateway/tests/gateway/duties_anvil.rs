//! The duties against a real anvil (`TestChain`) and a real SQLite store: a double spend
//! found by the store becomes a slash on chain, exactly once; violations become
//! `ViolationRecorded` events in batches. Needs `npm ci` in `contracts/` (anvil).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio_util::sync::CancellationToken;
use zkcredits_chain::alloy::primitives::B256;
use zkcredits_chain::alloy::providers::Provider;
use zkcredits_chain::alloy::rpc::types::Filter;
use zkcredits_chain::alloy::sol_types::SolEvent;
use zkcredits_chain::bindings::ZkCreditsPool;
use zkcredits_chain::testing::{PROVIDER, TestChain};
use zkcredits_gateway::duties::{DutiesConfig, spawn_duties};
use zkcredits_gateway::store::{Admission, SqliteStore, Store, StoredShare};
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::note::NoteSecret;
use zkcredits_protocol::rln::{self, Ticket};
use zkcredits_protocol::{Fr, field};

fn fast() -> DutiesConfig {
    DutiesConfig {
        slash_poll: Duration::from_millis(50),
        slash_backoff: Duration::from_millis(100),
        slash_backoff_max: Duration::from_secs(1),
        violation_batch: 4,
        violation_interval: Duration::from_millis(500),
        violation_poll: Duration::from_millis(50),
        watch_poll: Duration::from_millis(50),
        ..DutiesConfig::default()
    }
}

fn random_fr(rng: &mut impl Rng) -> Fr {
    use ark_ff::PrimeField;
    Fr::from_be_bytes_mod_order(&rng.r#gen::<[u8; 32]>())
}

/// Polls `done` until it holds; a deadline keeps a broken duty from hanging the suite.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_spend_found_by_the_store_is_slashed_on_chain_once() {
    let chain = TestChain::start().await.unwrap();
    let user = chain.client(2).await.unwrap();
    let provider = chain.client(PROVIDER).await.unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);

    // A deposited note whose ticket 3 is spent on two requests.
    let k = random_fr(&mut rng);
    let note = NoteSecret::from_field(k);
    user.deposit(note.id(), Credits::new(500)).await.unwrap();
    let ticket = Ticket::new(k, 3);
    let share = |x: Fr| {
        let s = ticket.share(k, x);
        StoredShare {
            x: field::to_be_bytes(&s.x),
            y: field::to_be_bytes(&s.y),
        }
    };
    let (x1, x2) = (random_fr(&mut rng), random_fr(&mut rng));

    // What the gateway does on the request path: admit, detect, recover, enqueue.
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("g.db")).unwrap());
    let n = ticket.nullifier.to_bytes();
    assert_eq!(
        store.admit(n, share(x1), None).await.unwrap(),
        Admission::Fresh
    );
    let Admission::DoubleSpend { first } = store.admit(n, share(x2), None).await.unwrap() else {
        panic!("a second x on one ticket is a double spend");
    };
    let decode = |b: &[u8; 32]| field::from_be_bytes_canonical(b).unwrap();
    let recovered = rln::recover(
        rln::Share {
            x: decode(&first.x),
            y: decode(&first.y),
        },
        ticket.share(k, x2),
    )
    .unwrap();
    assert_eq!(recovered.k, k);
    store
        .enqueue_slash(field::to_be_bytes(&recovered.k))
        .await
        .unwrap();

    let provider_balance = user.token_balance(provider.sender()).await.unwrap();
    let shutdown = CancellationToken::new();
    let duties = spawn_duties(
        Arc::clone(&store),
        provider.clone(),
        chain.deployment(),
        fast(),
        shutdown.clone(),
    );
    eventually("the slash", || async {
        store.pending_slashes(10).await.unwrap().is_empty()
    })
    .await;
    assert!(
        user.closed_or_slashed(note.close_nullifier())
            .await
            .unwrap()
    );
    assert_eq!(
        user.token_balance(provider.sender()).await.unwrap() - provider_balance,
        user.token_amount(Credits::new(500)),
        "the note's deposit went to the provider (bounty 0)"
    );

    // Enqueued again, in this store and in a fresh one (a restart that lost its file):
    // no second transaction leaves the provider's account.
    let nonce = provider
        .provider()
        .get_transaction_count(provider.sender())
        .await
        .unwrap();
    store
        .enqueue_slash(field::to_be_bytes(&recovered.k))
        .await
        .unwrap();
    assert!(store.pending_slashes(10).await.unwrap().is_empty());
    shutdown.cancel();
    duties.await.unwrap();

    let other: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("g2.db")).unwrap());
    other
        .enqueue_slash(field::to_be_bytes(&recovered.k))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let duties = spawn_duties(
        Arc::clone(&other),
        provider.clone(),
        chain.deployment(),
        fast(),
        shutdown.clone(),
    );
    eventually("the already-slashed note to be marked done", || async {
        other.pending_slashes(10).await.unwrap().is_empty()
    })
    .await;
    shutdown.cancel();
    duties.await.unwrap();
    assert_eq!(
        provider
            .provider()
            .get_transaction_count(provider.sender())
            .await
            .unwrap(),
        nonce
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_of_a_note_not_yet_deposited_is_retried_until_it_is() {
    let chain = TestChain::start().await.unwrap();
    let user = chain.client(2).await.unwrap();
    let provider = chain.client(PROVIDER).await.unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let k = random_fr(&mut rng);
    let note = NoteSecret::from_field(k);

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("g.db")).unwrap());
    store.enqueue_slash(field::to_be_bytes(&k)).await.unwrap();
    let shutdown = CancellationToken::new();
    let duties = spawn_duties(
        Arc::clone(&store),
        provider,
        chain.deployment(),
        fast(),
        shutdown.clone(),
    );
    eventually("a failed attempt", || async {
        store
            .pending_slashes(1)
            .await
            .unwrap()
            .first()
            .is_some_and(|p| p.attempts >= 1)
    })
    .await;
    assert!(
        !user
            .closed_or_slashed(note.close_nullifier())
            .await
            .unwrap()
    );

    user.deposit(note.id(), Credits::new(100)).await.unwrap();
    eventually("the slash after the deposit", || async {
        store.pending_slashes(1).await.unwrap().is_empty()
    })
    .await;
    assert!(
        user.closed_or_slashed(note.close_nullifier())
            .await
            .unwrap()
    );
    shutdown.cancel();
    duties.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_violations_reach_the_chain_in_batches_as_events() {
    let chain = TestChain::start().await.unwrap();
    let provider = chain.client(PROVIDER).await.unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("g.db")).unwrap());

    // Nine violations with a batch of four: two full batches and a partial one that goes
    // out after the interval.
    let recorded: Vec<(Fr, [u8; 32], Credits)> = (0..9u64)
        .map(|i| (random_fr(&mut rng), rng.r#gen(), Credits::new(i + 1)))
        .collect();
    for (n, evidence, penalty) in &recorded {
        store
            .record_violation(field::to_be_bytes(n), *evidence, *penalty)
            .await
            .unwrap();
    }
    let from_block = chain.block_number().await.unwrap();
    let shutdown = CancellationToken::new();
    let duties = spawn_duties(
        Arc::clone(&store),
        provider.clone(),
        chain.deployment(),
        fast(),
        shutdown.clone(),
    );
    eventually("all violations logged", || async {
        store.pending_violations(10).await.unwrap().is_empty()
    })
    .await;
    shutdown.cancel();
    duties.await.unwrap();

    let logs = provider
        .provider()
        .get_logs(
            &Filter::new()
                .address(provider.pool_address())
                .event_signature(ZkCreditsPool::ViolationRecorded::SIGNATURE_HASH)
                .from_block(from_block),
        )
        .await
        .unwrap();
    let mut txs: Vec<_> = logs.iter().filter_map(|l| l.transaction_hash).collect();
    txs.dedup();
    assert_eq!(txs.len(), 3, "batches of 4, 4 and 1");
    let events: Vec<(Fr, [u8; 32], Credits)> = logs
        .iter()
        .map(|l| {
            let e = ZkCreditsPool::ViolationRecorded::decode_log_data(l.data()).unwrap();
            (
                zkcredits_chain::bindings::u256_to_fr(e.nullifier).unwrap(),
                B256::from(e.evidenceHash).0,
                Credits::new(e.penalty),
            )
        })
        .collect();
    assert_eq!(events, recorded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_epochs_are_claimed_for_the_provider() {
    let chain = TestChain::with_config(|c| {
        c.constants.epoch_len = 100;
        c.constants.note_lifetime = 1;
        c.constants.grace = 50;
    })
    .await
    .unwrap();
    let user = chain.client(2).await.unwrap();
    let provider = chain.client(PROVIDER).await.unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let note = NoteSecret::from_field(random_fr(&mut rng));
    let deposited = user.deposit(note.id(), Credits::new(700)).await.unwrap();
    let epoch = deposited.notes[0].expiry_epoch;
    let before = user.token_balance(provider.sender()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("g.db")).unwrap());
    let config = DutiesConfig {
        claim_poll: Duration::from_millis(100),
        ..fast()
    };
    let shutdown = CancellationToken::new();
    let duties = spawn_duties(
        Arc::clone(&store),
        provider.clone(),
        chain.deployment(),
        config,
        shutdown.clone(),
    );
    // Not yet claimable: nothing happens.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!user.epoch_claimed(epoch).await.unwrap());

    let at = zkcredits_gateway::duties::expiry::claimable_at(&chain.deployment().constants, epoch);
    let now = chain.now().await.unwrap();
    chain.advance(at.saturating_sub(now) + 1).await.unwrap();
    eventually("the claim", || async {
        user.epoch_claimed(epoch).await.unwrap()
    })
    .await;
    assert_eq!(
        user.token_balance(provider.sender()).await.unwrap() - before,
        user.token_amount(Credits::new(700)),
        "the expired note went to the provider"
    );
    shutdown.cancel();
    duties.await.unwrap();
}
