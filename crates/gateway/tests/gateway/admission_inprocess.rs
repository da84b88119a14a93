//! Admission against the router in process: no chain and no socket. The gateway is built
//! with `GatewayBuilder::build` for the offline deployment (`C_max` 1000, `P_max` 5000),
//! accepting the fixed root of a local tree that holds the test notes, with a SQLite
//! store in a temporary directory and the flat route to a loopback upstream; requests
//! go to its router with `tower::ServiceExt::oneshot`, carrying real proofs.
//!
//! What needs the chain (roots from the pool's events, key acceptance, duties, the
//! relay) or a real socket (races, processes, hyper closing a connection) stays in
//! `gateway_http.rs` and the other anvil-based files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use zkcredits_chain::testing::test_server_key;
use zkcredits_gateway::{Discovery, Settings};
use zkcredits_protocol::Fr;
use zkcredits_protocol::state::Limits;
use zkcredits_protocol::wire::{Credential, WireFormat};

use crate::common::*;

fn body(tag: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "q": tag })).unwrap()
}

/// Whether the answer tells the client to close the connection.
fn closes(headers: &http::HeaderMap) -> bool {
    headers.get(http::header::CONNECTION).map(|v| v.as_bytes()) == Some(&b"close"[..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_request_gets_a_receipt_that_verifies_and_can_be_fetched() {
    let mut gw = InProcessGateway::start(
        1,
        20_000,
        Settings {
            refund_granularity: zkcredits_protocol::credits::Credits::new(10),
            ..Settings::default()
        },
    )
    .await;
    let server = test_server_key();

    // Discovery: what the client checks before proving.
    let (status, json) = gw.get("/.well-known/zkcredits").await;
    assert_eq!(status, 200, "{json}");
    let d: Discovery = serde_json::from_value(json).unwrap();
    assert_eq!((d.c_max, d.p_max), (1000, 5000));
    assert_eq!(d.current_key.id, KEY_ID);
    assert_eq!(
        zkcredits_gateway::service::decode_key(&d.current_key),
        Some(server.public_key())
    );
    assert_eq!(d.accepted_roots, vec![gw.tree.root().to_string()]);

    // Ticket 0: refund C_max - price = 877, rounded down to 870.
    let first = gw.prove(0, &format!("{ROUTE}/v1/x?y=1"), &body("one"));
    let (status, receipt, json) = gw.send(&first).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["echo"], first.body.len());
    let receipt_text = receipt.expect("a receipt header");
    let receipt = decode_receipt(&receipt_text);
    assert_eq!((receipt.refund.get(), receipt.penalty.get()), (870, 0));
    // Checks the signature over T_next as the client does.
    gw.notes[0].accept(&first, &receipt, &server);

    // The receipt is kept under N; the same request again is a replay that returns it.
    let (status, fetched) = gw
        .get(&format!("/zkcredit/receipts/{}", first.nullifier_hex()))
        .await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched["receipt"], receipt_text);
    let (status, again, json) = gw.send(&first).await;
    assert_eq!((status, code(&json)), (409, "replay"));
    assert_eq!(again.as_deref(), Some(receipt_text.as_str()));

    // Ticket 1 opens ticket 0's receipt inside the proof.
    let second = gw.prove(0, &format!("{ROUTE}/v1/x"), &body("two"));
    let (status, receipt, json) = gw.send(&second).await;
    assert_eq!(status, 200, "{json}");
    let receipt = decode_receipt(&receipt.unwrap());
    gw.notes[0].accept(&second, &receipt, &server);
    assert_eq!(
        (gw.notes[0].state.index, gw.notes[0].state.refunds.get()),
        (2, 1740)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_before_admission_has_its_status_and_code_and_spends_nothing() {
    let gw = InProcessGateway::start(
        1,
        20_000,
        Settings {
            body_limit: 1024,
            ..Settings::default()
        },
    )
    .await;
    let good = gw.prove(0, ROUTE, &body("good"));
    let with = |edit: &dyn Fn(&mut Credential)| {
        let mut c = good.credential;
        edit(&mut c);
        format!("ZkCredit {}", c.to_base64url())
    };
    let post = |path: &str, auth: Option<String>, body: Vec<u8>| {
        let (gw, path) = (&gw, path.to_owned());
        async move {
            let (status, receipt, json) = gw.send_raw(&path, auth.as_deref(), body).await;
            // A refusal before admission spent nothing, so it carries no receipt.
            assert_eq!(receipt, None, "{json}");
            (status, code(&json).to_owned())
        }
    };
    let auth = Some(good.authorization.clone());
    let expect = |got: (u16, String), status: u16, code: &str| {
        assert_eq!((got.0, got.1.as_str()), (status, code));
    };

    expect(
        post("/nowhere", auth.clone(), good.body.clone()).await,
        404,
        "unknown_route",
    );
    expect(
        post(ROUTE, None, good.body.clone()).await,
        402,
        "payment_required",
    );
    // Refused before its body was read, the connection cannot be reused: the answer says
    // so, or the client would pool it and its next request would race the close.
    let unpaid = gw
        .call(
            http::Request::post(ROUTE)
                .header(http::header::CONTENT_LENGTH, good.body.len())
                .body(Body::from(good.body.clone()))
                .unwrap(),
        )
        .await;
    let (status, _, headers, json) = read_response(unpaid).await;
    assert_eq!((status, code(&json)), (402, "payment_required"));
    assert!(closes(&headers), "{headers:?}");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("ZkCredit realm=\"zkcredits\""),
        "{challenge}"
    );
    assert!(challenge.contains("c_max=\"1000\""), "{challenge}");
    expect(
        post(ROUTE, Some("ZkCredit AAAA".into()), good.body.clone()).await,
        400,
        "malformed_credential",
    );
    expect(
        post(
            ROUTE,
            Some(with(&|c| {
                c.root = zkcredits_protocol::merkle::Root::from_field(random_fr())
            })),
            good.body.clone(),
        )
        .await,
        409,
        "stale_root",
    );
    expect(
        post(ROUTE, Some(with(&|c| c.key_id = 99)), good.body.clone()).await,
        400,
        "unknown_server_key",
    );
    expect(
        post(ROUTE, auth.clone(), vec![b' '; 4096]).await,
        413,
        "body_too_large",
    );
    // The same without a Content-Length (a streamed body): the limit stops the read
    // itself, and the unread rest closes the connection.
    let chunks = futures::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 512]))),
    );
    let chunked = gw
        .call(
            http::Request::post(ROUTE)
                .header(http::header::AUTHORIZATION, good.authorization.clone())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(chunks))
                .unwrap(),
        )
        .await;
    let (status, receipt, headers, json) = read_response(chunked).await;
    assert_eq!((status, code(&json)), (413, "body_too_large"));
    assert_eq!(receipt, None);
    assert!(closes(&headers), "{headers:?}");
    // Another body: the gateway's x differs from the proven one.
    expect(
        post(ROUTE, auth.clone(), body("other")).await,
        401,
        "invalid_proof",
    );
    // Another T_next than proven.
    expect(
        post(
            ROUTE,
            Some(with(&|c| c.next_commitment = Fr::from(5u64))),
            good.body.clone(),
        )
        .await,
        401,
        "invalid_proof",
    );
    // A proof for other deployment constants than the gateway's.
    let wrong = gw.notes[0].prove(
        &gw.tree,
        ROUTE,
        &body("good"),
        Limits {
            c_max: zkcredits_protocol::credits::Credits::new(999),
            p_max: zkcredits_protocol::credits::Credits::new(5000),
        },
        &test_server_key(),
    );
    expect(
        post(ROUTE, Some(wrong.authorization.clone()), wrong.body.clone()).await,
        401,
        "invalid_proof",
    );

    // Receipts by nullifier: malformed and unknown.
    let (status, json) = gw.get("/zkcredit/receipts/0x12").await;
    assert_eq!((status, code(&json)), (400, "malformed_nullifier"));
    let (status, json) = gw
        .get(&format!("/zkcredit/receipts/{}", good.nullifier_hex()))
        .await;
    assert_eq!((status, code(&json)), (404, "receipt_not_found"));

    // None of the refusals spent the ticket.
    let (status, receipt, json) = gw.send(&good).await;
    assert_eq!(status, 200, "{json}");
    assert!(receipt.is_some());
    gw.stop().await;
}
