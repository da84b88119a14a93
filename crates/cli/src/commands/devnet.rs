//! `zkcredits devnet`: a local chain for development and the demo.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Arguments of `zkcredits devnet`.
#[derive(Debug, Args)]
pub(crate) struct DevnetArgs {
    /// Where to write the deployment JSON [default: $ZKCREDITS_HOME/devnet.json].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Port for anvil's JSON-RPC (0 picks a free one).
    #[arg(long, default_value_t = 8545)]
    port: u16,
}

pub(crate) fn run(args: DevnetArgs) -> anyhow::Result<()> {
    let out = args
        .out
        .unwrap_or_else(|| crate::paths::home().join("devnet.json"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (anvil, deployment) = zkcredits_chain::devnet(&out, args.port)
            .await
            .context("starting the devnet (anvil comes from `npm ci` in contracts/)")?;
        println!("anvil listening on {}", anvil.url());
        println!("pool {} token {}", deployment.pool, deployment.token);
        println!("deployment written to {}", out.display());
        println!("press Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
        drop(anvil);
        Ok(())
    })
}
