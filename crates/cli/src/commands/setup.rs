//! `zkcredits setup`: the keys. `dev` makes development keys from a public seed;
//! `export-r1cs` and `import-zkey` are the two ends of a real ceremony run with snarkjs
//! (`docs/CEREMONY.md`); `show` prints where a key directory's keys came from.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use zkcredits_circuits::ceremony::{self, r1cs};
use zkcredits_circuits::close::CloseCircuit;
use zkcredits_circuits::keys::{self, KeyOrigin, SetupStep};
use zkcredits_circuits::prover::{CloseProver, RequestProver};
use zkcredits_circuits::request::RequestCircuit;
use zkcredits_circuits::sample::SampleNote;
use zkcredits_circuits::solidity;
use zkcredits_circuits::statement::{CircuitShape, Statement, StatementKind};
use zkcredits_circuits::verifier::Verifier;
use zkcredits_protocol::credits::Credits;

/// Arguments of `zkcredits setup`.
#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    /// The key directory [default: $ZKCREDITS_HOME/keys].
    #[arg(long, env = "ZKCREDITS_KEYS", global = true)]
    keys: Option<PathBuf>,
    #[command(subcommand)]
    command: SetupCommand,
}

#[derive(Debug, Subcommand)]
enum SetupCommand {
    /// Development keys from a public seed: anyone can forge proofs with them. For the
    /// devnet, the demo and tests only; every other command refuses them without --dev.
    Dev {
        /// Regenerate even if valid keys exist.
        #[arg(long)]
        force: bool,
    },
    /// Write the request and close circuits in circom's .r1cs format, the input of
    /// `snarkjs groth16 setup` (docs/CEREMONY.md).
    ExportR1cs {
        /// Directory to write request.r1cs and close.r1cs into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Import the final .zkey files of a snarkjs phase 2 ceremony: check they are keys
    /// for exactly these circuits, prove and verify once with each, and write the key
    /// directory with the transcript pinned, plus CloseVerifier.sol for the pool.
    ImportZkey {
        /// The request circuit's final .zkey.
        #[arg(long)]
        request: PathBuf,
        /// The close circuit's final .zkey.
        #[arg(long)]
        close: PathBuf,
        /// Replace keys already in the directory.
        #[arg(long)]
        force: bool,
    },
    /// Where the keys in the directory came from: development or a ceremony, with the
    /// transcript hashes to compare against the ceremony's published record.
    Show,
}

pub(crate) fn run(args: SetupArgs) -> anyhow::Result<()> {
    let dir = args.keys.unwrap_or_else(crate::paths::default_keys);
    match args.command {
        SetupCommand::Dev { force } => {
            if !force && keys_present(&dir) {
                println!("keys already present and intact in {}", dir.display());
                return Ok(());
            }
            ensure_keys(&dir, true)
        }
        SetupCommand::ExportR1cs { out } => export_r1cs(&out),
        SetupCommand::ImportZkey {
            request,
            close,
            force,
        } => import(&dir, &request, &close, force),
        SetupCommand::Show => show(&dir),
    }
}

/// Whether `dir` holds intact keys for this version of both circuits (keys made for an
/// older circuit load fine but no prover takes them, so they are made again).
fn keys_present(dir: &Path) -> bool {
    keys::load_proving_key(dir)
        .ok()
        .and_then(|k| RequestProver::new(k).ok())
        .is_some()
        && keys::load_close_proving_key(dir)
            .ok()
            .and_then(|k| CloseProver::new(k).ok())
            .is_some()
}

/// Generates the development keys into `dir` unless intact keys are there, showing
/// progress when `show` is set.
pub(crate) fn ensure_keys(dir: &Path, show: bool) -> anyhow::Result<()> {
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

fn export_r1cs(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    export_one::<RequestCircuit>(&out.join("request.r1cs"))?;
    export_one::<CloseCircuit>(&out.join("close.r1cs"))?;
    println!(
        "next: `snarkjs groth16 setup {0}/request.r1cs POT.ptau request_0000.zkey` (and close.r1cs), then the contributions (docs/CEREMONY.md)",
        out.display()
    );
    Ok(())
}

fn export_one<C: Statement>(path: &Path) -> anyhow::Result<()> {
    let shape = CircuitShape::extract_for::<C>()?;
    let mut bytes = Vec::new();
    r1cs::write_r1cs(&shape, &mut bytes)?;
    std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {} ({}: {} constraints, {} public inputs, {} wires)",
        path.display(),
        C::KIND.circuit_id(),
        shape.num_constraints,
        shape.num_instance - 1,
        shape.num_instance + shape.num_witness
    );
    Ok(())
}

fn import(dir: &Path, request: &Path, close: &Path, force: bool) -> anyhow::Result<()> {
    if !force && dir.join(keys::MANIFEST).exists() {
        bail!(
            "{} already holds keys; pass --force to replace them (a running gateway or client keeps the old ones until restarted)",
            dir.display()
        );
    }
    let request_key = read_zkey::<RequestCircuit>(request)?;
    let close_key = read_zkey::<CloseCircuit>(close)?;

    // Prove and verify once with each key before writing anything: the zkey's C query
    // is only covered by a proof.
    let note = SampleNote::new(8, Credits::new(1_000_000), 3, Credits::new(100));
    let mut rng = rand::rngs::OsRng;
    let staging = dir.with_extension("importing");
    let _ = std::fs::remove_dir_all(&staging);
    let origin = |record: &ceremony::CeremonyRecord| KeyOrigin::Ceremony(record.clone());
    keys::write_keys(
        StatementKind::Request,
        &staging,
        &request_key.proving_key,
        origin(&request_key.ceremony),
        &mut |_| {},
    )?;
    keys::write_keys(
        StatementKind::Close,
        &staging,
        &close_key.proving_key,
        origin(&close_key.ceremony),
        &mut |_| {},
    )?;
    let prover = RequestProver::new(keys::load_proving_key(&staging)?)?;
    let circuit = note.circuit()?;
    let public = circuit.public.to_field_elements();
    let proof = prover.prove(circuit, &mut rng)?;
    if !Verifier::new(&request_key.proving_key.vk).verify(&proof, &public) {
        bail!(
            "{}: a proof made with this key does not verify: the key's C or H query does not belong to the circuit; do not use this ceremony's output",
            request.display()
        );
    }
    let close_prover = CloseProver::new(keys::load_close_proving_key(&staging)?)?;
    let close_circuit = note.close_circuit(false, zkcredits_protocol::Fr::from(7u64))?;
    let close_public = close_circuit.public.to_field_elements();
    let close_proof = close_prover.prove(close_circuit, &mut rng)?;
    if !Verifier::new(&close_key.proving_key.vk).verify(&close_proof, &close_public) {
        bail!(
            "{}: a proof made with this key does not verify: the key's C or H query does not belong to the circuit; do not use this ceremony's output",
            close.display()
        );
    }
    let verifier = solidity::close_verifier_source(&close_key.proving_key.vk);
    std::fs::write(staging.join("CloseVerifier.sol"), verifier)
        .with_context(|| format!("writing {}", staging.join("CloseVerifier.sol").display()))?;

    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("replacing {}", dir.display()))?;
    }
    std::fs::rename(&staging, dir)
        .with_context(|| format!("moving keys into {}", dir.display()))?;
    println!("imported the ceremony keys into {}", dir.display());
    show(dir)?;
    println!(
        "next: compile {}/CloseVerifier.sol with the pinned solc (`npm --prefix contracts run verifier -- {}`), then `ZKCREDITS_KEYS={} zkcredits deploy ...` takes the verifier from the key directory",
        dir.display(),
        dir.display(),
        dir.display()
    );
    Ok(())
}

