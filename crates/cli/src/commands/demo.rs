//! `zkcredits demo`: the whole product on one machine, run as a user and a provider
//! would run it. Every service is this binary started as its own process with the
//! same commands the docs give (`dev-llm`, `gateway`, `proxy`, `wallet`, `deposit`,
//! `call`, `close`); only the chain is started in-process. The closing figures are
//! read back from the pool's events, not from anyone's bookkeeping.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Args;
use rand::SeedableRng;
use zkcredits_chain::alloy::primitives::{Address, U256};
use zkcredits_chain::alloy::signers::local::PrivateKeySigner;
use zkcredits_chain::anvil::dev_signer;
use zkcredits_chain::devnet::DEVNET_PROVIDER;
use zkcredits_chain::{Deployment, Ledger, PoolClient};
use zkcredits_client::home::ClientHome;
use zkcredits_protocol::eddsa::PrivateKey;

/// Arguments of `zkcredits demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// The Python interpreter that has the `openai` package (scripts/demo.sh makes one).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// The OpenAI SDK application the demo runs against the proxy.
    #[arg(long, default_value = "scripts/demo_client.py")]
    client_script: PathBuf,
    /// Chat completions made through the OpenAI SDK (one in four streamed).
    #[arg(long, default_value_t = 160)]
    llm_requests: usize,
    /// JSON-RPC calls made through the proxy's `/rpc`.
    #[arg(long, default_value_t = 60)]
    rpc_requests: usize,
    /// Notes in the user's wallet (requests in flight at once).
    #[arg(long, default_value_t = 4)]
    notes: u64,
    /// Credit units per note.
    #[arg(long, default_value_t = 100_000)]
    note_credits: u64,
}

