//! `zkcredits`: one binary for every role. This file only parses the command line and
//! dispatches; each command lives in `commands/`.

mod commands;
mod dev;
mod keystore;
mod paths;
mod report;

use clap::{Parser, Subcommand};

/// Anonymous prepaid API credits: deposit once, make unlinkable paid requests.
#[derive(Debug, Parser)]
#[command(name = "zkcredits", version, about)]
// Without `dev`, the default `about` (the package description) would name commands this
// build leaves out.
#[cfg_attr(
    not(feature = "dev"),
    command(
        about = "The zkcredits command: keys (development, or a snarkjs ceremony's), deploy, the gateway and the client (join, wallet, deposit, proxy, call, close)."
    )
)]
struct Cli {
    /// Accept development keys from a public seed: anyone can forge proofs with them.
    /// For local devnets, the demo and tests only; never with real money.
    #[arg(long, global = true)]
    dev: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The proving and verifying keys: development keys, or a snarkjs ceremony's
    /// (export the circuits, import the final keys; docs/CEREMONY.md).
    Setup(commands::setup::SetupArgs),
    #[cfg(feature = "dev")]
    /// Measure performance on this machine; prints a JSON object as the last line.
    Bench(commands::bench::BenchArgs),
    #[cfg(feature = "dev")]
    /// Start a local chain (anvil) with the pool and a test token deployed.
    Devnet(commands::devnet::DevnetArgs),
    /// Deploy the pool to any EVM chain, signing with an encrypted keystore: prints the
    /// addresses and gas first (--dry-run stops there), verifies the code after.
    Deploy(Box<commands::deploy::DeployArgs>),
    #[cfg(feature = "dev")]
    /// Serve a deterministic OpenAI-compatible test LLM (for the demo and tests).
    DevLlm(commands::dev_llm::DevLlmArgs),
    /// Join a pool with its gateway's URL: the deployment it publishes is checked against
    /// the chain through your own node, then saved for every other command.
    Join(commands::join::JoinArgs),
    /// Create, show or export the encrypted wallet.
    Wallet(commands::wallet::WalletArgs),
    /// Deposit notes into the pool (approve + depositMany) and record them.
    Deposit(commands::deposit::DepositArgs),
    /// List the wallet's notes: balance, next ticket index, expiry, status.
    Notes(commands::notes::NotesArgs),
    /// Rebuild the pool's note tree from its events.
    Sync(commands::sync::SyncArgs),
    /// Serve a local OpenAI-compatible (and JSON-RPC) proxy that pays a gateway per
    /// request.
    Proxy(commands::proxy::ProxyArgs),
    /// Make one paid request and print the answer and the note's new balance.
    Call(commands::call::CallArgs),
    /// Withdraw notes: cooperatively (paid at once) or unilaterally (then --finalize).
    Close(commands::close::CloseArgs),
    /// Run the provider's gateway (`gateway init-config` prints an example config).
    Gateway(commands::gateway::GatewayArgs),
    #[cfg(feature = "dev")]
    /// The whole product on one machine: chain, gateway, wallet, proxy, 200+ paid requests
    /// from the OpenAI SDK and JSON-RPC, a double spend slashed, closes, and where the
    /// money went. Run it through scripts/demo.sh, which installs what it needs.
    Demo(commands::demo::DemoArgs),
}

/// arkworks opens an info-level span (targets `gr1cs` and `r1cs`) around every
/// allocated variable and formats the whole constraint system into some of them: with
/// `ZKCREDITS_LOG=info` one proof would spend minutes printing. They never carry anything
/// an operator needs, so they are off unless named explicitly.
fn silence_constraint_spans(
    filter: tracing_subscriber::EnvFilter,
) -> tracing_subscriber::EnvFilter {
    let named = std::env::var("ZKCREDITS_LOG").unwrap_or_default();
    ["gr1cs", "r1cs"]
        .into_iter()
        .filter(|target| !named.contains(target))
        .filter_map(|target| format!("{target}=off").parse().ok())
        .fold(filter, |f, directive| f.add_directive(directive))
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZKCREDITS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(silence_constraint_spans(filter))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    dev::set(cli.dev);
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", report::report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Setup(args) => commands::setup::run(args),
        #[cfg(feature = "dev")]
        Command::Bench(args) => commands::bench::run(args),
        #[cfg(feature = "dev")]
        Command::Devnet(args) => commands::devnet::run(args),
        Command::Deploy(args) => commands::deploy::run(*args),
        #[cfg(feature = "dev")]
        Command::DevLlm(args) => commands::dev_llm::run(args),
        Command::Join(args) => commands::join::run(args),
        Command::Wallet(args) => commands::wallet::run(args),
        Command::Deposit(args) => commands::deposit::run(args),
        Command::Notes(args) => commands::notes::run(args),
        Command::Sync(args) => commands::sync::run(args),
        Command::Proxy(args) => commands::proxy::run(args),
        Command::Call(args) => commands::call::run(args),
        Command::Close(args) => commands::close::run(args),
        Command::Gateway(args) => commands::gateway::run(args),
        #[cfg(feature = "dev")]
        Command::Demo(args) => commands::demo::run(args),
    }
}
