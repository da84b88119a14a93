//! `zkcredits setup`: generate and store the keys, with a progress display.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use zkcredits_circuits::keys::{self, SetupStep};

/// Arguments of `zkcredits setup`.
#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    /// Where to write the keys [default: $ZKCREDITS_HOME/keys].
    #[arg(long, env = "ZKCREDITS_KEYS")]
    keys: Option<PathBuf>,
    /// Regenerate even if valid keys exist.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: SetupArgs) -> anyhow::Result<()> {
    let dir = args.keys.unwrap_or_else(crate::paths::default_keys);
    if !args.force && keys_present(&dir) {
        println!("keys already present and intact in {}", dir.display());
        return Ok(());
    }
    ensure_keys(&dir, true)?;
    Ok(())
}

/// Whether `dir` holds intact keys for this version of both circuits (keys made for an
/// older circuit load fine but no prover takes them, so they are made again).
fn keys_present(dir: &std::path::Path) -> bool {
    use zkcredits_circuits::prover::{CloseProver, RequestProver};
    keys::load_proving_key(dir)
        .ok()
        .and_then(|k| RequestProver::new(k).ok())
        .is_some()
        && keys::load_close_proving_key(dir)
            .ok()
            .and_then(|k| CloseProver::new(k).ok())
            .is_some()
}

/// Generates the development keys into `dir`, showing progress when `show` is set.
pub(crate) fn ensure_keys(dir: &std::path::Path, show: bool) -> anyhow::Result<()> {
    if keys_present(dir) {
        return Ok(());
    }
    eprintln!("WARNING: development setup from a public seed: NOT FOR PRODUCTION.");
    let bar = if show {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    let manifest = keys::setup_dev(dir, keys::DEV_SEED, |step| {
        bar.set_message(match step {
            SetupStep::Synthesize => "counting constraints",
            SetupStep::Generate => "generating Groth16 keys (the long step)",
            SetupStep::Write => "writing key files",
            SetupStep::Check => "checking the proving key (curve and subgroup checks)",
        });
    })
    .with_context(|| format!("setup into {}", dir.display()))?;
    bar.finish_and_clear();
    println!(
        "wrote keys for {} ({} constraints) to {} in {:.1} s",
        manifest.circuit,
        manifest.constraints,
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    println!("proving key sha256 {}", manifest.proving_key.sha256);
    Ok(())
}