/// Anvil dev accounts used by the demo's people (the provider is [`DEVNET_PROVIDER`]).
pub(crate) const USER_ACCOUNT: usize = 1;
const CHEATER_ACCOUNT: usize = 2;
/// The passphrase of the demo's throwaway wallets.
pub(crate) const DEMO_PASSPHRASE: &str = "zkcredits demo wallet, not a secret";
/// What the gateway's relay charges per close, credit units: a tenth of one request's
/// `C_max` (1,000 on the devnet).
const DEMO_RELAY_FEE: u64 = 100;

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let home = ClientHome::from_env();
    let dir = home.dir().to_owned();
    std::fs::create_dir_all(dir.join("logs"))?;
    let exe = std::env::current_exe().context("locating the zkcredits binary")?;
    let mut services = Services::default();

    section("keys");
    run_step(&exe, &["setup", "dev"], &[])?;

    section("chain: anvil with the pool and a test token");
    let deployment_path = home.devnet_deployment();
    let (anvil, deployment) = zkcredits_chain::devnet(&deployment_path, 0)
        .await
        .context("starting the devnet")?;
    println!("chain {} at {}", deployment.chain_id, anvil.url());
    println!("pool {}", deployment.pool);

    section("provider: a test LLM and the gateway in front of it and of the chain");
    let llm = free_port()?;
    services.start(
        &exe,
        &dir,
        "dev-llm",
        &["dev-llm", "--listen", &llm.to_string()],
    )?;
    wait_for_port(llm, Duration::from_secs(30))?;
    let gateway = free_port()?;
    let gateway_url = format!("http://{gateway}");
    let config = write_gateway_config(&dir, gateway, llm, &deployment, &deployment_path)?;
    services.start(
        &exe,
        &dir,
        "gateway",
        &["gateway", "--config", &config.to_string_lossy()],
    )?;
    wait_for_http(
        &format!("{gateway_url}/.well-known/zkcredits"),
        Duration::from_secs(60),
    )
    .await?;
    println!("gateway at {gateway_url} (config {})", config.display());

    section("user: wallet, deposit, local proxy");
    let user_key = hex_key(&dev_signer(USER_ACCOUNT));
    let user_env = [("ZKCREDITS_ETH_KEY", user_key.as_str())];
    run_step(&exe, &["wallet", "init"], &user_env)?;
    let credits = args.note_credits.to_string();
    let notes = args.notes.to_string();
    run_step(
        &exe,
        &["deposit", "--amount", &credits, "--notes", &notes],
        &user_env,
    )?;
    let proxy = free_port()?;
    services.start(
        &exe,
        &dir,
        "proxy",
        &[
            "proxy",
            "--listen",
            &proxy.to_string(),
            "--gateway",
            &gateway_url,
        ],
    )?;
    wait_for_port(proxy, Duration::from_secs(60))?;
    println!("proxy at http://{proxy}: any OpenAI SDK works with base_url http://{proxy}/v1");

    section("paid requests: the OpenAI Python SDK, unmodified, through the proxy");
    let started = Instant::now();
    let sdk = Command::new(&args.python)
        .arg(&args.client_script)
        .arg(format!("http://{proxy}/v1"))
        .arg(args.llm_requests.to_string())
        .arg("dev-model")
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", args.python.display()))?;
    ensure!(
        sdk.status.success(),
        "the OpenAI SDK client failed ({}); logs in {}",
        sdk.status,
        dir.join("logs").display()
    );
    let sdk_report: serde_json::Value = serde_json::from_slice(
        sdk.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap_or_default(),
    )
    .context("reading the SDK client's report")?;
    println!(
        "{} LLM requests ({} streamed) in {:.1} s",
        sdk_report["requests"],
        sdk_report["streamed"],
        started.elapsed().as_secs_f64()
    );

    section("paid requests: Ethereum JSON-RPC through the proxy");
    let started = Instant::now();
    let http = reqwest::Client::new();
    for n in 0..args.rpc_requests {
        let method = ["eth_blockNumber", "eth_chainId", "eth_gasPrice"][n % 3];
        let reply: serde_json::Value = http
            .post(format!("http://{proxy}/rpc"))
            .json(&serde_json::json!({"jsonrpc": "2.0", "id": n, "method": method, "params": []}))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("JSON-RPC call {n} through the proxy"))?
            .json()
            .await?;
        ensure!(reply.get("result").is_some(), "{method}: {reply}");
    }
    println!(
        "{} JSON-RPC calls in {:.1} s",
        args.rpc_requests,
        started.elapsed().as_secs_f64()
    );

    section("a cheater restores an old journal backup and deliberately spends one ticket twice");
    let cheater_k = double_spend(&exe, &dir, &gateway_url, &deployment).await?;
    let watcher = PoolClient::connect(&deployment, dev_signer(DEVNET_PROVIDER)).await?;
    let nc = zkcredits_protocol::note::NoteSecret::from_field(cheater_k).close_nullifier();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !watcher.closed_or_slashed(nc).await? {
        ensure!(
            Instant::now() < deadline,
            "the gateway did not slash the double spender within a minute; see {}",
            dir.join("logs/gateway.log").display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("the gateway recovered the note's secret from the two shares and slashed it on chain");

    section(
        "close: the gateway relays the user's closes (the deposit account sends nothing) to a fresh address",
    );
    services.stop("proxy");
    let payout = PrivateKeySigner::random().address();
    run_step(
        &exe,
        &[
            "close",
            "--gateway",
            &gateway_url,
            "--to",
            &payout.to_string(),
            "--all",
        ],
        &user_env,
    )?;

    section("where the money went (read from the pool's events)");
    let paid_requests = admitted(&gateway_url).await?;
    let ledger = watcher.ledger(deployment.deploy_block).await?;
    services.stop_all();
    drop(anvil);
    report(&ledger, paid_requests, &deployment, payout)
}

/// Deposits one note for a second wallet, makes one paid call, restores the journal
/// from before that call and calls again: the same ticket index with another request.
/// An honest client would notice (it asks the gateway whether a note's next ticket is
/// spent before using it, and moves the restored note forward); the cheater turns that
/// check off on purpose with the hidden `call --i-want-to-double-spend`.
/// Returns the cheater's note secret (to watch for the slash).
async fn double_spend(
    exe: &Path,
    dir: &Path,
    gateway_url: &str,
    deployment: &Deployment,
) -> anyhow::Result<zkcredits_protocol::Fr> {
    let home = ClientHome::new(dir.join("cheater"));
    std::fs::create_dir_all(home.dir())?;
    let key = hex_key(&dev_signer(CHEATER_ACCOUNT));
    let home_dir = home.dir().to_string_lossy().into_owned();
    let env = [
        ("ZKCREDITS_ETH_KEY", key.as_str()),
        ("ZKCREDITS_HOME", home_dir.as_str()),
    ];
    deployment.save(&home.devnet_deployment())?;
    run_step(exe, &["wallet", "init"], &env)?;
    run_step(exe, &["deposit", "--amount", "10000", "--notes", "1"], &env)?;
    let journal = home.journal(deployment);
    let backup = dir.join("cheater-journal-backup");
    copy_sqlite(&journal, &backup)?;
    let call = |method: &'static str, cheat: bool| {
        let mut cmd = Command::new(exe);
        cmd.arg("--dev")
            .args(["call", "--gateway", gateway_url, "--rpc", method])
            .args(cheat.then_some("--i-want-to-double-spend"))
            .envs(env)
            .env("ZKCREDITS_PASSPHRASE", DEMO_PASSPHRASE)
            .env("ZKCREDITS_KEYS", keys_dir());
        cmd
    };
    let first = call("eth_blockNumber", false).output()?;
    ensure!(
        first.status.success(),
        "the cheater's honest call failed: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    println!("honest call on ticket 0: paid");
    copy_sqlite(&backup, &journal)?;
    let second = call("eth_chainId", true).output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr)
    );
    ensure!(
        !second.status.success() && said.contains("double_spend"),
        "the second use of ticket 0 was not refused as a double spend: {said}"
    );
    println!(
        "second call on ticket 0 from the restored journal, position check turned off: refused, 409 double_spend"
    );
    let wallet = zkcredits_client::wallet::Wallet::load(&home.wallet(), DEMO_PASSPHRASE)?;
    Ok(wallet.seed().note_secret(0).expose())
}

