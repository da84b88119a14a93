//! `zkcredits dev-llm`: the deterministic OpenAI-compatible server that the demo and the
//! tests use as the LLM behind the gateway. Not a language model: same prompt, same
//! answer, with exact token counts.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;

/// Arguments of `zkcredits dev-llm`.
#[derive(Debug, Args)]
pub(crate) struct DevLlmArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
}

pub(crate) fn run(args: DevLlmArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (addr, server) = zkcredits_gateway::dev_llm::spawn_dev_llm(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        println!("dev LLM listening on http://{addr}/v1");
        println!(
            "models: {} (dev-cut breaks streams, dev-error answers 500, dev-slow waits)",
            zkcredits_gateway::dev_llm::MODELS.join(", ")
        );
        println!("press Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
        server.abort();
        Ok(())
    })
}
