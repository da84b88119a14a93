//! Money the user can trust, against a real anvil chain and, where one is needed, the
//! real gateway on loopback: each test plays an attack by the provider (or an accident
//! of the user's own backup) and checks what the client does and where the money goes.
//!
//! - a gateway signs receipts outside the pool's limits (`p = D`, `r > C_max`): the
//!   client refuses them and the note closes with `m = 1` from its previous state;
//! - a gateway keeps the share of a request it "refused": the close spends the next
//!   ticket, so the close's calldata and the kept share never give `k`;
//! - a gateway whose receipt key the pool never accepted gets nothing spent;
//! - the exit (unilateral close and finalize) needs no gateway and reads the time from
//!   the chain;
//! - a journal put back from an old copy moves forward instead of spending a ticket
//!   twice.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use zkcredits_chain::alloy::primitives::{Address, U256};
use zkcredits_chain::alloy::signers::local::PrivateKeySigner;
use zkcredits_chain::alloy::sol_types::SolCall;
use zkcredits_chain::bindings::{ZkCreditsPool, u256_to_fr};
use zkcredits_chain::testing::{PROVIDER, TestChain, dev_close_prover, test_server_key};
use zkcredits_chain::{Deployment, Indexer, IndexerConfig, PoolClient};
use zkcredits_client::closer::{
    CloseContext, CloseMode, CloseReport, FinalizeReport, finalize_pending,
};
use zkcredits_client::gateway_client::{GatewayClient, GatewayClientConfig};
use zkcredits_client::journal::{Journal, NoteStatus};
use zkcredits_client::payer::{PaidRequest, PayError, Payer, PayerConfig, TicketOutcome};
use zkcredits_client::reqwest::Method;
use zkcredits_client::reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::{
    ClientError, GatewayConstants, LimitBreach, NoteSummary, ServerKeyCheck, Spender,
    SpenderConfig, StaleState, TreeView,
};
use zkcredits_gateway::keys::ServerKeys;
use zkcredits_gateway::store::sqlite::SqliteStore;
use zkcredits_gateway::upstream::flat::{FlatConfig, FlatUpstream};
use zkcredits_gateway::{GatewayBuilder, RootsSource, RunningGateway, Settings};
use zkcredits_protocol::eddsa::PrivateKey;
use zkcredits_protocol::note::{NoteSecret, WalletSeed};
use zkcredits_protocol::request::{Withdrawal, request_x, withdrawal_x};
use zkcredits_protocol::rln::{self, Share, Ticket};
use zkcredits_protocol::state::{Receipt, receipt_message};
use zkcredits_protocol::wire::WireFormat;

const DEPOSIT: u64 = 20_000;
const RPC_PRICE: u64 = 10;
const USER: usize = 2;

/// A fresh chain, `notes` notes of [`DEPOSIT`] in a fresh journal, and `key` (if any)
/// registered on the pool by the provider.
struct Setup {
    chain: TestChain,
    deployment: Deployment,
    dir: tempfile::TempDir,
    journal_path: PathBuf,
}

async fn setup(notes: u64, key: Option<&PrivateKey>) -> Setup {
    let chain = TestChain::start().await.unwrap();
    let deployment = chain.deployment().clone();
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("notes.sqlite");
    let wallet = common::wallet();
    common::deposit_into_journal(
        &chain,
        USER,
        &wallet,
        &journal_path,
        zkcredits_protocol::credits::Credits::new(DEPOSIT),
        notes,
    )
    .await;
    if let Some(key) = key {
        common::accept_on_chain(&chain, key).await;
    }
    Setup {
        chain,
        deployment,
        dir,
        journal_path,
    }
}

/// What the user's closes need besides the gateway: the pool (gas paid by the user's
/// account), the journal, the tree and the wallet seed.
struct User {
    pool: PoolClient,
    journal: Journal,
    indexer: Indexer,
    seed: WalletSeed,
}