/// Copies an SQLite database that no process has open, with its WAL files.
fn copy_sqlite(from: &Path, to: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let src = PathBuf::from(format!("{}{suffix}", from.display()));
        let dst = PathBuf::from(format!("{}{suffix}", to.display()));
        if src.exists() {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        } else if dst.exists() {
            std::fs::remove_file(&dst)?;
        }
    }
    Ok(())
}

/// The gateway's count of admitted paid requests, from its Prometheus metrics.
async fn admitted(gateway_url: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{gateway_url}/metrics"))
        .await?
        .error_for_status()?
        .text()
        .await?;
    let value = text
        .lines()
        .find(|l| l.starts_with("zkcredits_admitted_total"))
        .and_then(|l| l.split_whitespace().last())
        .context("the gateway's metrics have no zkcredits_admitted_total")?;
    Ok(value.parse::<f64>()? as u64)
}

fn report(
    ledger: &Ledger,
    paid_requests: u64,
    deployment: &Deployment,
    payout: Address,
) -> anyhow::Result<()> {
    let unit = deployment.constants.unit;
    let credits = |v: U256| v / unit;
    println!("{:<34}{:>26}{:>14}", "", "token base units", "credits");
    for (name, value) in [
        ("deposited", ledger.deposited),
        ("to users (close payouts)", ledger.to_users),
        ("to the provider", ledger.to_provider),
        ("burned (policy penalties)", ledger.burned),
        ("to slashers (bounties)", ledger.to_slashers),
        ("to the close relay (fees)", ledger.to_relayers),
        ("still held by the pool", ledger.held),
    ] {
        println!("{name:<34}{value:>26}{:>14}", credits(value));
    }
    println!("user payout address: {payout}; paid requests admitted: {paid_requests}");
    ensure!(
        ledger.balances(),
        "the parts do not add up to the deposits: {ledger:?}"
    );
    println!("the parts add up to the deposits");
    let line = serde_json::json!({
        "deposited": as_u128(ledger.deposited)?,
        "to_users": as_u128(ledger.to_users)?,
        "to_provider": as_u128(ledger.to_provider)?,
        "burned": as_u128(ledger.burned)?,
        "to_slashers": as_u128(ledger.to_slashers)?,
        "to_relayers": as_u128(ledger.to_relayers)?,
        "held": as_u128(ledger.held)?,
        "paid_requests": paid_requests,
    });
    println!("{line}");
    Ok(())
}

fn as_u128(v: U256) -> anyhow::Result<u128> {
    u128::try_from(v).context("amount above 2^128")
}

