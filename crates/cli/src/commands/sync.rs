//! `zkcredits sync`: rebuild the pool's note tree from its events (resuming from the
//! last sync), and optionally find deposits a crash left unrecorded.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use zkcredits_chain::alloy::signers::local::PrivateKeySigner;
use zkcredits_chain::{Indexer, IndexerConfig, PoolClient};
use zkcredits_client::deposit::resolve_pending;
use zkcredits_client::home::ClientHome;
use zkcredits_client::journal::Journal;
use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::wallet::{self, Wallet};

/// Arguments of `zkcredits sync`.
#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// The deployment JSON [default: $ZKCREDITS_HOME/deployment.json, which `zkcredits
    /// join` writes, else $ZKCREDITS_HOME/devnet.json].
    #[arg(long)]
    deployment: Option<PathBuf>,
    /// Also look up on chain the notes whose deposit was sent but not recorded (opens
    /// the wallet).
    #[arg(long)]
    deposits: bool,
}

pub(crate) fn run(args: SyncArgs) -> anyhow::Result<()> {
    let home = ClientHome::from_env();
    // The joined pool (`zkcredits join`), else the devnet's.
    let deployment = super::session::load_deployment(&home, args.deployment)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let state_path = home.tree_state(&deployment);
        let mut indexer = Indexer::connect(
            &deployment,
            IndexerConfig {
                state_path: Some(state_path.clone()),
                progress: true,
                ..IndexerConfig::default()
            },
        )?;
        let report = indexer.sync().await.context("syncing the note tree")?;
        println!(
            "tree: {} leaves, root {} ({} deposits and {} root commits applied in {} pages); saved to {}",
            indexer.tree().len(),
            indexer.root(),
            report.deposits,
            report.commits,
            report.pages,
            state_path.display()
        );
        if args.deposits {
            let passphrase = wallet::passphrase(false)?;
            let w = Wallet::load(&home.wallet(), &passphrase)?;
            // Views only: any key will do when the wallet has none.
            let signer = w.eth_signer().unwrap_or_else(PrivateKeySigner::random);
            let pool = PoolClient::connect(&deployment, signer).await?;
            let mut journal = Journal::open(
                &home.journal(&deployment),
                w.storage_key(StoragePurpose::Journal),
            )?;
            let resolved = resolve_pending(&pool, &mut journal, &w.seed()).await?;
            println!("pending deposits found on chain: {resolved:?}");
        }
        Ok(())
    })
}
