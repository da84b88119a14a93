//! An `https://` upstream: a local TLS server whose certificate a test CA (made here)
//! issued, behind a gateway started from a real `gateway.toml` (the path the binary
//! takes). With the CA in `[tls] ca_file` a paid request is served; without it the
//! gateway answers 502 `upstream_failed` saying the certificate is not trusted, with a
//! receipt refunding all of `C_max`. The chain RPC goes through an https:// proxy the
//! same CA covers (and a gateway without the CA cannot start on it). Needs `npm ci` in
//! `contracts/` (anvil).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use zkcredits_chain::Deployment;
use zkcredits_chain::testing::{PROVIDER, test_server_key};
use zkcredits_gateway::config::GatewayConfig;

use crate::common::*;

/// A test CA and a server certificate for `127.0.0.1` and `localhost` it issued.
struct TestPki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn test_pki() -> TestPki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "zkcredits test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "test upstream");
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();

    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone()], key)
        .unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
    }
}

/// Accepts TCP connections and completes the TLS handshake before handing them to axum;
/// a client that refuses the certificate just ends its connection.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// An https:// upstream answering `{"echo": <body length>, "tls": true}`.
async fn start_tls_upstream(server: Arc<rustls::ServerConfig>) -> SocketAddr {
    let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
        axum::Json(serde_json::json!({ "echo": body.len(), "tls": true }))
    });
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(server),
    };
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// An https:// JSON-RPC endpoint in front of the plain-http node at `node`: the chain
/// RPC behind the private CA.
async fn start_tls_rpc_proxy(server: Arc<rustls::ServerConfig>, node: String) -> SocketAddr {
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let (http, node) = (http.clone(), node.clone());
        async move {
            let answer = http
                .post(node)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            ([("content-type", "application/json")], answer)
        }
    });
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(server),
    };
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A `gateway.toml` (and the files it names) in `dir` for the fixture's pool, with one
/// flat route to `upstream`, trusting `ca_file` when given, reading the chain through
/// `rpc_url` when given.
fn write_config(
    dir: &Path,
    deployment: &Deployment,
    upstream: &str,
    ca_file: Option<&Path>,
    rpc_url: Option<&str>,
) -> PathBuf {
    deployment.save(&dir.join("deployment.json")).unwrap();
    let provider = zkcredits_chain::anvil::dev_signer(PROVIDER);
    std::fs::write(dir.join("provider.key"), hex::encode(provider.to_bytes())).unwrap();
    std::fs::write(
        dir.join("receipt-1.key"),
        hex::encode(test_server_key().to_bytes()),
    )
    .unwrap();
    let tls = match ca_file {
        Some(path) => format!("[tls]\nca_file = {:?}\n", path.display().to_string()),
        None => String::new(),
    };
    let rpc_url = rpc_url.map_or(String::new(), |url| format!("rpc_url = {url:?}\n"));
    let text = format!(
        r#"listen = "127.0.0.1:0"
{rpc_url}deployment = "deployment.json"
keys_dir = {keys:?}
store = "sqlite:gateway.db"

[provider]
key_file = "provider.key"

[server_keys]
current = {{ id = {KEY_ID}, file = "receipt-1.key" }}

[chain]
roots_poll_ms = 200
duties = false

{tls}
[[flat]]
prefix = "{ROUTE}"
base_url = "{upstream}"
price = {PRICE}
timeout_secs = 5
"#,
        keys = keys_dir().display().to_string(),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_is_served_with_the_private_ca_and_refused_without_it() {
    let mut fx = Fixture::start(2, 20_000).await;
    let pki = test_pki();
    let upstream = start_tls_upstream(Arc::clone(&pki.server)).await;
    let base_url = format!("https://127.0.0.1:{}", upstream.port());
    let server = test_server_key();
    let http = reqwest::Client::new();
    let limits = fx.limits();
    let tree = fx.tree().await;

    // With the test CA in [tls] ca_file: served over TLS and charged the price, and the
    // chain read (roots, key acceptance) through an https:// RPC URL the same CA covers.
    let trusted = tempfile::tempdir().unwrap();
    let ca = trusted.path().join("test-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let rpc = start_tls_rpc_proxy(Arc::clone(&pki.server), fx.deployment().rpc_url.clone()).await;
    let rpc_url = format!("https://localhost:{}", rpc.port());
    let config = write_config(
        trusted.path(),
        fx.deployment(),
        &base_url,
        Some(&ca),
        Some(&rpc_url),
    );
    // `gateway check` accepts it and shows the CA file.
    let report = zkcredits_gateway::check::check_file(&config);
    assert!(report.ok(), "{:?}", report.findings);
    assert!(
        report.effective_text().contains("tls.ca_file = "),
        "{}",
        report.effective_text()
    );
    let shutdown = CancellationToken::new();
    let running = zkcredits_gateway::start(GatewayConfig::load(&config).unwrap(), shutdown.clone())
        .await
        .unwrap();
    let url = format!("http://{}", running.addr);
    let note = &mut fx.notes[0];
    let paid = note.prove(&tree, &format!("{ROUTE}/v1/x"), b"{}", limits, &server);
    let (status, receipt, json) = send(&http, &url, &paid).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["tls"], true, "{json}");
    let receipt = decode_receipt(&receipt.expect("a receipt"));
    assert_eq!(receipt.refund.get(), limits.c_max.get() - PRICE);
    shutdown.cancel();
    running.wait().await.unwrap();

    // Without it: the platform's roots do not know the test CA.
    let untrusted = tempfile::tempdir().unwrap();
    // Its chain RPC over https:// cannot be trusted either: the gateway does not start.
    let config = write_config(
        untrusted.path(),
        fx.deployment(),
        &base_url,
        None,
        Some(&rpc_url),
    );
    let e = zkcredits_gateway::start(
        GatewayConfig::load(&config).unwrap(),
        CancellationToken::new(),
    )
    .await
    .expect_err("an untrusted RPC");
    assert_eq!(e.code(), "chain_unavailable", "{e}");
    let config = write_config(untrusted.path(), fx.deployment(), &base_url, None, None);
    let shutdown = CancellationToken::new();
    let running = zkcredits_gateway::start(GatewayConfig::load(&config).unwrap(), shutdown.clone())
        .await
        .unwrap();
    let url = format!("http://{}", running.addr);
    let note = &mut fx.notes[1];
    let paid = note.prove(&tree, &format!("{ROUTE}/v1/x"), b"{}", limits, &server);
    let (status, receipt, json) = send(&http, &url, &paid).await;
    assert_eq!((status, code(&json)), (502, "upstream_failed"), "{json}");
    let message = json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("certificate"), "{message}");
    assert!(message.contains("[tls] ca_file"), "{message}");
    let receipt = decode_receipt(&receipt.expect("a refund receipt"));
    assert_eq!(receipt.refund.get(), limits.c_max.get(), "refunded in full");
    shutdown.cancel();
    running.wait().await.unwrap();
}