impl User {
    async fn open(chain: &TestChain, journal_path: &Path) -> Self {
        let wallet = common::wallet();
        Self {
            pool: chain.client(USER).await.unwrap(),
            journal: Journal::open(journal_path, wallet.storage_key(StoragePurpose::Journal))
                .unwrap(),
            indexer: Indexer::connect(chain.deployment(), IndexerConfig::default()).unwrap(),
            seed: wallet.seed(),
        }
    }

    fn closing<'a>(
        &'a mut self,
        deployment: &'a Deployment,
        gateway: Option<&'a GatewayClient>,
        constants: &'a GatewayConstants,
    ) -> CloseContext<'a> {
        CloseContext {
            seed: &self.seed,
            journal: &mut self.journal,
            pool: &self.pool,
            deployment,
            indexer: &mut self.indexer,
            prover: dev_close_prover().unwrap(),
            gateway,
            constants,
            // These tests are about money, not linking: the user's one account sends.
            deposit_account: None,
            relay: None,
        }
    }
}

/// A spender over the chain's tree that checks server keys with the pool.
async fn spender(
    deployment: &Deployment,
    dir: &Path,
    journal_path: &Path,
    gateway: GatewayConstants,
) -> Arc<Spender> {
    let indexer = Indexer::connect(
        deployment,
        IndexerConfig {
            state_path: Some(dir.join("tree.bin")),
            ..IndexerConfig::default()
        },
    )
    .unwrap();
    let s = Spender::new(
        &common::wallet(),
        SpenderConfig {
            journal_path: journal_path.to_owned(),
            precompute_dir: None,
            gateway,
            deployment: deployment.clone(),
            prover: common::prover(),
            tree: TreeView::from_indexer(indexer),
            server_key_check: ServerKeyCheck::Pool,
        },
    )
    .await
    .unwrap();
    s.resync().await.unwrap();
    Arc::new(s)
}

/// The real gateway on loopback and a client of it.
struct Gateway {
    running: RunningGateway,
    shutdown: CancellationToken,
    client: GatewayClient,
    /// What its discovery document says.
    constants: GatewayConstants,
}

/// The real gateway signing with the test receipt key (its store under `dir`),
/// anvil's JSON-RPC behind `/rpc` at a flat price, roots from the chain; with
/// `provider` it signs close clearances.
async fn start_gateway(
    deployment: &Deployment,
    dir: &Path,
    provider: Option<PrivateKeySigner>,
) -> Gateway {
    let rpc = FlatUpstream::new(
        &FlatConfig {
            prefix: "/rpc".into(),
            base_url: deployment.rpc_url.clone(),
            price: RPC_PRICE,
            timeout_secs: Some(10),
        },
        deployment.constants.c_max.get(),
        Duration::from_secs(10),
    )
    .unwrap();
    let mut builder = GatewayBuilder::new(
        deployment.clone(),
        common::prover().keys().verifying_key().clone(),
        ServerKeys::new(1, test_server_key(), Vec::new()),
        Arc::new(SqliteStore::open(dir.join("gateway.sqlite")).unwrap()),
    )
    .settings(Settings {
        roots_poll: Duration::from_millis(200),
        ..Settings::default()
    })
    .route("/rpc", Arc::new(rpc))
    .roots(RootsSource::Chain(IndexerConfig::default()));
    if let Some(signer) = provider {
        builder = builder.provider_signer(signer);
    }
    let shutdown = CancellationToken::new();
    let running = builder
        .start(
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            shutdown.clone(),
        )
        .await
        .unwrap();
    let client = GatewayClient::new(&GatewayClientConfig::new(format!(
        "http://{}",
        running.addr
    )))
    .unwrap();
    let constants = client.discover().await.unwrap().constants;
    Gateway {
        running,
        shutdown,
        client,
        constants,
    }
}

fn rpc_request(method: &str) -> PaidRequest {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    PaidRequest {
        method: Method::POST,
        path_and_query: "/rpc".into(),
        headers,
        body: Bytes::from(
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": []})
                .to_string(),
        ),
    }
}

