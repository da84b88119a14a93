//! `zkcredits join URL --rpc URL`: join a pool with nothing but its gateway's address.
//!
//! The gateway's discovery document carries the deployment (chain, pool, deployment
//! block, token, constants, verifier) without an RPC URL. Nothing in it is trusted: it
//! is checked against the chain through the user's own node, as is the receipt key the
//! gateway signs with, and the request verifying key it publishes must be the one the
//! user's keys make. Only then is the deployment saved (with the user's RPC URL) where
//! every other command finds it, with the discovery document beside it.

use anyhow::{Context, bail, ensure};
use clap::Args;
use zkcredits_chain::alloy::providers::Provider;
use zkcredits_chain::alloy::signers::local::PrivateKeySigner;
use zkcredits_chain::deploy::ContractCode;
use zkcredits_chain::{Deployment, PoolClient};
use zkcredits_client::home::ClientHome;

use super::session::{self, GatewayArgs};

/// Arguments of `zkcredits join`.
#[derive(Debug, Args)]
pub(crate) struct JoinArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Your own JSON-RPC node for the pool's chain: everything the gateway says is
    /// checked through it, and the client reads the chain through it from now on.
    #[arg(long, env = "ZKCREDITS_RPC")]
    rpc: String,
}

pub(crate) fn run(args: JoinArgs) -> anyhow::Result<()> {
    let home = ClientHome::from_env();
    crate::dev::check_keys(&home.keys(), "the client")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(join(&home, &args))
}

async fn join(home: &ClientHome, args: &JoinArgs) -> anyhow::Result<()> {
    let gateway = session::gateway_client(&args.gateway)?;
    let discovery = gateway
        .discover()
        .await
        .with_context(|| format!("reading the discovery document of {}", args.gateway.gateway))?;
    let published = discovery.deployment.clone();
    let constants = &discovery.constants;
    ensure!(
        published.pool == constants.pool && published.chain_id == constants.chain_id,
        "the gateway's discovery document contradicts itself (pool or chain id)"
    );

    // The chain, through the user's node, has the final word.
    let on_chain = Deployment::from_chain(&args.rpc, published.pool, published.deploy_block)
        .await
        .with_context(|| format!("reading the pool {} through {}", published.pool, args.rpc))?;
    let differs = |what: &str| {
        anyhow::anyhow!(
            "the gateway's deployment says another {what} than the chain does through {}: refusing to join",
            args.rpc
        )
    };
    if on_chain.chain_id != published.chain_id {
        return Err(differs("chain id"));
    }
    if on_chain.token != published.token {
        return Err(differs("token"));
    }
    if on_chain.constants != published.constants {
        return Err(differs("set of pool constants"));
    }
    if on_chain.close_verifier != published.close_verifier {
        return Err(differs("close verifier"));
    }
    let provider = zkcredits_chain::rpc::read_provider(&args.rpc)?;
    let code = provider.get_code_at(published.pool).await?;
    if let Some(why) = ContractCode::pool().mismatch(&code) {
        bail!(
            "the contract at {} is not the zkcredits pool this client knows ({why}): refusing to join",
            published.pool
        );
    }
    if published.deploy_block > 0 {
        let before = provider
            .get_code_at(published.pool)
            .block_id((published.deploy_block - 1).into())
            .await
            .unwrap_or_default();
        ensure!(
            before.is_empty(),
            "the pool already existed before block {}, so the published deployment block is wrong",
            published.deploy_block
        );
    }

    // The receipt key must be one closes can name, and the gateway must verify the
    // proofs the user's keys make.
    let deployment = Deployment {
        rpc_url: args.rpc.clone(),
        ..on_chain
    };
    let reader = PoolClient::connect(&deployment, PrivateKeySigner::random()).await?;
    ensure!(
        reader
            .server_key_accepted(constants.current_key.key)
            .await?,
        "the pool does not accept the gateway's receipt key {}: closes could not name it; refusing to join",
        constants.current_key.id
    );
    let ours = zkcredits_circuits::keys::load_verifying_key(&home.keys())
        .with_context(|| format!("loading the request keys from {}", home.keys().display()))?;
    let ours = zkcredits_circuits::keys::verifying_key_hash(&ours);
    ensure!(
        constants.verifying_key_hash == Some(ours),
        "the gateway verifies request proofs with another key than yours ({}): get the keys of its ceremony (docs/CEREMONY.md)",
        home.keys().display()
    );

    std::fs::create_dir_all(home.dir())?;
    let path = home.joined_deployment();
    deployment
        .save(&path)
        .with_context(|| format!("saving {}", path.display()))?;
    gateway
        .discover_and_save(&home.discovery(&deployment))
        .await?;
    println!(
        "joined pool {} on chain {} (token {}, C_max {}, checked through {})",
        deployment.pool,
        deployment.chain_id,
        deployment.token,
        deployment.constants.c_max,
        args.rpc
    );
    println!("deployment saved to {}", path.display());
    Ok(())
}
