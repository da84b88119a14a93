//! `zkcredits notes`: each note's balance, next ticket index, expiry and status.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use zkcredits_chain::Deployment;
use zkcredits_client::NoteSummary;
use zkcredits_client::home::ClientHome;
use zkcredits_client::journal::Journal;
use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::wallet::{self, Wallet};
use zkcredits_protocol::state::Limits;

/// Arguments of `zkcredits notes`.
#[derive(Debug, Args)]
pub(crate) struct NotesArgs {
    /// The deployment JSON [default: $ZKCREDITS_HOME/devnet.json].
    #[arg(long)]
    deployment: Option<PathBuf>,
}

pub(crate) fn run(args: NotesArgs) -> anyhow::Result<()> {
    let home = ClientHome::from_env();
    let path = args.deployment.unwrap_or_else(|| home.devnet_deployment());
    let deployment = Deployment::load(&path)
        .with_context(|| format!("reading the deployment {}", path.display()))?;
    let passphrase = wallet::passphrase(false)?;
    let w = Wallet::load(&home.wallet(), &passphrase)?;
    let journal = Journal::open(
        &home.journal(&deployment),
        w.storage_key(StoragePurpose::Journal),
    )?;
    let c = &deployment.constants;
    let limits = Limits {
        c_max: c.c_max,
        p_max: c.p_max,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let epoch = now.saturating_sub(c.genesis_time) / c.epoch_len.max(1);
    println!(
        "pool {} on chain {}: C_max {}, P_max {}, current epoch {epoch}",
        deployment.pool, deployment.chain_id, c.c_max, c.p_max
    );
    println!(
        "{:>5}  {:<16} {:>12} {:>12} {:>10} {:>8}  expiry",
        "note", "status", "deposit", "remaining", "next idx", "can pay"
    );
    let mut total: i128 = 0;
    for note in journal.notes()? {
        let s = NoteSummary::of(&note, limits);
        let expiry = if s.leaf_index.is_none() {
            "-".to_string()
        } else if s.expiry_epoch <= epoch {
            format!("epoch {} (expired: close now)", s.expiry_epoch)
        } else {
            format!(
                "epoch {} (in {} epochs)",
                s.expiry_epoch,
                s.expiry_epoch - epoch
            )
        };
        if s.leaf_index.is_some() {
            total += s.remaining;
        }
        println!(
            "{:>5}  {:<16} {:>12} {:>12} {:>10} {:>8}  {}",
            s.note,
            s.status.to_string(),
            s.deposit,
            s.remaining,
            s.next_index,
            if s.can_pay { "yes" } else { "no" },
            expiry
        );
    }
    println!("remaining in all notes: {total} credit units");
    Ok(())
}
