//! Attacks on the settlement path, each played against a real gateway (SQLite store,
//! duties on) in front of a real anvil, with real request and close proofs
//! (`docs/PROTOCOL.md §6`, "What the gateway must watch"):
//!
//! - a stale unilateral close (from an old state, whose ticket a request used) is
//!   challenged within the window and the note goes to the provider;
//! - a note keeps no spendable ticket once it closed, unilaterally or cooperatively, with
//!   m = 0 or m = 1;
//! - a slashed note's later tickets are refused;
//! - the close relay sends only closes that pay it its published fee, refuses garbage
//!   with the pool's named error before paying gas, and never pays twice.
//!
//! Needs `npm ci` in `contracts/` (anvil).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use zkcredits_chain::alloy::providers::Provider;
use zkcredits_chain::alloy::rpc::types::Filter;
use zkcredits_chain::alloy::sol_types::SolEvent;
use zkcredits_chain::bindings::ZkCreditsPool;
use zkcredits_chain::testing::{PROVIDER, dev_close_prover, server_key_words, test_server_key};
use zkcredits_chain::{
    ClosePayout, NoteToClose, PoolClient, PreparedClose, RelayedClose, close_ticket, prepare_close,
};
use zkcredits_gateway::Settings;
use zkcredits_gateway::duties::watcher::CURSOR;
use zkcredits_gateway::store::{SqliteStore, Store};
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::merkle::LeanImt;
use zkcredits_protocol::state::{Limits, NoteState};

/// A pool that accepts the test receipt key (closes name it), `notes` notes of 20,000.
async fn world(notes: u64) -> (Fixture, Arc<dyn Store>, tempfile::TempDir, TestGateway) {
    let fx = Fixture::with_config(notes, 20_000, |c| {
        c.server_key = Some(server_key_words(&test_server_key().public_key()));
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("g.db")).unwrap());
    let upstream = start_upstream().await;
    let gw = TestGateway::start(
        fx.deployment(),
        Arc::clone(&store),
        upstream,
        Settings::default(),
    )
    .await;
    (fx, store, dir, gw)
}

fn body(tag: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "q": tag })).unwrap()
}

/// One paid request on note `j`, which must succeed; the note advances.
async fn pay(fx: &mut Fixture, gw: &TestGateway, tree: &LeanImt, j: usize, tag: &str) {
    let limits = fx.limits();
    let server = test_server_key();
    let paid = fx.notes[j].prove(tree, &format!("{ROUTE}/{tag}"), &body(tag), limits, &server);
    let (status, receipt, json) = send(&reqwest::Client::new(), &gw.url, &paid).await;
    assert_eq!(status, 200, "{json}");
    fx.notes[j].accept(&paid, &decode_receipt(&receipt.unwrap()), &server);
}

/// A request on note `j` from its current state: the status and error code.
async fn try_pay(
    fx: &Fixture,
    gw: &TestGateway,
    tree: &LeanImt,
    j: usize,
    tag: &str,
) -> (u16, String) {
    try_pay_from(&fx.notes[j], fx.limits(), gw, tree, tag).await
}

/// A request from `note` as it is: the status and error code.
async fn try_pay_from(
    note: &TestNote,
    limits: Limits,
    gw: &TestGateway,
    tree: &LeanImt,
    tag: &str,
) -> (u16, String) {
    let paid = note.prove(
        tree,
        &format!("{ROUTE}/{tag}"),
        &body(tag),
        limits,
        &test_server_key(),
    );
    let (status, _, json) = send(&reqwest::Client::new(), &gw.url, &paid).await;
    (status, code(&json).to_owned())
}

/// The close of note `j` from `state` for dev account 3, proven against a committed root.
async fn prove_close(
    fx: &Fixture,
    user: &PoolClient,
    j: usize,
    state: &NoteState,
    m: bool,
) -> PreparedClose {
    user.commit_root().await.unwrap();
    prove_close_to(fx, j, state, m, ClosePayout::direct(fx.chain.address(3))).await
}

