//! The gateway over real HTTP on loopback, for what needs a socket or a chain: real
//! proofs of notes deposited on a real anvil (`TestChain`), real SQLite files and the
//! real PostgreSQL at 127.0.0.1:5432; one chainless gateway (fixed roots) for what hyper
//! does with the connection of a refusal. Refusals that need neither are checked in
//! process (`admission_inprocess.rs`). Needs `npm ci` in `contracts/` (anvil).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use zkcredits_chain::testing::{PROVIDER, test_server_key};
use zkcredits_gateway::{Discovery, Settings};
use zkcredits_protocol::rln::{Nullifier, Ticket};
use zkcredits_protocol::{Fr, field};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const CHILD_ENV: &str = "ZKC_GATEWAY_CHILD";

fn body(tag: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "q": tag })).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_request_gets_a_receipt_that_verifies_refunds_exactly_and_can_be_fetched() {
    let mut fx = Fixture::start(1, 20_000).await;
    let (store, _dir) = sqlite_store();
    let upstream = start_upstream().await;
    let gw = TestGateway::start(
        fx.deployment(),
        store,
        upstream,
        Settings {
            refund_granularity: zkcredits_protocol::credits::Credits::new(10),
            ..Settings::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    let server = test_server_key();
    let tree = fx.tree().await;

    // Discovery: what the client checks before proving.
    let d: Discovery = http
        .get(format!("{}/.well-known/zkcredits", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d.chain_id, fx.deployment().chain_id);
    assert_eq!(d.pool, fx.deployment().pool);
    assert_eq!((d.c_max, d.p_max), (1000, 5000));
    assert_eq!(d.current_key.id, KEY_ID);
    assert_eq!(
        zkcredits_gateway::service::decode_key(&d.current_key),
        Some(server.public_key())
    );
    assert_eq!(
        d.verifying_key_hash,
        format!("0x{}", hex::encode(prover().verifying_key_hash()))
    );
    assert!(d.accepted_roots.contains(&tree.root().to_string()));
    assert_eq!(
        serde_json::to_value(&d.prices[ROUTE]).unwrap()["per_request"],
        PRICE
    );

    // Without a credential: 402 with the challenge.
    let resp = http
        .post(format!("{}{ROUTE}/x", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 402);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("ZkCredit realm=\"zkcredits\""),
        "{challenge}"
    );
    assert!(challenge.contains("c_max=\"1000\""), "{challenge}");

    // Ticket 0: refund C_max - price = 877, rounded down to 870.
    let limits = fx.limits();
    let note = &mut fx.notes[0];
    let first = note.prove(
        &tree,
        &format!("{ROUTE}/v1/x?y=1"),
        &body("one"),
        limits,
        &server,
    );
    let (status, receipt, json) = send(&http, &gw.url, &first).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["echo"], first.body.len());
    let receipt_text = receipt.expect("a receipt header");
    let receipt = decode_receipt(&receipt_text);
    assert_eq!((receipt.refund.get(), receipt.penalty.get()), (870, 0));
    note.accept(&first, &receipt, &server);

    // The receipt is kept under N; the same request again is a replay that returns it.
    let fetched: serde_json::Value = http
        .get(format!(
            "{}/zkcredit/receipts/{}",
            gw.url,
            first.nullifier_hex()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["receipt"], receipt_text);
    let (status, again, json) = send(&http, &gw.url, &first).await;
    assert_eq!((status, code(&json)), (409, "replay"));
    assert_eq!(again.as_deref(), Some(receipt_text.as_str()));

    // Ticket 1 opens ticket 0's receipt inside the proof.
    let second = note.prove(
        &tree,
        &format!("{ROUTE}/v1/x"),
        &body("two"),
        limits,
        &server,
    );
    let (status, receipt, json) = send(&http, &gw.url, &second).await;
    assert_eq!(status, 200, "{json}");
    let receipt = decode_receipt(&receipt.unwrap());
    note.accept(&second, &receipt, &server);
    assert_eq!((note.state.index, note.state.refunds.get()), (2, 1740));

    let metrics = http
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("zkcredits_admitted_total"), "{metrics}");
    assert!(
        metrics.contains("zkcredits_rejected_total{code=\"replay\"}"),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_submissions_of_one_ticket_are_admitted_once() {
    let fx = Fixture::start(1, 20_000).await;
    let (store, _dir) = sqlite_store();
    let upstream = start_upstream().await;
    let gw = TestGateway::start(fx.deployment(), store, upstream, Settings::default()).await;
    let tree = fx.tree().await;
    let paid = fx.notes[0].prove(&tree, ROUTE, &body("race"), fx.limits(), &test_server_key());
    let outcomes = race(std::slice::from_ref(&gw.url), &paid, 32).await;
    let accepted: Vec<_> = outcomes.iter().filter(|o| o.0 == 200).collect();
    assert_eq!(accepted.len(), 1, "{outcomes:?}");
    for (status, code, receipt) in &outcomes {
        if *status != 200 {
            assert_eq!((*status, code.as_str()), (409, "replay"));
            // A replay answered after the receipt was stored carries it.
            if let Some(r) = receipt {
                assert_eq!(Some(r), accepted[0].2.as_ref());
            }
        }
    }
    gw.stop().await;
}

/// Sends `paid` `n` times at once, spread over `gateways`.
async fn race(gateways: &[String], paid: &Paid, n: usize) -> Vec<(u16, String, Option<String>)> {
    let http = reqwest::Client::new();
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (http, barrier, paid) = (http.clone(), Arc::clone(&barrier), paid.clone());
            let url = gateways[i % gateways.len()].clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let (status, receipt, json) = send(&http, &url, &paid).await;
                (status, code(&json).to_owned(), receipt)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Over a real socket and without a chain (fixed roots): a refusal given before the body
/// is read says `connection: close`, and hyper really closes the connection, so the
/// unread rest of the body is never taken for the next request. (The statuses and codes
/// of every refusal are checked in process, `admission_inprocess.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_before_the_body_is_read_closes_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (notes, tree) = local_notes(1, 20_000);
    let (store, _dir) = sqlite_store();
    let upstream = start_upstream().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = chainless_builder(
        &tree,
        store,
        upstream,
        Settings {
            body_limit: 1024,
            ..Settings::default()
        },
    )
    .start(listener, shutdown.clone())
    .await
    .unwrap();
    let url = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let good = notes[0].prove(
        &tree,
        ROUTE,
        &body("good"),
        limits_of(&zkcredits_chain::testing::offline_deployment()),
        &test_server_key(),
    );

    let unpaid = http
        .post(format!("{url}{ROUTE}"))
        .body(good.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unpaid.status().as_u16(), 402);
    assert_eq!(
        unpaid.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    // A streamed body past the limit: refused while the client is still sending.
    let chunks = futures::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 512]))),
    );
    let chunked = http
        .post(format!("{url}{ROUTE}"))
        .header("authorization", good.authorization.clone())
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(chunked.status().as_u16(), 413);
    assert_eq!(
        chunked.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let json: serde_json::Value = chunked.json().await.unwrap();
    assert_eq!(code(&json), "body_too_large");

    // On the wire: a request that announces a body and never sends it is answered 402 and
    // the gateway closes its end (end of stream), without waiting for the body.
    let mut socket = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    socket
        .write_all(
            format!(
                "POST {ROUTE} HTTP/1.1\r\nhost: {}\r\ncontent-length: 100000\r\n\r\n",
                running.addr
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer))
        .await
        .expect("the gateway closed the connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 402"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    shutdown.cancel();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_on_one_ticket_recovers_the_key_and_the_note_is_slashed_on_chain() {
    let fx = Fixture::start(1, 20_000).await;
    let (store, _dir) = sqlite_store();
    let upstream = start_upstream().await;
    let gw = TestGateway::start(fx.deployment(), store, upstream, Settings::default()).await;
    let http = reqwest::Client::new();
    let tree = fx.tree().await;
    let server = test_server_key();
    let note = &fx.notes[0];
    let one = note.prove(&tree, ROUTE, &body("one"), fx.limits(), &server);
    let two = note.prove(&tree, ROUTE, &body("two"), fx.limits(), &server);
    assert_eq!(one.credential.nullifier, two.credential.nullifier);

    let (status, _, _) = send(&http, &gw.url, &one).await;
    assert_eq!(status, 200);
    let (status, receipt, json) = send(&http, &gw.url, &two).await;
    assert_eq!((status, code(&json)), (409, "double_spend"));
    assert!(receipt.is_none());

    let pool = fx.chain.client(2).await.unwrap();
    let mut slashed = false;
    for _ in 0..600 {
        if pool
            .closed_or_slashed(note.secret.close_nullifier())
            .await
            .unwrap()
        {
            slashed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(slashed, "the slasher slashed the note within a minute");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_clearance_reserves_its_ticket_and_a_spent_ticket_gets_none() {
    let fx = Fixture::start(2, 20_000).await;
    let (store, _dir) = sqlite_store();
    let upstream = start_upstream().await;
    let gw = TestGateway::start(fx.deployment(), store, upstream, Settings::default()).await;
    let http = reqwest::Client::new();
    let tree = fx.tree().await;
    let server = test_server_key();
    let d = fx.deployment();
    let clear = |nc: Fr, n: Nullifier| {
        let (http, url) = (http.clone(), gw.url.clone());
        async move {
            let r = http
                .post(format!("{url}/zkcredit/close-clearance"))
                .json(&serde_json::json!({
                    "close_nullifier": field::to_hex(&nc),
                    "nullifier": n.to_string(),
                }))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };

    // Note 1 closes at ticket 0: the clearance verifies as the pool checks it, and is
    // given again if asked again.
    let closing = &fx.notes[1];
    let nc = closing.secret.close_nullifier();
    let nj = Ticket::new(closing.secret.expose(), 0).nullifier;
    for _ in 0..2 {
        let (status, json) = clear(nc, nj).await;
        assert_eq!(status, 200, "{json}");
        let sig: [u8; 65] =
            hex::decode(json["signature"].as_str().unwrap().trim_start_matches("0x"))
                .unwrap()
                .try_into()
                .unwrap();
        zkcredits_chain::verify_clearance(
            &sig,
            fx.chain.address(PROVIDER),
            d.chain_id,
            d.pool,
            nc,
            nj,
        )
        .unwrap();
    }
    // Its ticket 0 can no longer be spent on a request.
    let late = closing.prove(&tree, ROUTE, &body("late"), fx.limits(), &server);
    let (status, _, json) = send(&http, &gw.url, &late).await;
    assert_eq!((status, code(&json)), (409, "double_spend"));

    // Note 0 spent ticket 0 on a request: no clearance for a close at that ticket.
    let used = fx.notes[0].prove(&tree, ROUTE, &body("used"), fx.limits(), &server);
    assert_eq!(send(&http, &gw.url, &used).await.0, 200);
    let (status, json) = clear(
        fx.notes[0].secret.close_nullifier(),
        used.credential.nullifier,
    )
    .await;
    assert_eq!((status, code(&json)), (409, "ticket_spent"));

    let (status, json) = clear(nc, nj).await;
    assert_eq!(status, 200, "{json}");
    let r = http
        .post(format!("{}/zkcredit/close-clearance", gw.url))
        .body("{}")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    gw.stop().await;
}

// ------------------------------------------------------------------ child processes

/// A gateway in a child process (this test binary, `child_gateway`), reading its setup
/// from the environment and printing `listening <addr>` once it serves.
struct ChildGateway {
    child: Child,
    url: String,
}

impl ChildGateway {
    fn spawn(
        deployment: &std::path::Path,
        store_url: &str,
        upstream: std::net::SocketAddr,
    ) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "gateway_http::child_gateway",
                "--nocapture",
            ])
            .env(CHILD_ENV, "1")
            .env("ZKC_DEPLOYMENT", deployment)
            .env("ZKC_STORE_URL", store_url)
            .env("ZKC_UPSTREAM", upstream.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the child gateway ended early")
                .unwrap();
            if let Some(addr) = line.strip_prefix("listening ") {
                break addr.to_owned();
            }
        };
        Self {
            child,
            url: format!("http://{addr}"),
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL: no destructor, no final commit
        self.child.wait().unwrap();
    }
}

/// Not a test: the body of the child gateways above.
#[test]
#[ignore = "run by other tests as a child process"]
fn child_gateway() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let deployment = zkcredits_chain::Deployment::load(std::path::Path::new(
            &std::env::var("ZKC_DEPLOYMENT").unwrap(),
        ))
        .unwrap();
        let store =
            zkcredits_gateway::store::open_from_url(&std::env::var("ZKC_STORE_URL").unwrap())
                .await
                .unwrap();
        let upstream: std::net::SocketAddr =
            std::env::var("ZKC_UPSTREAM").unwrap().parse().unwrap();
        let gw =
            TestGateway::start_with(&deployment, store, upstream, Settings::default(), false).await;
        println!("listening {}", gw.url.trim_start_matches("http://"));
        // Serve until the parent closes stdin (or kills this process).
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        })
        .await
        .unwrap();
        gw.stop().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_sharing_postgres_admit_one_ticket_once() {
    let fx = Fixture::start(1, 20_000).await;
    let dir = tempfile::tempdir().unwrap();
    let deployment_path = dir.path().join("deployment.json");
    fx.deployment().save(&deployment_path).unwrap();
    let schema = format!(
        "zkc_gw_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let store_url = format!("{PG_URL}?schema={schema}");
    // Install the schema once, as a deployment would; the replicas race on tickets only.
    drop(
        zkcredits_gateway::store::open_from_url(&store_url)
            .await
            .unwrap(),
    );
    let upstream = start_upstream().await;
    let (a, b) = (
        ChildGateway::spawn(&deployment_path, &store_url, upstream),
        ChildGateway::spawn(&deployment_path, &store_url, upstream),
    );
    let tree = fx.tree().await;
    let paid = fx.notes[0].prove(
        &tree,
        ROUTE,
        &body("replicas"),
        fx.limits(),
        &test_server_key(),
    );
    let outcomes = race(&[a.url.clone(), b.url.clone()], &paid, 32).await;
    let accepted = outcomes.iter().filter(|o| o.0 == 200).count();
    assert_eq!(accepted, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| o.0 == 200 || (o.0, o.1.as_str()) == (409, "replay"))
    );
    a.kill();
    b.kill();
    drop_schema(&schema).await;
}

async fn drop_schema(schema: &str) {
    let (client, connection) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
}

/// A status and its receipt header, or `None` when the connection broke.
type Answer = (u16, Option<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_under_load_keeps_every_admitted_ticket_and_issued_receipt() {
    const REQUESTS: usize = 8;
    let fx = Fixture::start(REQUESTS as u64, 20_000).await;
    let dir = tempfile::tempdir().unwrap();
    let deployment_path = dir.path().join("deployment.json");
    fx.deployment().save(&deployment_path).unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let upstream = start_upstream().await;
    let tree = fx.tree().await;
    let server = test_server_key();
    // Request i waits 150 ms * i upstream: when the process dies some are answered, some
    // are admitted and still at the upstream, some may not have arrived.
    let paid: Vec<Paid> = fx
        .notes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let body =
                serde_json::to_vec(&serde_json::json!({ "delay_ms": 150 * i as u64 })).unwrap();
            n.prove(&tree, ROUTE, &body, fx.limits(), &server)
        })
        .collect();

    let gw = ChildGateway::spawn(&deployment_path, &store_url, upstream);
    let http = reqwest::Client::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, p) in paid.iter().enumerate() {
        let (http, url, p, tx) = (http.clone(), gw.url.clone(), p.clone(), tx.clone());
        tokio::spawn(async move {
            let mut req = http.post(format!("{url}{}", p.path)).body(p.body.clone());
            req = req.header("authorization", &p.authorization);
            let outcome = match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let receipt = r
                        .headers()
                        .get("zkcredit-receipt")
                        .map(|v| v.to_str().unwrap().to_owned());
                    // The body may be cut by the kill.
                    let _ = r.bytes().await;
                    Some((status, receipt))
                }
                Err(_) => None,
            };
            let _ = tx.send((i, outcome));
        });
    }
    drop(tx);
    // Kill once three requests were answered.
    let mut before: Vec<(usize, Option<Answer>)> = Vec::new();
    while before.iter().filter(|(_, o)| o.is_some()).count() < 3 {
        before.push(rx.recv().await.expect("answers"));
    }
    gw.kill();
    while let Some(o) = rx.recv().await {
        before.push(o);
    }
    let answered: Vec<(usize, String)> = before
        .iter()
        .filter_map(|(i, o)| match o {
            Some((200, Some(r))) => Some((*i, r.clone())),
            _ => None,
        })
        .collect();
    assert!(answered.len() >= 3, "{before:?}");
    assert!(
        answered.len() < REQUESTS,
        "some requests were cut by the kill: {before:?}"
    );

    // Restart on the same file: every issued receipt is there, every answered ticket
    // is a replay, every ticket admitted but not answered is refunded in full, and no
    // ticket is admitted twice.
    let mut refunded_or_new = 0;
    let gw = ChildGateway::spawn(&deployment_path, &store_url, upstream);
    for (i, receipt) in &answered {
        let fetched: serde_json::Value = http
            .get(format!(
                "{}/zkcredit/receipts/{}",
                gw.url,
                paid[*i].nullifier_hex()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            fetched["receipt"].as_str(),
            Some(receipt.as_str()),
            "ticket {i}"
        );
    }
    for (i, p) in paid.iter().enumerate() {
        let (status, receipt, json) = send(&http, &gw.url, p).await;
        if let Some((_, before_receipt)) = answered.iter().find(|(j, _)| *j == i) {
            assert_eq!(
                (status, code(&json)),
                (409, "replay"),
                "ticket {i} answered before"
            );
            assert_eq!(receipt.as_ref(), Some(before_receipt));
        } else if status == 200 {
            // Never reached the store before the kill: admitted now.
            refunded_or_new += 1;
        } else {
            // Admitted before the kill and never answered: the restarted gateway refunded
            // it in full (r = C_max, p = 0), so the user loses nothing for the crash.
            assert_eq!((status, code(&json)), (409, "replay"), "ticket {i}: {json}");
            let r = decode_receipt(receipt.as_deref().expect("the refund receipt"));
            assert_eq!(
                (r.refund.get(), r.penalty.get()),
                (fx.limits().c_max.get(), 0),
                "ticket {i} is refunded in full"
            );
            let m = zkcredits_protocol::state::receipt_message(
                p.credential.next_commitment,
                r.refund,
                r.penalty,
            );
            assert!(server.public_key().verify(m, &r.signature));
            refunded_or_new += 1;
        }
    }
    assert_eq!(refunded_or_new, REQUESTS - answered.len());
    gw.kill();
}