fn note(notes: &[NoteSummary], j: u64) -> NoteSummary {
    notes.iter().find(|n| n.note == j).unwrap().clone()
}

fn ticket_rows(journal_path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(journal_path).unwrap();
    conn.query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get(0))
        .unwrap()
}

/// A receipt for `T_next` signed by the test gateway's key, whatever it says.
fn signed(next_commitment: zkcredits_protocol::Fr, refund: u64, penalty: u64) -> String {
    let (refund, penalty) = (
        zkcredits_protocol::credits::Credits::new(refund),
        zkcredits_protocol::credits::Credits::new(penalty),
    );
    Receipt {
        refund,
        penalty,
        signature: common::gateway_key().sign(receipt_message(next_commitment, refund, penalty)),
    }
    .to_base64url()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_outside_the_pool_limits_is_refused_and_the_note_closes_with_m_1() {
    let Setup {
        chain,
        deployment,
        dir,
        journal_path,
    } = setup(3, Some(&common::gateway_key())).await;
    let (c_max, p_max, unit) = (
        deployment.constants.c_max.get(),
        deployment.constants.p_max.get(),
        deployment.constants.unit,
    );
    let constants = GatewayConstants {
        refund_granularity: Some(100),
        ..common::gateway_constants(&deployment)
    };
    let s = spender(&deployment, dir.path(), &journal_path, constants.clone()).await;

    // An honest request on note 0, then the gateway signs p = D: applied, the note could
    // never close again (U = D + R - P - n C_max < 0).
    let t = s.begin("POST", "/rpc", b"one").await.unwrap();
    let c = common::credential(&t.authorization);
    s.finish(t, &signed(c.next_commitment, 400, 0))
        .await
        .unwrap();
    let t = s.begin("POST", "/rpc", b"two").await.unwrap();
    assert_eq!((t.note, t.index), (0, 1));
    let c = common::credential(&t.authorization);
    let err = s
        .finish(t, &signed(c.next_commitment, 0, DEPOSIT))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::ReceiptOutsideLimits {
                note: 0,
                index: 1,
                reason: LimitBreach::PenaltyAbovePMax { .. },
            }
        ),
        "{err}"
    );
    assert_eq!(err.code(), "receipt_outside_limits");
    let n0 = note(&s.notes().await.unwrap(), 0);
    assert_eq!(
        (
            n0.status,
            n0.next_index,
            n0.refunds.get(),
            n0.penalties.get()
        ),
        (NoteStatus::NeedsClose { m: 1 }, 1, 400, 0),
        "the previous state is kept and the note is marked to close with m = 1"
    );

    // Note 1: the gateway signs a refund above the reservation C_max.
    let t = s.begin("POST", "/rpc", b"three").await.unwrap();
    assert_eq!((t.note, t.index), (1, 0));
    let c = common::credential(&t.authorization);
    let err = s
        .finish(t, &signed(c.next_commitment, c_max + 1, 0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::ReceiptOutsideLimits {
                note: 1,
                index: 0,
                reason: LimitBreach::RefundAboveCMax { .. },
            }
        ),
        "{err}"
    );
    let n1 = note(&s.notes().await.unwrap(), 1);
    assert_eq!(
        (n1.status, n1.next_index, n1.refunds.get()),
        (NoteStatus::NeedsClose { m: 1 }, 0, 0)
    );
    // Note 2: a refund off the published granularity (100).
    let t = s.begin("POST", "/rpc", b"four").await.unwrap();
    assert_eq!((t.note, t.index), (2, 0));
    let c = common::credential(&t.authorization);
    let err = s
        .finish(t, &signed(c.next_commitment, 450, 0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::ReceiptOutsideLimits {
                note: 2,
                index: 0,
                reason: LimitBreach::OffGranularity {
                    refund,
                    granularity: 100
                },
            } if refund == zkcredits_protocol::credits::Credits::new(450)
        ),
        "{err}"
    );
    assert_eq!(
        note(&s.notes().await.unwrap(), 2).status,
        NoteStatus::NeedsClose { m: 1 }
    );
    // No note spends again.
    assert!(matches!(
        s.begin("POST", "/rpc", b"five").await,
        Err(ClientError::NoSolventNote)
    ));
    drop(s);

    // All close with m = 1 from the state they kept, with no gateway at all.
    let payout = Address::repeat_byte(0x5a);
    let mut user = User::open(&chain, &journal_path).await;
    let mut ctx = user.closing(&deployment, None, &constants);
    for j in [0, 1, 2] {
        match ctx.close(j, payout, CloseMode::Unilateral).await.unwrap() {
            CloseReport::Requested { note, m, .. } => assert_eq!((note, m), (j, 1)),
            other => panic!("expected a unilateral close, got {other:?}"),
        }
    }
    chain
        .advance(deployment.constants.challenge_window + 1)
        .await
        .unwrap();
    let reports = finalize_pending(&user.seed, &mut user.journal, &user.pool)
        .await
        .unwrap();
    assert_eq!(reports.len(), 3);
    // U from the previous states: note 0 at (1, R = 400, P = 0) spends ticket 2, notes 1
    // and 2 at (0, 0, 0) spend ticket 1; each burns P_max.
    let expected = [
        (DEPOSIT + 400 - 2 * c_max - p_max, 2 * c_max - 400),
        (DEPOSIT - c_max - p_max, c_max),
        (DEPOSIT - c_max - p_max, c_max),
    ];
    for r in &reports {
        let FinalizeReport::Finalized { note, outcome } = r else {
            panic!("not finalized: {r:?}");
        };
        let (u, provider) = expected[usize::try_from(*note).unwrap()];
        assert_eq!(outcome.to_payout, U256::from(u) * unit, "note {note}");
        assert_eq!(outcome.burned, U256::from(p_max) * unit, "note {note}");
        assert_eq!(
            outcome.to_provider,
            U256::from(provider) * unit,
            "note {note}"
        );
        assert_eq!(
            outcome.to_payout + outcome.burned + outcome.to_provider,
            U256::from(DEPOSIT) * unit
        );
    }
    let ledger = user.pool.ledger(deployment.deploy_block).await.unwrap();
    assert!(ledger.balances(), "{ledger:?}");
    assert_eq!(
        user.pool.token_balance(payout).await.unwrap(),
        U256::from(expected.iter().map(|(u, _)| u).sum::<u64>()) * unit
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_kept_a_refused_share_cannot_recover_k_from_the_close() {
    let Setup {
        chain,
        deployment,
        dir,
        journal_path,
    } = setup(1, Some(&test_server_key())).await;
    let (c_max, p_max, unit) = (
        deployment.constants.c_max.get(),
        deployment.constants.p_max.get(),
        deployment.constants.unit,
    );
    let Gateway {
        running,
        shutdown,
        client,
        constants,
    } = start_gateway(&deployment, dir.path(), Some(chain.signer(PROVIDER))).await;
    let s = spender(&deployment, dir.path(), &journal_path, constants.clone()).await;

    // The gateway answers "no such route" before admission and keeps the share.
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    let t = s.begin("POST", "/nowhere", body).await.unwrap();
    let c = common::credential(&t.authorization);
    let answer = client
        .send_paid(
            Method::POST,
            "/nowhere",
            HeaderMap::new(),
            Bytes::from_static(body),
            &t.authorization,
        )
        .await
        .unwrap();
    assert_eq!(answer.status.as_u16(), 404);
    s.refused(t, "unknown_route").await.unwrap();
    let kept = Share {
        x: request_x("POST", "/nowhere", body),
        y: c.y,
    };
    drop(s);

    // The cooperative close through the same gateway (which would clear ticket 0, as it
    // stored nothing for it).
    let payout = Address::repeat_byte(0x6b);
    let mut user = User::open(&chain, &journal_path).await;
    let mut ctx = user.closing(&deployment, Some(&client), &constants);
    let CloseReport::Closed { m, outcome, .. } =
        ctx.close(0, payout, CloseMode::Cooperative).await.unwrap()
    else {
        panic!("expected a cooperative close");
    };
    assert_eq!(m, 1);
    let k = user.seed.note_secret(0).expose();
    assert_ne!(
        outcome.nullifier, c.nullifier,
        "the close spends another ticket than the refused request"
    );
    assert_eq!(outcome.nullifier, Ticket::new(k, 1).nullifier);

    // What the provider reads from the chain: the close's share, in its calldata.
    let tx: serde_json::Value = zkcredits_client::reqwest::Client::new()
        .post(&deployment.rpc_url)
        .json(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionByHash",
            "params": [outcome.tx.hash.to_string()],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let input = hex::decode(
        tx["result"]["input"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap();
    let call = ZkCreditsPool::closeCooperativeCall::abi_decode(&input).unwrap();
    let close_share = Share {
        x: withdrawal_x(
            deployment.chain_id,
            deployment.pool.into_array(),
            &Withdrawal::direct(payout.into_array()),
        ),
        y: u256_to_fr(call.c.yw).unwrap(),
    };
    let recovered = rln::recover(kept, close_share).unwrap();
    assert_ne!(recovered.k, k, "two shares of one ticket would give k");
    assert_ne!(
        NoteSecret::from_field(recovered.k).close_nullifier(),
        outcome.nc
    );
    // No slash is possible, and the money adds up: U = D - C_max - P_max (ticket 1).
    assert_eq!(
        outcome.to_payout,
        U256::from(DEPOSIT - c_max - p_max) * unit
    );
    assert_eq!(outcome.burned, U256::from(p_max) * unit);
    assert_eq!(outcome.to_provider, U256::from(c_max) * unit);
    shutdown.cancel();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_key_the_pool_never_accepted_gets_nothing_spent() {
    let Setup {
        chain,
        deployment,
        dir,
        journal_path,
    } = setup(1, None).await;
    // The gateway signs with a key the provider never registered on the pool.
    let Gateway {
        running,
        shutdown,
        client,
        constants,
    } = start_gateway(&deployment, dir.path(), None).await;
    let s = spender(&deployment, dir.path(), &journal_path, constants).await;
    let payer = Payer::new(s.clone(), client.clone(), PayerConfig::default());
    let err = payer.send(rpc_request("eth_chainId")).await.unwrap_err();
    assert!(
        matches!(
            err,
            PayError::Local(ClientError::ServerKeyNotOnChain { key_id: 1 })
        ),
        "{err}"
    );
    assert_eq!(err.code(), "server_key_not_on_chain");
    assert!(err.to_string().contains("nothing was spent"), "{err}");
    // Nothing left the process: no ticket, the note free at index 0, nothing admitted.
    assert_eq!(ticket_rows(&journal_path), 0);
    let n0 = note(&s.notes().await.unwrap(), 0);
    assert_eq!((n0.status, n0.next_index), (NoteStatus::Free, 0));

    // Once the pool accepts the key, the same client pays through it.
    common::accept_on_chain(&chain, &test_server_key()).await;
    for method in ["eth_chainId", "eth_blockNumber"] {
        let reply = payer.send(rpc_request(method)).await.unwrap();
        assert_eq!(reply.status.as_u16(), 200);
        assert!(matches!(
            reply.outcome.resolve().await,
            TicketOutcome::Settled(_)
        ));
    }
    let n0 = note(&s.notes().await.unwrap(), 0);
    assert_eq!(n0.next_index, 2);
    shutdown.cancel();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_journal_moves_forward_instead_of_spending_a_ticket_twice() {
    let Setup {
        chain,
        deployment,
        dir,
        journal_path,
    } = setup(1, Some(&test_server_key())).await;
    let c_max = deployment.constants.c_max.get();
    // A backup of the journal taken right after the deposit.
    let backup = dir.path().join("backup.sqlite");
    std::fs::copy(&journal_path, &backup).unwrap();
    let Gateway {
        running,
        shutdown,
        client,
        constants,
    } = start_gateway(&deployment, dir.path(), None).await;
    {
        let s = spender(&deployment, dir.path(), &journal_path, constants.clone()).await;
        let payer = Payer::new(s.clone(), client.clone(), PayerConfig::default());
        for method in ["eth_chainId", "eth_blockNumber"] {
            let reply = payer.send(rpc_request(method)).await.unwrap();
            assert!(matches!(
                reply.outcome.resolve().await,
                TicketOutcome::Settled(_)
            ));
        }
        assert_eq!(note(&s.notes().await.unwrap(), 0).next_index, 2);
    }
    // The user puts the old journal back (a restored backup or VM snapshot).
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", journal_path.display()));
    }
    std::fs::copy(&backup, &journal_path).unwrap();

    // From the restored state, a unilateral close would show a second share of ticket 0
    // for the whole challenge window: refused while the gateway can say it is spent.
    {
        let mut user = User::open(&chain, &journal_path).await;
        let mut ctx = user.closing(&deployment, Some(&client), &constants);
        let err = ctx
            .close(0, Address::repeat_byte(0x3d), CloseMode::Unilateral)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::StaleState(StaleState::UnrecordedReceipt { note: 0, index: 0 })
            ),
            "{err}"
        );
        assert_eq!(err.code(), "stale_state");
        assert_eq!(user.journal.note(0).unwrap().status, NoteStatus::Free);
    }
    let s = spender(&deployment, dir.path(), &journal_path, constants).await;
    assert_eq!(note(&s.notes().await.unwrap(), 0).next_index, 0);
    let payer = Payer::new(s.clone(), client.clone(), PayerConfig::default());
    let reply = payer.send(rpc_request("eth_gasPrice")).await.unwrap();
    assert_eq!(
        reply.status.as_u16(),
        200,
        "a second use of ticket 0 would be refused as a double spend"
    );
    let TicketOutcome::Settled(summary) = reply.outcome.resolve().await else {
        panic!("the request was not settled");
    };
    // Tickets 0 and 1 were learned from the gateway's receipts (opened with their
    // derived blindings), and the new request spent ticket 2.
    assert_eq!(
        (summary.note, summary.next_index, summary.refunds.get()),
        (0, 3, 3 * (c_max - RPC_PRICE))
    );
    assert_eq!(summary.status, NoteStatus::Free);
    shutdown.cancel();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slashed_note_is_reported_slashed_not_in_flight() {
    let setup = setup(3, None).await;
    let mut user = User::open(&setup.chain, &setup.journal_path).await;
    // Note 1's secret became public (a double spend from an old copy of the journal,
    // say) and someone slashed it; note 2 waits for a close of its owner's.
    let k = user.seed.note_secret(1).expose();
    let mut journal = Journal::open(
        &setup.journal_path,
        common::wallet().storage_key(StoragePurpose::Journal),
    )
    .unwrap();
    journal.mark_needs_close(2, 0).unwrap();
    let slasher = setup.chain.client(3).await.unwrap();
    slasher.slash(k).await.unwrap();

    let status = zkcredits_client::closer::chain_status(
        &user.seed,
        &mut user.journal,
        &user.pool,
        &setup.deployment,
    )
    .await
    .unwrap();
    assert_eq!(status.slashed, vec![1]);
    assert!(status.closed.is_empty() && status.closing.is_empty());
    let notes = user.journal.notes().unwrap();
    let by_note = |j: u64| notes.iter().find(|n| n.j == j).unwrap().status;
    assert_eq!(by_note(0), NoteStatus::Free);
    assert_eq!(by_note(1), NoteStatus::Slashed);
    assert_eq!(by_note(2), NoteStatus::NeedsClose { m: 0 });
    // Asked again, nothing changes.
    let again = zkcredits_client::closer::chain_status(
        &user.seed,
        &mut user.journal,
        &user.pool,
        &setup.deployment,
    )
    .await
    .unwrap();
    assert_eq!(again, Default::default());
}
