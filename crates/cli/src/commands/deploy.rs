//! `zkcredits deploy`: the pool on any EVM chain, signed with an encrypted keystore.
//!
//! It plans first (addresses, gas, cost; nothing sent), prints the plan, stops there with
//! `--dry-run`, else sends the transactions, verifies the code and the pool's constants
//! on chain, and writes the deployment JSON. The private key never comes from the command
//! line or the environment: only from `--keystore` (an Ethereum JSON keystore) opened with
//! a password typed at a prompt or read from `--password-file`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use zkcredits_chain::alloy::primitives::{Address, U256};
use zkcredits_chain::alloy::providers::DynProvider;
use zkcredits_chain::bindings::TestToken;
use zkcredits_chain::deploy::{Creation, DeployPlan, DeployedContract, Fees, VerifierArtifact};
use zkcredits_chain::{PoolConfig, rpc};
use zkcredits_protocol::credits::Credits;

/// Arguments of `zkcredits deploy`.
#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// JSON-RPC URL of the chain to deploy to.
    #[arg(long)]
    rpc: String,
    /// The ERC-20 token notes are paid in (its address on that chain).
    #[arg(long)]
    token: Address,
    /// The deploying account: an encrypted Ethereum JSON keystore (as geth, clef or `cast
    /// wallet import` write). It pays the gas.
    #[arg(long)]
    keystore: PathBuf,
    /// A file whose first line is the keystore's password [default: ask on the terminal].
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Pool constants from a TOML file (the keys are the flags' names in snake_case, e.g.
    /// `c_max = 1000`); flags given on the command line win over it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    constants: ConstantArgs,
    /// The close verifier: a solc artifact JSON like contracts/artifacts/CloseVerifier.json,
    /// generated from your ceremony's keys [default: CloseVerifier.json in the key
    /// directory, which `npm run verifier` writes after `zkcredits setup import-zkey`;
    /// else the committed one, from DEVELOPMENT keys, which needs --dev].
    #[arg(long)]
    verifier_artifact: Option<PathBuf>,
    /// Print the plan (addresses, gas, cost) and stop: nothing is sent.
    #[arg(long)]
    dry_run: bool,
    /// Where to write the deployment JSON [default: $ZKCREDITS_HOME/deployment.json].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The pool's parameters (docs/PROTOCOL.md, contracts/README.md), as flags and as the
/// keys of the `--config` file. Each defaults to the file's value, else to the default
/// named in its help.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConstantArgs {
    /// The provider: receives revenue, records violations, claims expired epochs
    /// [default: the deploying account].
    #[arg(long)]
    provider: Option<Address>,
    /// Token base units per credit unit [default: 10^(decimals - 6), one millionth of a
    /// token, from the token's decimals()].
    #[arg(long)]
    #[serde(default, deserialize_with = "de_u256")]
    unit: Option<U256>,
    /// Charge per request, in credit units (C_max) [default: 1000].
    #[arg(long)]
    c_max: Option<Credits>,
    /// Largest policy penalty per request, in credit units (P_max) [default: 5000].
    #[arg(long)]
    p_max: Option<Credits>,
    /// Seconds per epoch [default: 86400].
    #[arg(long)]
    epoch_len: Option<u64>,
    /// Epochs from a deposit to its note's expiry [default: 30].
    #[arg(long)]
    note_lifetime: Option<u64>,
    /// Seconds after an epoch's end before the provider may claim its expired notes
    /// [default: 86400].
    #[arg(long)]
    grace: Option<u64>,
    /// Seconds a unilateral close waits for challenges [default: 3600].
    #[arg(long)]
    challenge_window: Option<u64>,
    /// Share of a slashed note paid to the slasher, in basis points [default: 0].
    #[arg(long)]
    bounty_bps: Option<u16>,
    /// The tree holds 2^tree_depth notes, 1 to 20 [default: 20].
    #[arg(long)]
    tree_depth: Option<u8>,
    /// How many recent committed roots the pool accepts [default: 64].
    #[arg(long)]
    root_history_size: Option<u32>,
    /// Start of epoch 0, unix seconds, not in the future [default: 0, the deploy time].
    #[arg(long)]
    genesis_time: Option<u64>,
    /// Allowed note amounts in credit units, strictly increasing, comma-separated
    /// [default: any amount].
    #[arg(long, value_delimiter = ',')]
    denominations: Option<Vec<Credits>>,
}

/// A `uint256` in the pool file: a TOML integer, or a decimal or 0x-hex string (for values
/// beyond 2^63).
fn de_u256<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<U256>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(u64),
        Text(String),
    }
    match Number::deserialize(d)? {
        Number::Int(n) => Ok(Some(U256::from(n))),
        Number::Text(t) => t
            .parse::<U256>()
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{t:?} is not a uint256: {e}"))),
    }
}

