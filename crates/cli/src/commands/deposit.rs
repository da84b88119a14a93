//! `zkcredits deposit`: approve and deposit notes in one transaction, record them in the
//! note journal.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use zkcredits_chain::PoolClient;
use zkcredits_chain::alloy::primitives::U256;
use zkcredits_chain::alloy::providers::Provider;
use zkcredits_chain::alloy::signers::local::PrivateKeySigner;
use zkcredits_client::deposit::deposit_notes;
use zkcredits_client::home::ClientHome;
use zkcredits_client::journal::Journal;
use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::wallet::{self, Wallet};
use zkcredits_protocol::credits::Credits;

/// Anvil's chain id: there the token is the devnet's `TestToken`, whose mint is public.
const DEVNET_CHAIN_ID: u64 = 31337;

/// Arguments of `zkcredits deposit`.
#[derive(Debug, Args)]
pub(crate) struct DepositArgs {
    /// Credit units per note.
    #[arg(long)]
    amount: u64,
    /// How many notes (one request in flight per note).
    #[arg(long, default_value_t = 1)]
    notes: u64,
    /// The deployment JSON [default: $ZKCREDITS_HOME/deployment.json, which `zkcredits
    /// join` writes, else $ZKCREDITS_HOME/devnet.json].
    #[arg(long)]
    deployment: Option<PathBuf>,
    /// Pay with this Ethereum key (hex) instead of the wallet's.
    #[arg(long, env = "ZKCREDITS_ETH_KEY", hide_env_values = true)]
    eth_key: Option<String>,
    /// Blocks to wait on top of the deposit's block before recording it.
    #[arg(long, default_value_t = 1)]
    confirmations: u64,
}

pub(crate) fn run(args: DepositArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.notes > 0, "--notes must be at least 1");
    let home = ClientHome::from_env();
    // The joined pool (`zkcredits join`), else the devnet's.
    let deployment = super::session::load_deployment(&home, args.deployment)?;
    let passphrase = wallet::passphrase(false)?;
    let w = Wallet::load(&home.wallet(), &passphrase)?;
    let signer = match &args.eth_key {
        Some(key) => key
            .trim()
            .parse::<PrivateKeySigner>()
            .context("parsing --eth-key")?,
        None => w
            .eth_signer()
            .context("the wallet has no Ethereum key: pass --eth-key (or ZKCREDITS_ETH_KEY)")?,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let pool = PoolClient::connect(&deployment, signer)
            .await
            .context("connecting to the pool")?;
        let need = pool.token_amount(Credits::new(args.amount)) * U256::from(args.notes);
        let have = pool.token_balance(pool.sender()).await?;
        if have < need {
            anyhow::ensure!(
                deployment.chain_id == DEVNET_CHAIN_ID,
                "{} holds {have} token base units, the deposit needs {need}",
                pool.sender()
            );
            println!(
                "balance short ({have} < {need} base units): minting test tokens (devnet TestToken)"
            );
            pool.mint_test_tokens(pool.sender(), need - have)
                .await
                .context("minting test tokens (only a TestToken allows it)")?;
        }
        let mut journal = Journal::open(
            &home.journal(&deployment),
            w.storage_key(StoragePurpose::Journal),
        )?;
        println!(
            "depositing {} note(s) of {} credit units from {}",
            args.notes,
            args.amount,
            pool.sender()
        );
        let report = deposit_notes(
            &pool,
            &mut journal,
            &w.seed(),
            Credits::new(args.amount),
            args.notes,
        )
            .await
            .context("the notes stay reserved in the journal; `zkcredits sync --deposits` finds them on chain if the deposit went through")?;
        let target = report.block_number + args.confirmations.saturating_sub(1);
        while pool.provider().get_block_number().await? < target {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        println!(
            "deposit {} in block {} ({} gas)",
            report.tx_hash, report.block_number, report.gas_used
        );
        for (j, info) in &report.notes {
            println!(
                "note {j}: {} credit units, leaf {}, expires at epoch {}",
                info.deposit, info.leaf_index, info.expiry_epoch
            );
        }
        Ok(())
    })
}