pub(crate) fn write_gateway_config(
    dir: &Path,
    listen: SocketAddr,
    llm: SocketAddr,
    deployment: &Deployment,
    deployment_path: &Path,
) -> anyhow::Result<PathBuf> {
    let secrets = dir.join("provider");
    zkcredits_client::wallet::create_private_dir(&secrets)?;
    let server_key = PrivateKey::generate(&mut rand_chacha::ChaCha20Rng::from_entropy());
    let server_key_file = secrets.join("receipt-key.hex");
    zkcredits_client::wallet::write_private_atomic(
        &server_key_file,
        hex::encode(server_key.to_bytes()).as_bytes(),
    )?;
    let provider_key_file = secrets.join("provider-eth-key.hex");
    zkcredits_client::wallet::write_private_atomic(
        &provider_key_file,
        hex_key(&dev_signer(DEVNET_PROVIDER)).as_bytes(),
    )?;
    let keys_dir = keys_dir();
    let config = format!(
        r#"# Written by `zkcredits demo`.
listen = "{listen}"
deployment = "{deployment}"
keys_dir = "{keys}"
store = "sqlite:{store}"

[provider]
key_file = "{provider_key}"

[server_keys.current]
id = 1
file = "{server_key}"

[chain]
roots_poll_ms = 500
slash_poll_ms = 500

[relay]
fee = {relay_fee}

[openai]
base_url = "http://{llm}/v1"

[openai.models.dev-model]
input_per_1k = 1000
output_per_1k = 2000

[jsonrpc]
url = "{rpc}"
prefix = "/rpc"

[jsonrpc.prices]
eth_blockNumber = 10
eth_chainId = 10
eth_gasPrice = 10
"#,
        deployment = deployment_path.display(),
        keys = keys_dir.display(),
        store = secrets.join("gateway.sqlite").display(),
        provider_key = provider_key_file.display(),
        server_key = server_key_file.display(),
        rpc = deployment.rpc_url,
        relay_fee = DEMO_RELAY_FEE,
    );
    let path = secrets.join("gateway.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// The key directory every process of the demo shares (the cheater has another home).
fn keys_dir() -> PathBuf {
    crate::paths::default_keys()
}

pub(crate) fn hex_key(signer: &PrivateKeySigner) -> String {
    hex::encode(signer.to_bytes())
}

fn section(title: &str) {
    println!("\n== {title}");
}

/// Runs one `zkcredits` command to completion, its output shown.
pub(crate) fn run_step(exe: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    println!("$ zkcredits --dev {}", args.join(" "));
    let status = Command::new(exe)
        .arg("--dev")
        .args(args)
        .envs(env.iter().copied())
        .env("ZKCREDITS_PASSPHRASE", DEMO_PASSPHRASE)
        .env("ZKCREDITS_KEYS", keys_dir())
        .status()
        .with_context(|| format!("starting zkcredits {}", args.join(" ")))?;
    ensure!(
        status.success(),
        "zkcredits {} failed ({status})",
        args.join(" ")
    );
    Ok(())
}

/// Background services, stopped (SIGKILL) when dropped.
#[derive(Default)]
pub(crate) struct Services(Vec<(String, Child)>);

impl Services {
    fn start(&mut self, exe: &Path, dir: &Path, name: &str, args: &[&str]) -> anyhow::Result<()> {
        self.start_with(exe, dir, name, args, &[])
    }

    /// Starts `zkcredits --dev ARGS` with `env` on top of the demo's environment, its
    /// output in `DIR/logs/NAME.log`.
    pub(crate) fn start_with(
        &mut self,
        exe: &Path,
        dir: &Path,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let log = std::fs::File::create(dir.join("logs").join(format!("{name}.log")))?;
        println!(
            "$ zkcredits --dev {} &   (log: logs/{name}.log)",
            args.join(" ")
        );
        let child = Command::new(exe)
            .arg("--dev")
            .args(args)
            .env("ZKCREDITS_PASSPHRASE", DEMO_PASSPHRASE)
            .env("ZKCREDITS_KEYS", keys_dir())
            .env("ZKCREDITS_LOG", "info")
            .envs(env.iter().copied())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting zkcredits {name}"))?;
        self.0.push((name.to_owned(), child));
        Ok(())
    }

    fn stop(&mut self, name: &str) {
        if let Some(i) = self.0.iter().position(|(n, _)| n == name) {
            let (_, mut child) = self.0.remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn stop_all(&mut self) {
        while let Some((name, _)) = self.0.last() {
            let name = name.clone();
            self.stop(&name);
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

pub(crate) fn wait_for_port(addr: SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after {limit:?}; see the logs");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

pub(crate) async fn wait_for_http(url: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(r) = reqwest::get(url).await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer within {limit:?}; see the logs");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