macro_rules! pick {
    ($flags:expr, $file:expr, $default:expr, $($field:ident),+) => {
        ($($flags.$field.take().or($file.$field.take()).unwrap_or($default.$field)),+)
    };
}

pub(crate) fn run(mut args: DeployArgs) -> anyhow::Result<()> {
    // The verifier first: refusing the development one must not wait for a password.
    let keys_dir = zkcredits_client::home::ClientHome::from_env().keys();
    let in_keys = keys_dir.join("CloseVerifier.json");
    let verifier = match &args.verifier_artifact {
        Some(path) => VerifierArtifact::load(path)?,
        None if in_keys.exists() => VerifierArtifact::load(&in_keys)?,
        None => VerifierArtifact::development(),
    };
    if let Some(path) = args
        .verifier_artifact
        .as_ref()
        .or(Some(&in_keys).filter(|p| p.exists()))
    {
        check_verifier_source(path, &keys_dir)?;
    }
    if verifier.is_development() && !crate::dev::enabled() {
        bail!(
            "refusing to deploy the DEVELOPMENT close verifier ({}): it comes from keys anyone \
             can derive from a public seed, so anyone could forge close proofs and drain the \
             pool. Pass --verifier-artifact FILE with the verifier generated from your \
             ceremony's keys, or --dev for a local devnet or the demo",
            verifier.source()
        );
    }
    let mut file = match &args.config {
        Some(path) => read_pool_file(path)?,
        None => ConstantArgs::default(),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| crate::paths::home().join("deployment.json"));
    let signer = crate::keystore::open(&args.keystore, args.password_file.as_deref())?;
    let deployer = signer.address();

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let provider = rpc::wallet_provider(&args.rpc, signer)?;
        zkcredits_chain::deploy::reach(&provider, &args.rpc).await?;
        let mut config = PoolConfig::dev(
            args.constants
                .provider
                .or(file.provider)
                .unwrap_or(deployer),
        );
        let unit = match args.constants.unit.take().or(file.unit.take()) {
            Some(unit) => unit,
            None => default_unit(&provider, &args.rpc, args.token).await?,
        };
        let defaults = config.constants.clone();
        let c = &mut args.constants;
        let f = &mut file;
        let constants = &mut config.constants;
        (
            constants.c_max,
            constants.p_max,
            constants.epoch_len,
            constants.note_lifetime,
            constants.grace,
            constants.challenge_window,
            constants.bounty_bps,
            constants.tree_depth,
            constants.root_history_size,
            constants.genesis_time,
        ) = pick!(
            c,
            f,
            defaults,
            c_max,
            p_max,
            epoch_len,
            note_lifetime,
            grace,
            challenge_window,
            bounty_bps,
            tree_depth,
            root_history_size,
            genesis_time
        );
        constants.denominations = c
            .denominations
            .take()
            .or(f.denominations.take())
            .unwrap_or_default();
        constants.unit = unit;
        config.token = Some(args.token);

        let plan = DeployPlan::new(&provider, &args.rpc, deployer, &config, &verifier)
            .await
            .context("planning the deployment (nothing was sent)")?;
        print_plan(&plan, &args.keystore, &verifier);
        if args.dry_run {
            if let Err(e) = plan.check_funds() {
                println!("note: {e}");
            }
            println!("dry run: nothing was sent");
            return Ok(());
        }
        plan.check_funds()?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let deployed = plan
            .execute(&provider, print_mined)
            .await
            .context("deploying (the contracts listed above as mined are on chain)")?;
        let deployment = plan
            .verify(&provider, &deployed)
            .await
            .context("verifying the deployment")?;
        println!(
            "verified: the code of all {} contracts matches the artifacts; the pool's token, \
             provider, verifier and constants read back as planned",
            plan.contracts.len()
        );
        deployment.save(&out)?;
        println!("deployment written to {}", out.display());
        Ok(())
    })
}

fn read_pool_file(path: &Path) -> anyhow::Result<ConstantArgs> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid pool file", path.display()))
}

/// One millionth of a token: `10^(decimals - 6)` base units (1 below 6 decimals).
async fn default_unit(provider: &DynProvider, rpc: &str, token: Address) -> anyhow::Result<U256> {
    let decimals = TestToken::new(token, provider)
        .decimals()
        .call()
        .await
        .with_context(|| {
            format!(
                "reading decimals() of the token {token} through {rpc} to choose the unit \
                 (give --unit to choose it yourself)"
            )
        })?;
    Ok(U256::from(10u64).pow(U256::from(decimals.saturating_sub(6))))
}

