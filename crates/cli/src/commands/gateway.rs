//! `zkcredits gateway`: run the provider's gateway from a `gateway.toml`, or print a
//! commented example configuration.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;
use zkcredits_gateway::config::{EXAMPLE, GatewayConfig};

/// Arguments of `zkcredits gateway`.
#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// The configuration file.
    #[arg(long, default_value = "gateway.toml", env = "ZKCREDITS_GATEWAY_CONFIG")]
    config: PathBuf,
    #[command(subcommand)]
    what: Option<GatewayCommand>,
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    /// Print a commented example `gateway.toml`.
    InitConfig,
}

pub(crate) fn run(args: GatewayArgs) -> anyhow::Result<()> {
    if let Some(GatewayCommand::InitConfig) = args.what {
        print!("{EXAMPLE}");
        return Ok(());
    }
    let config = GatewayConfig::load(&args.config).map_err(|e| {
        anyhow::anyhow!(
            "[{}] {e} (`zkcredits gateway init-config` prints an example)",
            e.code()
        )
    })?;
    crate::dev::check_keys(&config.keys_dir, "the gateway")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let running = zkcredits_gateway::start(config, shutdown.clone())
            .await
            .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))
            .context("starting the gateway")?;
        println!("gateway listening on http://{}", running.addr);
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            eprintln!("shutting down: finishing requests in flight");
            signal.cancel();
        });
        running
            .wait()
            .await
            .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))
    })
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
