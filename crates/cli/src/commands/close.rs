//! `zkcredits close`: withdraw what is left in notes, cooperatively (the gateway's
//! clearance, paid at once) or unilaterally (after the challenge window, then
//! `--finalize`). The unilateral exit and `--finalize` need only the chain: the server
//! keys come from the gateway when it answers, else from the discovery document saved
//! in the client home, and `--finalize` reads the time from the chain.
//!
//! No close is sent from the account that deposited. By default the gateway's relay
//! sends a cooperative close (the user needs no other funded account); `--keystore`
//! sends it from a key the user funded for the purpose (an encrypted keystore: never a
//! raw key on the command line or in the environment), and is needed for `--unilateral`
//! and `--finalize`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use zkcredits_chain::alloy::primitives::Address;
use zkcredits_chain::alloy::signers::local::PrivateKeySigner;
use zkcredits_chain::{Indexer, IndexerConfig, PoolClient};
use zkcredits_circuits::prover::CloseProver;
use zkcredits_client::closer::{
    CloseContext, CloseMode, CloseReport, FinalizeReport, finalize_pending,
};
use zkcredits_client::gateway_client::Discovery;
use zkcredits_client::journal::{Journal, NoteStatus};
use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::wallet::{self, Wallet};
use zkcredits_protocol::credits::Credits;

use super::session::{self, GatewayArgs};

/// Arguments of `zkcredits close`.
#[derive(Debug, Args)]
pub(crate) struct CloseArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Where the remaining credits go (a fresh address keeps the withdrawal unlinked
    /// from the deposit).
    #[arg(long, required_unless_present = "finalize")]
    to: Option<Address>,
    /// Close without the gateway's clearance: paid after the pool's challenge window
    /// (`zkcredits close --finalize` then).
    #[arg(long)]
    unilateral: bool,
    /// The note to close.
    #[arg(long, conflicts_with = "all")]
    note: Option<u64>,
    /// Close every note that can be closed.
    #[arg(long)]
    all: bool,
    /// Finalize the unilateral closes whose window has passed.
    #[arg(long, conflicts_with_all = ["to", "note", "all", "unilateral"])]
    finalize: bool,
    /// Send the close (or the finalize) yourself, from this encrypted Ethereum keystore's
    /// account, which pays the gas: a fresh account funded for it, never the deposit
    /// one. Without it the gateway's relay sends a cooperative close.
    #[arg(long)]
    keystore: Option<PathBuf>,
    /// A file whose first line is the keystore's password [default: ask on the terminal].
    #[arg(long, requires = "keystore")]
    password_file: Option<PathBuf>,
    /// The most the gateway's relay may take out of each close's payout, credit units
    /// [default: C_max, one request's charge].
    #[arg(long, conflicts_with = "keystore")]
    max_relay_fee: Option<u64>,
}