/// The close of note `j` from `state` paying `to`, under the tree's current root (which
/// the pool may not have committed).
async fn prove_close_to(
    fx: &Fixture,
    j: usize,
    state: &NoteState,
    m: bool,
    to: ClosePayout,
) -> PreparedClose {
    let tree = fx.tree().await;
    let note = &fx.notes[j];
    let path = tree.path(note.leaf_index).unwrap();
    prepare_close(
        dev_close_prover().unwrap(),
        fx.deployment(),
        NoteToClose {
            secret: &note.secret,
            deposit: note.deposit,
            expiry_epoch: note.expiry_epoch,
            path: &path,
            root: tree.root(),
            state,
            server_key: test_server_key().public_key(),
        },
        to,
        m,
        &mut rand::rngs::OsRng,
    )
    .unwrap()
}

/// Waits until the watcher has read block `block`.
async fn watched(store: &dyn Store, block: u64) {
    for _ in 0..600 {
        if store
            .cursor(CURSOR)
            .await
            .unwrap()
            .is_some_and(|c| c > block)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the chain watcher did not reach block {block} within 30 s");
}

/// Polls the pool until `nc` is settled.
async fn settled(pool: &PoolClient, nc: zkcredits_protocol::Fr) -> bool {
    for _ in 0..600 {
        if pool.closed_or_slashed(nc).await.unwrap() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_unilateral_close_is_challenged_and_the_note_goes_to_the_provider() {
    let (mut fx, _store, _dir, gw) = world(1).await;
    let tree = fx.tree().await;
    let stale = fx.notes[0].state;
    pay(&mut fx, &gw, &tree, 0, "first").await;
    pay(&mut fx, &gw, &tree, 0, "second").await;

    // The attack: close from the state at index 0 (no signature needed: U = D).
    let user = fx.chain.client(2).await.unwrap();
    let provider = fx.chain.client(PROVIDER).await.unwrap();
    let before = user.token_balance(provider.sender()).await.unwrap();
    let close = prove_close(&fx, &user, 0, &stale, false).await;
    let requested = user.close_unilateral(&close).await.unwrap();

    assert!(
        settled(&user, close.nc()).await,
        "the stale close was not challenged"
    );
    assert!(user.pending_close(close.nc()).await.unwrap().is_none());
    assert_eq!(
        user.token_balance(provider.sender()).await.unwrap() - before,
        user.token_amount(fx.notes[0].deposit),
        "the whole note went to the provider (bounty 0)"
    );
    // Challenged, not merely slashed, and how many blocks it took (docs/PERFORMANCE.md).
    let logs = fx
        .chain
        .provider()
        .unwrap()
        .get_logs(
            &Filter::new()
                .address(fx.deployment().pool)
                .event_signature(ZkCreditsPool::CloseChallenged::SIGNATURE_HASH)
                .from_block(requested.tx.block_number),
        )
        .await
        .unwrap();
    assert_eq!(logs.len(), 1, "one CloseChallenged event");
    let blocks = logs[0].block_number.unwrap() - requested.tx.block_number;
    eprintln!("figure: CloseRequested to challenge mined: {blocks} block(s)");
    assert!(requested.deadline > fx.chain.now().await.unwrap());

    // And nothing is left to spend: the next ticket is refused.
    let (status, code) = try_pay(&fx, &gw, &tree, 0, "third").await;
    assert_eq!((status, code.as_str()), (409, "double_spend"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ticket_can_be_spent_after_a_unilateral_close() {
    let (mut fx, store, _dir, gw) = world(2).await;
    let tree = fx.tree().await;
    let user = fx.chain.client(2).await.unwrap();
    pay(&mut fx, &gw, &tree, 0, "a").await;
    pay(&mut fx, &gw, &tree, 1, "b").await;

    // m = 0: the close spends ticket 1, the one the note would spend next.
    let state = fx.notes[0].state;
    let close = prove_close(&fx, &user, 0, &state, false).await;
    let requested = user.close_unilateral(&close).await.unwrap();
    watched(&*store, requested.tx.block_number).await;
    let (status, code) = try_pay(&fx, &gw, &tree, 0, "after-close").await;
    assert_eq!((status, code.as_str()), (409, "double_spend"));
    // Spending after closing is a double spend of the close's ticket: the note is lost.
    assert!(settled(&user, close.nc()).await, "the note was not slashed");

    // m = 1: the close spends ticket 2 and charges ticket 1 in full (C_max, P_max
    // burned). Ticket 1, already paid for, may still be spent once; ticket 2 never.
    let state = fx.notes[1].state;
    let close = prove_close(&fx, &user, 1, &state, true).await;
    let requested = user.close_unilateral(&close).await.unwrap();
    watched(&*store, requested.tx.block_number).await;
    pay(&mut fx, &gw, &tree, 1, "paid-by-the-close").await;
    let (status, code) = try_pay(&fx, &gw, &tree, 1, "after-close").await;
    assert_eq!((status, code.as_str()), (409, "double_spend"));
    assert!(settled(&user, close.nc()).await, "the note was not slashed");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalized_unilateral_close_leaves_no_ticket_to_spend() {
    let (mut fx, store, _dir, gw) = world(1).await;
    let tree = fx.tree().await;
    let user = fx.chain.client(2).await.unwrap();
    pay(&mut fx, &gw, &tree, 0, "a").await;
    let state = fx.notes[0].state;
    let close = prove_close(&fx, &user, 0, &state, false).await;
    user.close_unilateral(&close).await.unwrap();
    fx.chain
        .advance(fx.deployment().constants.challenge_window + 1)
        .await
        .unwrap();
    let paid = user.finalize(close.nc()).await.unwrap();
    watched(&*store, paid.tx.block_number).await;
    let (status, code) = try_pay(&fx, &gw, &tree, 0, "after-finalize").await;
    assert_eq!((status, code.as_str()), (409, "double_spend"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ticket_can_be_spent_after_a_cooperative_close() {
    let (mut fx, _store, _dir, gw) = world(2).await;
    let tree = fx.tree().await;
    let user = fx.chain.client(2).await.unwrap();
    pay(&mut fx, &gw, &tree, 0, "a").await;
    pay(&mut fx, &gw, &tree, 1, "b").await;

    for (j, m) in [(0, false), (1, true)] {
        let state = fx.notes[j].state;
        let (nc, nj) = close_ticket(&fx.notes[j].secret, &state, m);
        let signature = clearance(&gw, nc, nj).await;
        let close = prove_close(&fx, &user, j, &state, m).await;
        user.close_cooperative(&close, &signature).await.unwrap();
        if m {
            // Ticket 1 was charged in full by the close; ticket 2 was the close's.
            pay(&mut fx, &gw, &tree, j, "paid-by-the-close").await;
        }
        let (status, code) = try_pay(&fx, &gw, &tree, j, "after-close").await;
        assert_eq!((status, code.as_str()), (409, "double_spend"), "m = {m}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slashed_note_cannot_spend_its_later_tickets() {
    let (mut fx, store, _dir, gw) = world(1).await;
    let tree = fx.tree().await;
    let user = fx.chain.client(2).await.unwrap();
    pay(&mut fx, &gw, &tree, 0, "a").await;

    // Ticket 1 twice: the first is served, the second recovers k and the slasher slashes.
    let before = fx.notes[0].clone();
    pay(&mut fx, &gw, &tree, 0, "b").await;
    let (status, code) = try_pay_from(&before, fx.limits(), &gw, &tree, "b-again").await;
    assert_eq!((status, code.as_str()), (409, "double_spend"));
    let nc = fx.notes[0].secret.close_nullifier();
    assert!(
        settled(&user, nc).await,
        "the double spender was not slashed"
    );
    let head = fx.chain.block_number().await.unwrap();
    watched(&*store, head).await;

    // The note holds the receipt of ticket 1, so ticket 2 has a valid proof: refused.
    let (status, code) = try_pay(&fx, &gw, &tree, 0, "c").await;
    assert_eq!((status, code.as_str()), (409, "double_spend"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_admits_nothing_until_the_pool_accepts_its_receipt_key() {
    // The pool does not accept the test key, and this gateway cannot make it: it holds
    // no provider key. A receipt it signed could never be carried into a close.
    let fx = Fixture::start(1, 20_000).await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("g.db")).unwrap());
    let upstream = start_upstream().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = zkcredits_gateway::GatewayBuilder::new(
        fx.deployment().clone(),
        verifying_key(),
        server_keys(),
        store,
    )
    .settings(Settings {
        roots_poll: Duration::from_millis(200),
        ..Settings::default()
    })
    .route(
        ROUTE,
        flat_route(upstream, fx.deployment().constants.c_max.get()),
    )
    .roots(zkcredits_gateway::RootsSource::Chain(
        zkcredits_chain::IndexerConfig::default(),
    ))
    .require_accepted_key(true)
    .start(listener, shutdown.clone())
    .await
    .unwrap();
    let url = format!("http://{}", running.addr);
    let tree = fx.tree().await;
    let paid = fx.notes[0].prove(
        &tree,
        &format!("{ROUTE}/x"),
        &body("x"),
        fx.limits(),
        &test_server_key(),
    );
    let http = reqwest::Client::new();
    let (status, _, json) = send(&http, &url, &paid).await;
    assert_eq!(
        (status, code(&json)),
        (503, "server_key_not_accepted"),
        "{json}"
    );

    // The provider accepts the key: the gateway notices, and the same credential (nothing
    // was spent) is now served.
    let provider = fx.chain.client(PROVIDER).await.unwrap();
    provider
        .accept_server_key(test_server_key().public_key())
        .await
        .unwrap();
    let mut served = false;
    for _ in 0..100 {
        let (status, receipt, _) = send(&http, &url, &paid).await;
        if status == 200 {
            assert!(receipt.is_some());
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(served, "the gateway never noticed the accepted key");
    shutdown.cancel();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_of_a_deposit_block_under_the_gateway_is_survived() {
    let (fx, _store, _dir, gw) = world(1).await;
    let user = fx.chain.client(2).await.unwrap();
    let http = reqwest::Client::new();
    let accepted = |root: zkcredits_protocol::merkle::Root| {
        let (http, url) = (http.clone(), gw.url.clone());
        async move {
            let d: zkcredits_gateway::Discovery = http
                .get(format!("{url}/.well-known/zkcredits"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            d.accepted_roots.contains(&root.to_string())
        }
    };

    // A deposit the gateway indexes, then a reorg takes it back.
    let snapshot = fx.chain.anvil().snapshot().await.unwrap();
    let lost = zkcredits_protocol::note::NoteSecret::from_field(random_fr());
    user.deposit(lost.id(), Credits::new(20_000)).await.unwrap();
    let dropped = fx.tree().await.root();
    let mut seen = false;
    for _ in 0..100 {
        if accepted(dropped).await {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the gateway indexed the deposit before the reorg");
    fx.chain.anvil().revert(snapshot).await.unwrap();

    // On the new chain another note takes that block height; it must be able to pay.
    let secret = zkcredits_protocol::note::NoteSecret::from_field(random_fr());
    let out = user
        .deposit(secret.id(), Credits::new(20_000))
        .await
        .unwrap();
    let note = TestNote {
        secret,
        deposit: out.notes[0].amount,
        expiry_epoch: out.notes[0].expiry_epoch,
        leaf_index: out.notes[0].leaf_index,
        state: NoteState::fresh(),
    };
    let tree = fx.tree().await;
    let paid = note.prove(
        &tree,
        &format!("{ROUTE}/after-reorg"),
        &body("after-reorg"),
        fx.limits(),
        &test_server_key(),
    );
    let mut last = (0, serde_json::Value::Null);
    for _ in 0..50 {
        let (status, _, json) = send(&http, &gw.url, &paid).await;
        if status == 200 {
            break;
        }
        // Nothing is spent on a stale root: the same credential may be sent again.
        assert_eq!(code(&json), "stale_root", "{json}");
        last = (status, json);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _, json) = send(&http, &gw.url, &paid).await;
    assert!(
        status == 200 || code(&json) == "replay",
        "the gateway never followed the reorg: {last:?}"
    );
    assert!(
        !accepted(dropped).await,
        "the root of the dropped deposit is no longer accepted"
    );
    gw.stop().await;
}

/// `POST /zkcredit/close-clearance` for `(nc, nj)`: the signature.
async fn clearance(
    gw: &TestGateway,
    nc: zkcredits_protocol::Fr,
    nj: zkcredits_protocol::rln::Nullifier,
) -> [u8; 65] {
    let reply: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/zkcredit/close-clearance", gw.url))
        .json(&serde_json::json!({
            "close_nullifier": zkcredits_protocol::field::to_hex(&nc),
            "nullifier": nj.to_string(),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    hex::decode(
        reply["signature"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap()
    .try_into()
    .unwrap()
}

/// `POST /zkcredit/close-relay` with `body`: the status and the answer.
async fn relay(gw: &TestGateway, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/zkcredit/close-relay", gw.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn calldata(close: &PreparedClose, clearance: &[u8; 65]) -> serde_json::Value {
    serde_json::json!({
        "calldata": format!("0x{}", hex::encode(RelayedClose::encode(close, clearance))),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_sends_only_closes_that_pay_its_fee_and_never_twice() {
    let (mut fx, _store, _dir, gw) = world(1).await;
    let tree = fx.tree().await;
    pay(&mut fx, &gw, &tree, 0, "a").await;
    let relayer = fx.chain.address(PROVIDER);

    // What the relay publishes.
    let discovery: serde_json::Value = reqwest::get(format!("{}/.well-known/zkcredits", gw.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["relay"]["fee"], RELAY_FEE);
    assert_eq!(
        discovery["relay"]["relayer"]
            .as_str()
            .unwrap()
            .to_lowercase(),
        relayer.to_string().to_lowercase()
    );

    let state = fx.notes[0].state;
    let (nc, nj) = close_ticket(&fx.notes[0].secret, &state, false);
    let signature = clearance(&gw, nc, nj).await;
    let payout = zkcredits_chain::alloy::primitives::Address::repeat_byte(0x9e);

    // Bodies that are not a close.
    for (body, code) in [
        (serde_json::json!({ "calldata": "0x1234" }), "invalid_body"),
        (serde_json::json!({ "calldata": "not hex" }), "invalid_body"),
        (serde_json::json!({ "close": "0x" }), "invalid_body"),
    ] {
        let (status, answer) = relay(&gw, body).await;
        assert_eq!((status, code_of(&answer)), (400, code), "{answer}");
    }
    // A close that pays the relay less, or pays someone else, is not sent.
    for to in [
        ClosePayout::relayed(payout, relayer, Credits::new(RELAY_FEE - 1)),
        ClosePayout::relayed(payout, fx.chain.address(3), Credits::new(RELAY_FEE)),
        ClosePayout::direct(payout),
    ] {
        let close = prove_close_to(&fx, 0, &state, false, to).await;
        let (status, answer) = relay(&gw, calldata(&close, &signature)).await;
        assert_eq!(
            (status, code_of(&answer)),
            (400, "relay_fee_mismatch"),
            "{answer}"
        );
    }
    // A close the pool refuses (a broken proof) is answered with the pool's error.
    let to = ClosePayout::relayed(payout, relayer, Credits::new(RELAY_FEE));
    let honest = prove_close_to(&fx, 0, &state, false, to).await;
    let mut broken = honest.clone();
    broken.proof.c = (broken.proof.c + broken.proof.c).into();
    let (status, answer) = relay(&gw, calldata(&broken, &signature)).await;
    assert_eq!(
        (status, code_of(&answer)),
        (422, "close_refused"),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("InvalidProof"),
        "{answer}"
    );

    // The honest close: sent by the relay, paid as proven.
    let (status, answer) = relay(&gw, calldata(&honest, &signature)).await;
    assert_eq!(status, 200, "{answer}");
    let unit = fx.deployment().constants.unit;
    let user = fx.chain.client(2).await.unwrap();
    assert_eq!(
        user.token_balance(payout).await.unwrap(),
        zkcredits_chain::alloy::primitives::U256::from(honest.public.payout.get() - RELAY_FEE)
            * unit
    );
    let hash = answer["tx_hash"].as_str().unwrap().parse().unwrap();
    let tx = user
        .provider()
        .get_transaction_by_hash(hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tx.inner.signer(), relayer);
    // Sent again: refused by the pool, nothing paid twice.
    let (status, answer) = relay(&gw, calldata(&honest, &signature)).await;
    assert_eq!(
        (status, code_of(&answer)),
        (422, "close_refused"),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("NoteAlreadySettled"),
        "{answer}"
    );
    gw.stop().await;
}

fn code_of(answer: &serde_json::Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or_default()
}