fn eth(wei: U256) -> String {
    zkcredits_chain::alloy::primitives::utils::format_ether(wei)
}

fn gwei(wei: u128) -> String {
    zkcredits_chain::alloy::primitives::utils::format_units(U256::from(wei), "gwei")
        .unwrap_or_else(|_| format!("{wei} wei"))
}

fn print_plan(plan: &DeployPlan, keystore: &Path, verifier: &VerifierArtifact) {
    let c = &plan.config.constants;
    println!(
        "deploy plan for chain {} via {}",
        plan.chain_id, plan.rpc_url
    );
    println!(
        "  deployer  {} (keystore {}), nonce {}, balance {} ETH",
        plan.deployer,
        keystore.display(),
        plan.nonce,
        eth(plan.balance)
    );
    println!("  provider  {}", plan.config.provider);
    println!("  token     {}", plan.config.token.unwrap_or_default());
    println!("  verifier  {}", verifier.source());
    println!(
        "  constants unit {} | c_max {} | p_max {} | epoch_len {} s | note_lifetime {} epochs | \
         grace {} s | challenge_window {} s | bounty_bps {} | tree_depth {} | \
         root_history_size {} | genesis_time {} | denominations {}",
        c.unit,
        c.c_max,
        c.p_max,
        c.epoch_len,
        c.note_lifetime,
        c.grace,
        c.challenge_window,
        c.bounty_bps,
        c.tree_depth,
        c.root_history_size,
        if c.genesis_time == 0 {
            "deploy time".to_string()
        } else {
            c.genesis_time.to_string()
        },
        if c.denominations.is_empty() {
            "any".to_string()
        } else {
            let amounts: Vec<String> = c.denominations.iter().map(|d| d.to_string()).collect();
            format!("[{}]", amounts.join(", "))
        },
    );
    println!(
        "  {:<14} {:<42} {:<32} {:>12}",
        "contract", "address", "how", "est. gas"
    );
    for p in &plan.contracts {
        let how = match p.creation {
            Creation::Present => "already deployed".to_string(),
            Creation::Create2 { nonce, .. } => format!("CREATE2 via factory, nonce {nonce}"),
            Creation::Create { nonce } => format!("CREATE, nonce {nonce}"),
        };
        let gas = if p.gas == 0 {
            "-".to_string()
        } else {
            p.gas.to_string()
        };
        println!(
            "  {:<14} {:<42} {:<32} {:>12}",
            p.name,
            p.address.to_string(),
            how,
            gas
        );
    }
    let fee = match plan.fees {
        Fees::Eip1559 {
            max_fee_per_gas, ..
        } => format!("max fee {} gwei", gwei(max_fee_per_gas)),
        Fees::Legacy { gas_price } => format!("legacy gas price {} gwei", gwei(gas_price)),
    };
    println!(
        "  total: {} transactions, {} gas; {} ETH at the current gas price of {} gwei (at most \
         {} ETH with the gas limits at the {fee})",
        plan.transactions(),
        plan.total_gas(),
        eth(plan.cost()),
        gwei(plan.gas_price),
        eth(plan.max_cost()),
    );
    println!("  pool      {}", plan.pool());
}

fn print_mined(d: &DeployedContract) {
    match &d.tx {
        Some(tx) => println!(
            "mined {:<14} {} tx {} block {} gas used {}",
            d.name, d.address, tx.hash, tx.block_number, tx.gas_used
        ),
        None => println!("kept  {:<14} {} (already deployed)", d.name, d.address),
    }
}

/// A verifier artifact compiled by `npm run verifier` names the SHA-256 of its source:
/// when the key directory holds a close verifying key, that source must be the one
/// generated from it, so a pool never gets a verifier for other keys than its users'.
fn check_verifier_source(artifact: &Path, keys_dir: &Path) -> anyhow::Result<()> {
    let Ok(vk) = zkcredits_circuits::keys::load_close_verifying_key(keys_dir) else {
        return Ok(());
    };
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(artifact).with_context(|| format!("reading {}", artifact.display()))?,
    )
    .with_context(|| format!("{} is not JSON", artifact.display()))?;
    let Some(recorded) = json.get("sourceSha256").and_then(|v| v.as_str()) else {
        return Ok(());
    };
    let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        zkcredits_circuits::solidity::close_verifier_source(&vk).as_bytes(),
    ));
    if recorded != expected {
        bail!(
            "{} was compiled from another CloseVerifier.sol than the one the close key in {} generates: run `npm --prefix contracts run verifier -- {}` again",
            artifact.display(),
            keys_dir.display(),
            keys_dir.display()
        );
    }
    Ok(())
}
