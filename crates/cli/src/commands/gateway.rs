//! `zkcredits gateway`: run the provider's gateway from a `gateway.toml`, check a
//! configuration without starting it, or write a commented example configuration.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;
use zkcredits_gateway::config::{EXAMPLE, GatewayConfig};

/// Arguments of `zkcredits gateway`.
#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// The configuration file.
    #[arg(
        long,
        default_value = "gateway.toml",
        env = "ZKCREDITS_GATEWAY_CONFIG",
        global = true
    )]
    config: PathBuf,
    #[command(subcommand)]
    what: Option<GatewayCommand>,
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    /// Write a commented example `gateway.toml` covering every section and key (to
    /// standard output unless --out is given).
    InitConfig {
        /// Write the example to this file (refused if it exists).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Validate --config without starting the gateway or contacting the chain: every
    /// section, prices against the deployment's C_max, key files, the store URL. Prints
    /// the effective settings (secrets hidden) and every error with its FILE:LINE and
    /// key; exits non-zero when there is one.
    Check,
}

pub(crate) fn run(args: GatewayArgs) -> anyhow::Result<()> {
    match args.what {
        Some(GatewayCommand::InitConfig { out: None }) => {
            print!("{EXAMPLE}");
            return Ok(());
        }
        Some(GatewayCommand::InitConfig { out: Some(path) }) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .with_context(|| format!("cannot create {} (it must not exist)", path.display()))?;
            std::io::Write::write_all(&mut file, EXAMPLE.as_bytes())?;
            eprintln!("wrote {}", path.display());
            return Ok(());
        }
        Some(GatewayCommand::Check) => return check(&args.config),
        None => {}
    }
    let config = GatewayConfig::load(&args.config)
        .map_err(|e| {
            let code = e.code();
            crate::report::coded(e, code)
        })
        .context(
            "reading the gateway config (`zkcredits gateway init-config` prints an example)",
        )?;
    crate::dev::check_keys(&config.keys_dir, "the gateway")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let running = zkcredits_gateway::start(config, shutdown.clone())
            .await
            .map_err(|e| {
                let code = e.code();
                crate::report::coded(e, code)
            })
            .context("starting the gateway")?;
        println!("gateway listening on http://{}", running.addr);
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            eprintln!("shutting down: finishing requests in flight");
            signal.cancel();
        });
        running.wait().await.map_err(|e| {
            let code = e.code();
            crate::report::coded(e, code)
        })
    })
}

/// `zkcredits gateway check`.
fn check(path: &std::path::Path) -> anyhow::Result<()> {
    let report = zkcredits_gateway::check::check_file(path);
    if !report.effective.is_empty() {
        println!(
            "# effective settings of {} (defaults filled in, secrets not shown)",
            path.display()
        );
        print!("{}", report.effective_text());
    }
    for finding in &report.findings {
        eprintln!("error: {finding}");
    }
    match report.findings.len() {
        0 => {
            eprintln!("{}: ok", path.display());
            Ok(())
        }
        n => anyhow::bail!(
            "[config_invalid] {} has {n} error{}",
            path.display(),
            if n == 1 { "" } else { "s" }
        ),
    }
}

/// Ctrl-C or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
