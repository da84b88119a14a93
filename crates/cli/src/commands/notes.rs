//! `zkcredits notes`: each note's balance, next ticket index, expiry and status.

use std::path::PathBuf;

use clap::Args;
use zkcredits_chain::PoolClient;
use zkcredits_chain::alloy::signers::local::PrivateKeySigner;
use zkcredits_client::NoteSummary;
use zkcredits_client::closer::chain_status;
use zkcredits_client::home::ClientHome;
use zkcredits_client::journal::{Journal, NoteStatus};
use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::wallet::{self, Wallet};
use zkcredits_protocol::state::Limits;

/// Arguments of `zkcredits notes`.
#[derive(Debug, Args)]
pub(crate) struct NotesArgs {
    /// The deployment JSON [default: $ZKCREDITS_HOME/deployment.json, which `zkcredits
    /// join` writes, else $ZKCREDITS_HOME/devnet.json].
    #[arg(long)]
    deployment: Option<PathBuf>,
}

/// A note's state as a user reads it.
pub(crate) fn state(s: &NoteSummary, closing: bool) -> &'static str {
    match s.status {
        NoteStatus::PendingDeposit => "pending deposit",
        NoteStatus::Free if s.can_pay => "can pay",
        // Deposited, free, but its balance cannot cover another C_max: only a close
        // gets the rest back.
        NoteStatus::Free => "needs close",
        NoteStatus::InFlight => "busy",
        NoteStatus::NeedsClose { .. } if closing => "closing",
        NoteStatus::NeedsClose { .. } => "needs close",
        NoteStatus::Closed => "closed",
        NoteStatus::Slashed => "slashed",
    }
}

/// What is left in a note for its owner: nothing once closed (paid out) or slashed.
fn left(s: &NoteSummary) -> i128 {
    match s.status {
        NoteStatus::Closed | NoteStatus::Slashed | NoteStatus::PendingDeposit => 0,
        _ => s.remaining.max(0),
    }
}

/// The notes counted by state with their balances, for one line:
/// `3 can pay (12000 credit units), 1 busy (4000), 2 need a close (700), 1 slashed`.
pub(crate) fn tally(notes: &[NoteSummary]) -> String {
    let mut parts = Vec::new();
    for (label, plural) in [
        ("can pay", "can pay"),
        ("busy", "busy"),
        ("needs close", "need a close"),
        ("closed", "closed"),
        ("slashed", "slashed"),
    ] {
        let these: Vec<&NoteSummary> = notes.iter().filter(|n| state(n, false) == label).collect();
        if these.is_empty() {
            continue;
        }
        let total: i128 = these.iter().map(|n| left(n)).sum();
        let balance = match label {
            "closed" | "slashed" => String::new(),
            _ => format!(" ({total} credit units)"),
        };
        parts.push(format!("{} {plural}{balance}", these.len()));
    }
    if parts.is_empty() {
        "none (deposit with `zkcredits deposit`)".to_owned()
    } else {
        parts.join(", ")
    }
}

pub(crate) fn run(args: NotesArgs) -> anyhow::Result<()> {
    let home = ClientHome::from_env();
    // The joined pool (`zkcredits join`), else the devnet's.
    let deployment = super::session::load_deployment(&home, args.deployment)?;
    let passphrase = wallet::passphrase(false)?;
    let w = Wallet::load(&home.wallet(), &passphrase)?;
    let mut journal = Journal::open(
        &home.journal(&deployment),
        w.storage_key(StoragePurpose::Journal),
    )?;
    // What the journal cannot know: a close waiting on chain, a note slashed.
    let runtime = tokio::runtime::Runtime::new()?;
    let on_chain = runtime.block_on(async {
        let pool = PoolClient::connect(&deployment, PrivateKeySigner::random()).await?;
        anyhow::Ok(chain_status(&w.seed(), &mut journal, &pool, &deployment).await?)
    });
    let closing = match on_chain {
        Ok(status) => status.closing,
        Err(e) => {
            eprintln!(
                "note states are the journal's only: the pool could not be asked ({e:#}); closes in progress and slashes are not shown"
            );
            Vec::new()
        }
    };
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
        "{:>5}  {:<16} {:>12} {:>12} {:>10}  expiry",
        "note", "state", "deposit", "balance", "next idx"
    );
    let summaries: Vec<NoteSummary> = journal
        .notes()?
        .iter()
        .map(|n| NoteSummary::of(n, limits))
        .collect();
    for s in &summaries {
        let settled = matches!(s.status, NoteStatus::Closed | NoteStatus::Slashed);
        let expiry = if s.leaf_index.is_none() || settled {
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
        println!(
            "{:>5}  {:<16} {:>12} {:>12} {:>10}  {}",
            s.note,
            state(s, closing.contains(&s.note)),
            s.deposit,
            left(s),
            s.next_index,
            expiry
        );
    }
    for s in summaries.iter().filter(|s| s.status == NoteStatus::Slashed) {
        println!(
            "note {}: slashed on chain (one of its tickets was used twice, e.g. from an old copy of the journal); its deposit is gone",
            s.note
        );
    }
    println!("notes: {}", tally(&summaries));
    let total: i128 = summaries.iter().map(left).sum();
    println!("remaining in all notes: {total} credit units");
    Ok(())
}