pub(crate) fn run(args: CloseArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.finalize || args.all || args.note.is_some(),
        "name the note (--note J) or --all"
    );
    let home = zkcredits_client::home::ClientHome::from_env();
    let deployment = session::load_deployment(&home, args.gateway.deployment.clone())?;
    let passphrase = wallet::passphrase(false)?;
    let w = Wallet::load(&home.wallet(), &passphrase)?;
    // The account the wallet deposits from, when it keeps one: nothing is sent from it.
    let deposit_account = w.eth_signer().map(|s| s.address());
    let sends_itself = args.unilateral || args.finalize;
    anyhow::ensure!(
        !sends_itself || args.keystore.is_some(),
        "a {} is sent by you: give --keystore FILE, a fresh account funded with a little ETH for gas (not the deposit account, which would link the deposit to the payout)",
        if args.finalize {
            "finalize"
        } else {
            "unilateral close"
        }
    );
    let signer = match &args.keystore {
        Some(path) => {
            let signer = crate::keystore::open(path, args.password_file.as_deref())?;
            anyhow::ensure!(
                Some(signer.address()) != deposit_account,
                "{} is the account the notes were deposited from: a close sent from it links the deposit to the payout and to everything the notes spent; use a fresh account (or no --keystore: the gateway relays the close)",
                signer.address()
            );
            signer
        }
        // The relay sends: this client only reads the chain, with a key that holds nothing.
        None => PrivateKeySigner::random(),
    };
    let keys_dir = home.keys();
    if !args.finalize {
        crate::dev::check_keys(&keys_dir, "the client")?;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let pool = PoolClient::connect(&deployment, signer)
            .await
            .context("connecting to the pool")?;
        let mut journal = Journal::open(
            &home.journal(&deployment),
            w.storage_key(StoragePurpose::Journal),
        )?;
        let seed = w.seed();
        if args.finalize {
            let reports = finalize_pending(&seed, &mut journal, &pool).await?;
            if reports.is_empty() {
                println!("no unilateral close is pending");
            }
            for r in reports {
                match r {
                    FinalizeReport::Finalized { note, outcome } => println!(
                        "note {note}: finalized in {}; {} to {}, {} to the provider, {} burned (token base units)",
                        outcome.tx.hash, outcome.to_payout, outcome.payout, outcome.to_provider, outcome.burned
                    ),
                    FinalizeReport::Waiting { note, deadline } => println!(
                        "note {note}: in its challenge window; `zkcredits close --finalize` works once the chain's time reaches {deadline}"
                    ),
                    FinalizeReport::AlreadyDone { note } => {
                        println!("note {note}: already closed or slashed on chain")
                    }
                }
            }
            return Ok(());
        }
        let gateway = session::gateway_client(&args.gateway)?;
        let saved = home.discovery(&deployment);
        let (discovery, reachable) = match gateway.discover_and_save(&saved).await {
            Ok(d) => (d, true),
            Err(e) if args.unilateral => {
                eprintln!(
                    "the gateway {} does not answer ({e}); using the discovery document saved at {}",
                    args.gateway.gateway,
                    saved.display()
                );
                let d = Discovery::load(&saved).with_context(|| {
                    "a unilateral close needs the gateway's server keys: from the gateway or a saved copy"
                })?;
                (d, false)
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "reading the discovery document of {} (`--unilateral` closes without the gateway)",
                    args.gateway.gateway
                )));
            }
        };
        let close_keys = zkcredits_circuits::keys::load_close_proving_key(&keys_dir)
            .with_context(|| format!("loading the close proving key from {}", keys_dir.display()))?;
        let prover = CloseProver::new(close_keys)?;
        discovery.constants.check(&deployment, {
            let request_vk = zkcredits_circuits::keys::load_verifying_key(&keys_dir)?;
            zkcredits_circuits::keys::verifying_key_hash(&request_vk)
        })?;
        let mut indexer = Indexer::connect(
            &deployment,
            IndexerConfig {
                state_path: Some(home.tree_state(&deployment)),
                ..IndexerConfig::default()
            },
        )?;
        let notes: Vec<u64> = match args.note {
            Some(j) => vec![j],
            None => journal
                .notes()?
                .into_iter()
                .filter(|n| {
                    n.deposit.is_some()
                        && matches!(n.status, NoteStatus::Free | NoteStatus::NeedsClose { .. })
                })
                .map(|n| n.j)
                .collect(),
        };
        let mut ctx = CloseContext {
            seed: &seed,
            journal: &mut journal,
            pool: &pool,
            deployment: &deployment,
            indexer: &mut indexer,
            prover: &prover,
            gateway: reachable.then_some(&gateway),
            constants: &discovery.constants,
            deposit_account,
            relay: discovery.relay,
        };
        let mode = if args.unilateral {
            CloseMode::Unilateral
        } else if args.keystore.is_some() {
            CloseMode::Cooperative
        } else {
            CloseMode::Relayed {
                max_fee: args
                    .max_relay_fee
                    .map(Credits::new)
                    .unwrap_or(discovery.constants.c_max),
            }
        };
        let payout = args.to.context("--to is required")?;
        anyhow::ensure!(!notes.is_empty(), "no note can be closed");
        let mut failed = 0;
        for j in notes {
            match ctx.close(j, payout, mode).await {
                Ok(CloseReport::Closed { note, m, outcome }) => println!(
                    "note {note}: closed (m = {m}) in {}; {} to {payout}, {} to the relay {}, {} to the provider, {} burned (token base units)",
                    outcome.tx.hash,
                    outcome.to_payout,
                    outcome.to_relayer,
                    outcome.relayer,
                    outcome.to_provider,
                    outcome.burned
                ),
                Ok(CloseReport::AlreadySettled { note }) => {
                    println!("note {note}: already closed or slashed on chain")
                }
                Ok(CloseReport::Requested { note, m, outcome }) => println!(
                    "note {note}: unilateral close (m = {m}) requested in {}; run `zkcredits close --finalize` from unix time {}",
                    outcome.tx.hash, outcome.deadline
                ),
                Err(e) => {
                    failed += 1;
                    eprintln!("note {j}: {e} ({})", e.code());
                }
            }
        }
        anyhow::ensure!(failed == 0, "{failed} close(s) failed");
        Ok(())
    })
}
