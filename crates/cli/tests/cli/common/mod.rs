//! Shared by the CLI's test binaries: the development keys and the receipt key the
//! provider registers on the pool.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::{Command, Output};

use zkcredits_chain::testing::{PROVIDER, TestChain, test_server_key};

/// The development keys (request and close), made once per machine
/// ([`zkcredits_circuits::testing::dev_keys_dir`]).
pub fn keys_dir() -> PathBuf {
    zkcredits_circuits::testing::dev_keys_dir().to_path_buf()
}

/// The provider makes the pool accept the test receipt key, as a gateway started with
/// `accept_server_key` does; the client refuses to spend under a key the pool does not
/// accept.
pub async fn accept_test_key(chain: &TestChain) {
    chain
        .client(PROVIDER)
        .await
        .expect("provider client")
        .accept_server_key(test_server_key().public_key())
        .await
        .expect("acceptServerKey");
}

/// Runs `cmd` (the `zkcredits` binary with the caller's environment) with `args` to
/// completion and echoes the command line and everything it printed, so that a failing
/// test shows what the binary said.
pub fn run_echoed(cmd: &mut Command, args: &[&str]) -> Output {
    let out = cmd.args(args).output().expect("zkcredits runs");
    eprintln!(
        "$ zkcredits {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A gateway in this process for `deployment`: the test receipt key, an SQLite store in
/// `dir`, the chain's JSON-RPC behind `/rpc` at `rpc_price` per call, roots from the
/// chain. `tune` adds what a test needs (the provider key, the relay).
pub async fn start_gateway(
    deployment: &zkcredits_chain::Deployment,
    dir: &std::path::Path,
    rpc_price: u64,
    tune: impl FnOnce(zkcredits_gateway::GatewayBuilder) -> zkcredits_gateway::GatewayBuilder,
) -> (
    String,
    tokio_util::sync::CancellationToken,
    zkcredits_gateway::RunningGateway,
) {
    use std::sync::Arc;
    use std::time::Duration;

    use zkcredits_gateway::keys::ServerKeys;
    use zkcredits_gateway::store::sqlite::SqliteStore;
    use zkcredits_gateway::upstream::flat::{FlatConfig, FlatUpstream};
    use zkcredits_gateway::{GatewayBuilder, RootsSource, Settings};

    let rpc = FlatUpstream::new(
        &FlatConfig {
            prefix: "/rpc".into(),
            base_url: deployment.rpc_url.clone(),
            price: rpc_price,
            timeout_secs: Some(10),
        },
        deployment.constants.c_max.get(),
        Duration::from_secs(10),
    )
    .expect("flat upstream");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let builder = GatewayBuilder::new(
        deployment.clone(),
        zkcredits_circuits::keys::load_verifying_key(&keys_dir()).expect("verifying key"),
        ServerKeys::new(1, test_server_key(), Vec::new()),
        Arc::new(SqliteStore::open(dir.join("gateway.sqlite")).expect("store")),
    )
    .settings(Settings {
        roots_poll: Duration::from_millis(200),
        ..Settings::default()
    })
    .route("/rpc", Arc::new(rpc))
    .roots(RootsSource::Chain(zkcredits_chain::IndexerConfig::default()));
    let gateway = tune(builder)
        .start(
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind"),
            shutdown.clone(),
        )
        .await
        .expect("gateway starts");
    (format!("http://{}", gateway.addr), shutdown, gateway)
}
