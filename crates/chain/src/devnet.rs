//! The development chain behind `zkcredits devnet`: anvil with the pool deployed.

use std::path::Path;

use alloy::primitives::U256;

use crate::Result;
use crate::anvil::{AnvilProcess, dev_address, dev_signer};
use crate::client::PoolClient;
use crate::deploy::{Deployment, PoolConfig, deploy};

/// Dev account that deploys the devnet's pool and is its provider.
pub const DEVNET_PROVIDER: usize = 0;
/// How many dev accounts get test tokens.
pub const DEVNET_FUNDED_ACCOUNTS: usize = 4;
/// Test tokens minted to each funded account: 10^6 tokens of 18 decimals.
pub const DEVNET_MINT: u128 = 1_000_000_000_000_000_000_000_000;

/// Starts anvil on 127.0.0.1:`port` (0: a free port), deploys the libraries, a `TestToken`
/// and the pool with [`PoolConfig::dev`] (provider and deployer: dev account 0), mints
/// [`DEVNET_MINT`] test tokens to dev accounts 0..4, and writes the deployment JSON to
/// `out`. Anvil runs until the returned handle is dropped.
pub async fn devnet(out: &Path, port: u16) -> Result<(AnvilProcess, Deployment)> {
    let anvil = AnvilProcess::start(port, &[]).await?;
    let config = PoolConfig::dev(dev_address(DEVNET_PROVIDER));
    let deployment = deploy(anvil.url(), dev_signer(DEVNET_PROVIDER), &config).await?;
    let minter = PoolClient::connect(&deployment, dev_signer(DEVNET_PROVIDER)).await?;
    for i in 0..DEVNET_FUNDED_ACCOUNTS {
        minter
            .mint_test_tokens(dev_address(i), U256::from(DEVNET_MINT))
            .await?;
    }
    deployment.save(out)?;
    tracing::info!(url = %anvil.url(), pool = %deployment.pool, out = %out.display(), "devnet ready");
    Ok((anvil, deployment))
}