fn read_zkey<C: Statement>(path: &Path) -> anyhow::Result<ceremony::ImportedKey> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    ceremony::import_zkey(C::KIND, &bytes, &name).with_context(|| {
        format!(
            "{} is not a usable key for {} (was it made from `zkcredits setup export-r1cs` of this version?)",
            path.display(),
            C::KIND.circuit_id()
        )
    })
}

fn show(dir: &Path) -> anyhow::Result<()> {
    let request = keys::load_proving_key(dir)
        .with_context(|| format!("loading the request keys from {}", dir.display()))?;
    let close = keys::load_close_proving_key(dir)
        .with_context(|| format!("loading the close keys from {}", dir.display()))?;
    for k in [&request, &close] {
        let m = &k.manifest;
        println!("{} ({} constraints)", m.circuit, m.constraints);
        println!(
            "  verifying key sha256 {}",
            hex::encode(keys::verifying_key_hash(k.verifying_key()))
        );
        if k.is_development() {
            println!("  DEVELOPMENT keys from a public seed: anyone can forge proofs");
            continue;
        }
        if let Some(c) = &m.ceremony {
            println!("  {} from {}", c.tool, c.zkey_file);
            println!("  zkey sha256   {}", c.zkey_sha256);
            println!("  circuit hash  {}", c.circuit_hash);
            for (i, contribution) in c.contributions.iter().enumerate() {
                println!(
                    "  #{} {} {:?}: {}",
                    i + 1,
                    contribution.kind,
                    contribution.name,
                    contribution.hash
                );
            }
        }
    }
    Ok(())
}
