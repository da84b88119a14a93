//! `zkcredits proxy`: the local OpenAI-compatible proxy in front of a gateway.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use zkcredits_client::payer::PayerConfig;
use zkcredits_client::proxy::{ProxyConfig, serve_proxy};

use super::session::{self, GatewayArgs};

/// Arguments of `zkcredits proxy`.
#[derive(Debug, Args)]
pub(crate) struct ProxyArgs {
    /// Where applications connect (keep it on loopback: anyone who reaches it spends
    /// your notes).
    #[arg(long, default_value = "127.0.0.1:8788")]
    listen: SocketAddr,
    #[command(flatten)]
    gateway: GatewayArgs,
    /// The gateway's JSON-RPC route, where the proxy's `/rpc` goes [default: the
    /// route the gateway publishes for JSON-RPC, else /rpc].
    #[arg(long)]
    rpc_path: Option<String>,
    /// Seconds to keep asking the gateway for the receipt of a ticket that a crash left
    /// in flight before the note is marked for a close (the gateway may still be
    /// answering it).
    #[arg(long, default_value_t = 20)]
    recover_wait_secs: u64,
}

/// Waits at most this long in total, in growing steps.
pub(crate) fn recovery_waits(total_secs: u64) -> Vec<Duration> {
    let mut waits = Vec::new();
    let mut spent = 0;
    let mut step = 1;
    while spent < total_secs {
        let s = step.min(total_secs - spent);
        waits.push(Duration::from_secs(s));
        spent += s;
        step = (step * 2).min(8);
    }
    waits
}

pub(crate) fn run(args: ProxyArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.rpc_path {
        anyhow::ensure!(path.starts_with('/'), "--rpc-path must start with /");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let session = session::open(&args.gateway, PayerConfig::default()).await?;
        // Listen first: tickets a crash left in flight are recovered in the background
        // and their notes are busy until then, so a gateway that is slow or down does
        // not keep the applications waiting for the proxy.
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let local = listener.local_addr()?;
        let recovering = session
            .payer
            .recover_in_background(&recovery_waits(args.recover_wait_secs))
            .await
            .context("recovering tickets left in flight")?;
        let rules = &session.discovery.rules;
        let config = ProxyConfig {
            rpc_path: args
                .rpc_path
                .or_else(|| rules.jsonrpc_prefix().map(str::to_owned))
                .unwrap_or_else(|| "/rpc".to_owned()),
            models: rules.models(),
            ..ProxyConfig::default()
        };
        let notes = session.payer.spender().notes().await?;
        println!(
            "zkcredits proxy listening on http://{local}/v1 (OpenAI) and http://{local}/rpc, paying {}; notes: {}",
            session.payer.gateway().base_url(),
            super::notes::tally(&notes)
        );
        if recovering > 0 {
            println!(
                "recovering the receipts of {recovering} ticket(s) left in flight in the background; their notes are busy until then"
            );
        }
        // Then every free note's next ticket is precomputed in the background, so the
        // first requests find their proofs ready.
        let positions = async {
            let checked = session::check_positions(&session.payer).await;
            if let Err(e) = session.payer.spender().prepare_tickets().await {
                eprintln!("cannot precompute the notes' next tickets ({e}); requests prove");
            }
            checked
        };
        let served = serve_proxy(listener, config, session.payer.clone(), shutdown_signal());
        let (checked, served) = tokio::join!(positions, served);
        if let Err(e) = checked {
            eprintln!("{e:#}");
        }
        served?;
        println!("proxy stopped; every request in flight was settled");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_waits_add_up_to_the_total() {
        for total in [0, 1, 5, 20, 100] {
            let w = recovery_waits(total);
            assert_eq!(w.iter().map(Duration::as_secs).sum::<u64>(), total);
        }
    }
}
