//! Deploying the pool: the Poseidon libraries through the CREATE2 factory (when absent), a
//! `TestToken` (unless a token is given), the close verifier and `ZkCreditsPool` with a
//! [`PoolConfig`]. The result is a [`Deployment`], which is written to and read from JSON.
//!
//! A deployment is planned, executed, then verified:
//!
//! - [`DeployPlan::new`] sends nothing: it reads the deployer's nonce and balance and the
//!   fees, decides what must be sent (a library only when its code is absent), predicts
//!   every address (CREATE2 for the libraries, CREATE from the deployer and its nonce for
//!   the others) and estimates each creation's gas;
//! - [`DeployPlan::execute`] sends the transactions in order, each with its planned nonce,
//!   and checks each contract lands where planned;
//! - [`DeployPlan::verify`] compares the code at every address with its artifact's runtime
//!   code (immutables masked, `immutableReferences`) and the pool's constants read back
//!   with the plan, and returns the [`Deployment`].
//!
//! [`deploy`] does all three with the development verifier (devnet, tests); `zkcredits
//! deploy` prints the plan first and signs with an encrypted keystore.

use std::path::Path;
use std::sync::OnceLock;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};

use zkcredits_protocol::credits::Credits;

use crate::bindings::{CloseVerifier, TestToken, ZkCreditsPool, linked_libraries};
use crate::rpc::TxInfo;
use crate::{Error, Result, rpc};

/// The deployment parameters of a pool (`docs/PROTOCOL.md §2`, `contracts/README.md`):
/// the constants it will report, and who and what it starts with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolConfig {
    /// The ERC-20 the notes are paid in; `None` deploys a fresh `TestToken`.
    pub token: Option<Address>,
    /// The provider: receives revenue, records violations, claims expired epochs.
    pub provider: Address,
    /// The pool's constants. `genesis_time` 0 means the deploy time; the others are
    /// reported as given. `unit` is > 0 and <= 2^128, `tree_depth` 1..=20 (the levels the
    /// circuits prove), and `denominations` strictly increasing.
    #[serde(flatten)]
    pub constants: PoolConstants,
    /// The first receipt key closes may name (BabyJubJub `(x, y)`); more are added with
    /// `acceptServerKey`. `None`: none yet (no close is possible until one is accepted).
    #[serde(default)]
    pub server_key: Option<(U256, U256)>,
}

impl PoolConfig {
    /// Constants for a development chain: 1 credit unit = 10^12 base units (10^-6 of an
    /// 18-decimal token), C_max 1000, P_max 5000, one-day epochs, notes living 30 epochs,
    /// one day of grace, a one-hour challenge window, no slasher bounty, a 2^20-leaf tree,
    /// 64 known roots, a fresh `TestToken`.
    pub fn dev(provider: Address) -> Self {
        Self {
            token: None,
            provider,
            constants: PoolConstants {
                unit: U256::from(10u64).pow(U256::from(12u64)),
                c_max: Credits::new(1000),
                p_max: Credits::new(5000),
                epoch_len: 86_400,
                note_lifetime: 30,
                grace: 86_400,
                challenge_window: 3_600,
                bounty_bps: 0,
                tree_depth: 20,
                root_history_size: 64,
                genesis_time: 0,
                denominations: Vec::new(),
            },
            server_key: None,
        }
    }

    /// The constants a pool deployed with this config reports, `genesis_time` being its
    /// actual start of epoch 0 (the deploy block's timestamp when the config says 0).
    pub fn constants(&self, genesis_time: u64) -> PoolConstants {
        PoolConstants {
            genesis_time,
            ..self.constants.clone()
        }
    }

    fn to_sol(&self, token: Address, close_verifier: Address) -> ZkCreditsPool::Config {
        let (server_key_x, server_key_y) = self.server_key.unwrap_or_default();
        let c = &self.constants;
        ZkCreditsPool::Config {
            token,
            provider: self.provider,
            unit: c.unit,
            cMax: c.c_max.get(),
            pMax: c.p_max.get(),
            epochLen: c.epoch_len,
            noteLifetime: c.note_lifetime,
            grace: c.grace,
            challengeWindow: c.challenge_window,
            bountyBps: c.bounty_bps,
            treeDepth: c.tree_depth,
            rootHistorySize: c.root_history_size,
            genesisTime: c.genesis_time,
            denominations: c.denominations.iter().map(|d| d.get()).collect(),
            closeVerifier: close_verifier,
            serverKeyX: server_key_x,
            serverKeyY: server_key_y,
        }
    }
}

/// The constants of a deployed pool, as it reports them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolConstants {
    /// Token base units per credit unit.
    pub unit: U256,
    /// `C_max`, credit units.
    pub c_max: Credits,
    /// `P_max`, credit units.
    pub p_max: Credits,
    /// Seconds per epoch.
    pub epoch_len: u64,
    /// Epochs a note lives.
    pub note_lifetime: u64,
    /// Seconds of grace after an epoch's end.
    pub grace: u64,
    /// Seconds of the challenge window.
    pub challenge_window: u64,
    /// Slasher bounty, basis points.
    pub bounty_bps: u16,
    /// Tree depth (capacity 2^depth).
    pub tree_depth: u8,
    /// Number of committed roots the pool knows.
    pub root_history_size: u32,
    /// Start of epoch 0 (unix seconds).
    pub genesis_time: u64,
    /// Allowed note amounts (empty: any).
    pub denominations: Vec<Credits>,
}

/// Where the Poseidon libraries live on this chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Libraries {
    /// `PoseidonT3` (Merkle nodes, IDs, NC).
    pub poseidon_t3: Address,
    /// `PoseidonT5` (leaves).
    pub poseidon_t5: Address,
}

/// A deployed pool: everything a client, a gateway or an indexer needs to find it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The chain id.
    pub chain_id: u64,
    /// The JSON-RPC URL it was deployed through.
    pub rpc_url: String,
    /// The pool contract.
    pub pool: Address,
    /// The token contract.
    pub token: Address,
    /// The provider's address (at deploy time; the role can move).
    pub provider: Address,
    /// The pool's constants.
    pub constants: PoolConstants,
    /// The block of the pool's deployment: the indexer starts there.
    pub deploy_block: u64,
    /// The linked libraries.
    pub libraries: Libraries,
    /// The close proof verifier the pool calls.
    #[serde(default)]
    pub close_verifier: Address,
}

impl Deployment {
    /// Reads a pool's constants from the chain: for a pool deployed elsewhere.
    pub async fn from_chain(rpc_url: &str, pool: Address, deploy_block: u64) -> Result<Self> {
        let provider = rpc::read_provider(rpc_url)?;
        let chain_id = provider.get_chain_id().await?;
        let c = ZkCreditsPool::new(pool, &provider);
        if provider.get_code_at(pool).await?.is_empty() {
            return Err(Error::MissingCode {
                what: "ZkCreditsPool".into(),
                address: pool,
            });
        }
        let constants = PoolConstants {
            unit: c.unit().call().await?,
            c_max: Credits::new(c.cMax().call().await?),
            p_max: Credits::new(c.pMax().call().await?),
            epoch_len: c.epochLen().call().await?,
            note_lifetime: c.noteLifetime().call().await?,
            grace: c.grace().call().await?,
            challenge_window: c.challengeWindow().call().await?,
            bounty_bps: c.bountyBps().call().await?,
            tree_depth: c.treeDepth().call().await?,
            root_history_size: c.rootHistorySize().call().await?,
            genesis_time: c.genesisTime().call().await?,
            denominations: c
                .denominations()
                .call()
                .await?
                .into_iter()
                .map(Credits::new)
                .collect(),
        };
        let libs = linked_libraries();
        Ok(Self {
            chain_id,
            rpc_url: rpc_url.to_string(),
            pool,
            token: c.token().call().await?,
            provider: c
                .call_builder(&ZkCreditsPool::providerCall {})
                .call()
                .await?,
            constants,
            deploy_block,
            libraries: Libraries {
                poseidon_t3: library_address(libs, "PoseidonT3"),
                poseidon_t5: library_address(libs, "PoseidonT5"),
            },
            close_verifier: c.closeVerifier().call().await?,
        })
    }

    /// Writes the deployment as pretty JSON, atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self).map_err(Error::Json)?;
        text.push('\n');
        crate::fsutil::write_atomic(path, text.as_bytes())
    }

    /// Reads a deployment written by [`Deployment::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&text).map_err(Error::Json)
    }
}

fn library_address(libs: &[crate::bindings::LinkedLibrary], name: &str) -> Address {
    libs.iter()
        .find(|l| l.name == name)
        .map(|l| l.address)
        .unwrap_or_default()
}

// ------------------------------------------------------------------ contract code

const POOL_ARTIFACT: &str = include_str!("../../../contracts/artifacts/ZkCreditsPool.json");
const TOKEN_ARTIFACT: &str = include_str!("../../../contracts/artifacts/TestToken.json");
const VERIFIER_ARTIFACT: &str = include_str!("../../../contracts/artifacts/CloseVerifier.json");

/// A contract's code as solc compiled it: what a deployment sends, and what must then be
/// at its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractCode {
    /// The contract's name.
    pub name: String,
    /// The creation code, without constructor arguments.
    pub bytecode: Bytes,
    /// The runtime code, with zeros where the constructor writes immutables.
    pub deployed_bytecode: Bytes,
    /// The byte ranges `(start, length)` of `deployed_bytecode` that hold immutables
    /// (solc's `immutableReferences`): they differ per deployment and are not compared.
    pub immutables: Vec<(usize, usize)>,
    /// The ABI's functions as `name(inputs)(outputs)` signatures.
    pub functions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactJson {
    #[serde(default)]
    contract_name: Option<String>,
    #[serde(default)]
    abi: Vec<serde_json::Value>,
    bytecode: String,
    deployed_bytecode: String,
    #[serde(default)]
    immutable_references: std::collections::BTreeMap<String, Vec<ByteRange>>,
}

#[derive(Deserialize)]
struct ByteRange {
    start: usize,
    length: usize,
}

fn abi_type(param: &serde_json::Value) -> String {
    let ty = param.get("type").and_then(|t| t.as_str()).unwrap_or("?");
    match (ty.strip_prefix("tuple"), param.get("components")) {
        (Some(suffix), Some(serde_json::Value::Array(c))) => {
            let inner: Vec<String> = c.iter().map(abi_type).collect();
            format!("({}){suffix}", inner.join(","))
        }
        _ => ty.to_string(),
    }
}

fn abi_params(entry: &serde_json::Value, key: &str) -> String {
    let list = entry.get(key).and_then(|v| v.as_array());
    let types: Vec<String> = list.into_iter().flatten().map(abi_type).collect();
    types.join(",")
}

impl ContractCode {
    /// Parses a solc artifact (hardhat-style JSON: `abi`, `bytecode`, `deployedBytecode` as
    /// 0x strings, optionally `immutableReferences` and `contractName`), such as those in
    /// `contracts/artifacts/`. Unlinked library placeholders are refused.
    pub fn from_artifact(json: &str) -> std::result::Result<Self, String> {
        let a: ArtifactJson =
            serde_json::from_str(json).map_err(|e| format!("not a solc artifact ({e})"))?;
        let hex = |what: &str, s: &str| -> std::result::Result<Bytes, String> {
            if s.contains("__") {
                return Err(format!(
                    "{what} has unlinked library placeholders: link it first"
                ));
            }
            s.parse::<Bytes>()
                .map_err(|e| format!("{what} is not 0x-prefixed hex ({e})"))
        };
        let bytecode = hex("bytecode", &a.bytecode)?;
        let deployed_bytecode = hex("deployedBytecode", &a.deployed_bytecode)?;
        if bytecode.is_empty() || deployed_bytecode.is_empty() {
            return Err(
                "bytecode or deployedBytecode is empty (an interface or abstract contract?)".into(),
            );
        }
        let mut immutables = Vec::new();
        for r in a.immutable_references.values().flatten() {
            if r.start
                .checked_add(r.length)
                .is_none_or(|end| end > deployed_bytecode.len())
            {
                return Err(format!(
                    "immutableReferences names bytes {}..+{} beyond the runtime code",
                    r.start, r.length
                ));
            }
            immutables.push((r.start, r.length));
        }
        immutables.sort_unstable();
        let mut functions: Vec<String> = a
            .abi
            .iter()
            .filter(|e| e.get("type").and_then(|t| t.as_str()) == Some("function"))
            .map(|e| {
                let name = e.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                format!(
                    "{name}({})({})",
                    abi_params(e, "inputs"),
                    abi_params(e, "outputs")
                )
            })
            .collect();
        functions.sort_unstable();
        Ok(Self {
            name: a.contract_name.unwrap_or_else(|| "contract".into()),
            bytecode,
            deployed_bytecode,
            immutables,
            functions,
        })
    }

    fn committed(json: &str) -> Self {
        // Cannot fail: the artifacts are committed, checked by `npm run check`, and parsed
        // by this module's tests.
        Self::from_artifact(json).expect("committed artifact parses")
    }

    /// `ZkCreditsPool` (linked to the Poseidon libraries' CREATE2 addresses).
    pub fn pool() -> &'static Self {
        static CODE: OnceLock<ContractCode> = OnceLock::new();
        CODE.get_or_init(|| Self::committed(POOL_ARTIFACT))
    }

    /// `TestToken`.
    pub fn test_token() -> &'static Self {
        static CODE: OnceLock<ContractCode> = OnceLock::new();
        CODE.get_or_init(|| Self::committed(TOKEN_ARTIFACT))
    }

    /// The close verifier generated from the development keys
    /// (`contracts/artifacts/CloseVerifier.json`).
    pub fn development_close_verifier() -> &'static Self {
        static CODE: OnceLock<ContractCode> = OnceLock::new();
        CODE.get_or_init(|| Self::committed(VERIFIER_ARTIFACT))
    }

    fn library(lib: &crate::bindings::LinkedLibrary) -> Self {
        Self {
            name: lib.name.clone(),
            bytecode: lib.bytecode.clone(),
            deployed_bytecode: lib.runtime_code(),
            immutables: Vec::new(),
            functions: Vec::new(),
        }
    }

    /// Where `code` (read from the chain) differs from this contract's runtime code outside
    /// the immutables; `None` when it matches.
    pub fn mismatch(&self, code: &[u8]) -> Option<String> {
        let expected = &self.deployed_bytecode;
        if code.is_empty() {
            return Some("there is no code".into());
        }
        if code.len() != expected.len() {
            return Some(format!(
                "{} bytes of code, expected {}",
                code.len(),
                expected.len()
            ));
        }
        let masked = |i: usize| {
            self.immutables
                .iter()
                .any(|&(start, len)| i >= start && i < start + len)
        };
        (0..code.len())
            .find(|&i| code[i] != expected[i] && !masked(i))
            .map(|i| format!("the code differs at byte {i}"))
    }
}

/// The close verifier a deployment uses: the committed development one (from keys anyone
/// can derive from a public seed) or one generated from a ceremony's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierArtifact {
    code: ContractCode,
    source: String,
}

impl VerifierArtifact {
    /// The committed `contracts/artifacts/CloseVerifier.json`, generated from the
    /// DEVELOPMENT keys: anyone can forge close proofs against it.
    pub fn development() -> Self {
        Self {
            code: ContractCode::development_close_verifier().clone(),
            source: "contracts/artifacts/CloseVerifier.json (development keys)".into(),
        }
    }

    /// A solc artifact of the same shape as `contracts/artifacts/CloseVerifier.json`. Its
    /// ABI must have the functions the pool calls (those of the development verifier).
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |reason: String| DeployError::VerifierArtifact {
            path: path.to_path_buf(),
            reason,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let code = ContractCode::from_artifact(&text).map_err(bad)?;
        for f in &ContractCode::development_close_verifier().functions {
            if !code.functions.contains(f) {
                return Err(bad(format!(
                    "its ABI has no function {f}, which the pool calls: is it a close verifier?"
                ))
                .into());
            }
        }
        Ok(Self {
            code,
            source: path.display().to_string(),
        })
    }

    /// Whether this is the development verifier (its runtime code is the committed one's),
    /// whatever file it came from.
    pub fn is_development(&self) -> bool {
        self.code.deployed_bytecode == ContractCode::development_close_verifier().deployed_bytecode
    }

    /// Its code.
    pub fn code(&self) -> &ContractCode {
        &self.code
    }

    /// Where it came from (a path, or the committed development artifact).
    pub fn source(&self) -> &str {
        &self.source
    }
}

// ------------------------------------------------------------------ errors

fn eth(wei: &U256) -> String {
    alloy::primitives::utils::format_ether(*wei)
}

fn gwei(wei: &u128) -> String {
    alloy::primitives::utils::format_units(U256::from(*wei), "gwei")
        .unwrap_or_else(|_| format!("{wei} wei"))
}

/// Why a deployment was refused or failed (beside the RPC and contract errors of
/// [`Error`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The JSON-RPC endpoint did not answer.
    #[error("cannot reach the JSON-RPC endpoint {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What went wrong, and what to check.
        reason: String,
    },
    /// No contract at the token address.
    #[error(
        "there is no contract at the token address {token} on chain {chain_id}: check --token and the RPC URL"
    )]
    NoToken {
        /// The token address given.
        token: Address,
        /// The chain.
        chain_id: u64,
    },
    /// The CREATE2 factory the libraries are deployed through is missing.
    #[error(
        "the deterministic CREATE2 factory {0} is not on this chain, and the Poseidon libraries \
         are not deployed: deploy them elsewhere and relink the pool (contracts/README.md)"
    )]
    NoFactory(Address),
    /// Other code sits where a library must be.
    #[error("other code is at {address}, where {name} must be: {detail}")]
    LibraryClash {
        /// The library.
        name: String,
        /// Its CREATE2 address.
        address: Address,
        /// How the code differs.
        detail: String,
    },
    /// The deployer cannot pay for the deployment.
    #[error(
        "the deployer {address} holds {} ETH, but the deployment needs up to {} ETH ({gas} gas \
         at a max fee of {} gwei): send it at least {} ETH more and run again",
        eth(.balance), eth(.needed), gwei(.max_fee_per_gas), eth(&.needed.saturating_sub(*.balance))
    )]
    InsufficientFunds {
        /// The deployer.
        address: Address,
        /// What it holds (wei).
        balance: U256,
        /// What the transactions may cost at most (wei).
        needed: U256,
        /// Their total gas limit.
        gas: u64,
        /// The max fee per gas they are sent with (wei).
        max_fee_per_gas: u128,
    },
    /// The deployer sent something else between the plan and its execution.
    #[error(
        "the deployer's nonce moved from {planned} to {now} since the plan was made (another \
         transaction from this account?): the planned addresses are wrong; run deploy again"
    )]
    NonceMoved {
        /// The nonce the plan counted on.
        planned: u64,
        /// The nonce now.
        now: u64,
    },
    /// A contract landed elsewhere than planned.
    #[error("{name} landed at {got}, not at the planned {planned}")]
    WrongAddress {
        /// The contract.
        name: String,
        /// The planned address.
        planned: Address,
        /// Where it is.
        got: Address,
    },
    /// The code on chain is not the artifact's.
    #[error("the code at {address} is not {name}'s runtime code: {detail}")]
    CodeMismatch {
        /// The contract.
        name: String,
        /// Its address.
        address: Address,
        /// How it differs.
        detail: String,
    },
    /// A pool constant read back differs from what was deployed.
    #[error("the pool's {what} reads back as {got}, but {expected} was deployed")]
    ConstantMismatch {
        /// Which constant.
        what: String,
        /// What was asked.
        expected: String,
        /// What the pool reports.
        got: String,
    },
    /// Gas estimation of a creation failed.
    #[error("estimating the gas of {name}: {source}")]
    Estimate {
        /// The contract.
        name: String,
        /// What the node said.
        #[source]
        source: alloy::transports::TransportError,
    },
    /// A `--verifier-artifact` file is unusable.
    #[error("verifier artifact {path:?}: {reason}")]
    VerifierArtifact {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

// ------------------------------------------------------------------ the plan

/// Extra gas on top of each estimate, in percent: the limit, not the cost (unused gas is
/// not paid).
pub const GAS_MARGIN_PERCENT: u64 = 10;

/// What the deployment's transactions pay per gas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fees {
    /// EIP-1559 fees (`eth_feeHistory`).
    Eip1559 {
        /// The most paid per gas (base fee plus tip).
        max_fee_per_gas: u128,
        /// The tip.
        max_priority_fee_per_gas: u128,
    },
    /// A legacy gas price (chains without a base fee).
    Legacy {
        /// Per gas.
        gas_price: u128,
    },
}

impl Fees {
    /// The most a transaction pays per gas.
    pub fn max_per_gas(&self) -> u128 {
        match *self {
            Self::Eip1559 {
                max_fee_per_gas, ..
            } => max_fee_per_gas,
            Self::Legacy { gas_price } => gas_price,
        }
    }

    fn apply(&self, tx: &mut TransactionRequest) {
        match *self {
            Self::Eip1559 {
                max_fee_per_gas,
                max_priority_fee_per_gas,
            } => {
                tx.set_max_fee_per_gas(max_fee_per_gas);
                tx.set_max_priority_fee_per_gas(max_priority_fee_per_gas);
            }
            Self::Legacy { gas_price } => tx.set_gas_price(gas_price),
        }
    }
}

/// How a planned contract gets to its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creation {
    /// Its code is there already (a library someone deployed through the factory).
    Present,
    /// Through the deterministic CREATE2 factory, from a transaction with this nonce.
    Create2 {
        /// The factory.
        factory: Address,
        /// The salt.
        salt: B256,
        /// The deployer's nonce for the transaction to the factory.
        nonce: u64,
    },
    /// A creation transaction with this nonce (address from deployer and nonce).
    Create {
        /// The deployer's nonce.
        nonce: u64,
    },
}

/// One contract of a [`DeployPlan`].
#[derive(Clone, Debug)]
pub struct PlannedContract {
    /// The contract's name (`PoseidonT3`, `CloseVerifier`, `ZkCreditsPool`, ...).
    pub name: String,
    /// Where it will be.
    pub address: Address,
    /// How it gets there.
    pub creation: Creation,
    /// The estimated gas of its transaction (0 when present).
    pub gas: u64,
    /// The gas limit it is sent with (the estimate plus [`GAS_MARGIN_PERCENT`]).
    pub gas_limit: u64,
    code: ContractCode,
    tx: Option<TransactionRequest>,
}

/// A contract of a deployment, once executed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployedContract {
    /// The contract's name.
    pub name: String,
    /// Its address.
    pub address: Address,
    /// Its transaction; `None` when the code was already there.
    pub tx: Option<TxInfo>,
}

/// Everything a deployment will do, known before anything is sent: the addresses the
/// contracts get, each creation's estimated gas, and what it costs. Made by
/// [`DeployPlan::new`], then [`DeployPlan::execute`]d and [`DeployPlan::verify`]d.
#[derive(Clone, Debug)]
pub struct DeployPlan {
    /// The JSON-RPC URL (written into the [`Deployment`]).
    pub rpc_url: String,
    /// The chain id.
    pub chain_id: u64,
    /// The account that sends every transaction.
    pub deployer: Address,
    /// Its nonce when the plan was made (the first transaction's).
    pub nonce: u64,
    /// Its balance when the plan was made (wei).
    pub balance: U256,
    /// `eth_gasPrice` when the plan was made (wei).
    pub gas_price: u128,
    /// What the transactions pay per gas.
    pub fees: Fees,
    /// The pool's parameters (`token` always set: the given one or the planned `TestToken`).
    pub config: PoolConfig,
    /// The contracts in the order they are sent: the libraries, a `TestToken` when no
    /// token was given, the close verifier, the pool (last).
    pub contracts: Vec<PlannedContract>,
    /// Where the close verifier will be.
    pub close_verifier: Address,
}

/// The chain id of the node behind `provider`: the first call of a deployment, whose
/// failure is reported as the endpoint being unreachable, with the whole cause.
pub async fn reach(provider: &DynProvider, url: &str) -> Result<u64> {
    provider
        .get_chain_id()
        .await
        .map_err(|e| unreachable(url, &e))
}

fn unreachable(url: &str, e: &(dyn std::error::Error + 'static)) -> Error {
    // The transport's own message can be empty; its sources say what happened.
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    parts.retain(|p| !p.trim().is_empty());
    parts.dedup();
    let mut reason = parts.join(": ");
    if url.starts_with("https://") && !cfg!(feature = "tls") {
        reason.push_str(" (this build has no TLS: https:// URLs need the `tls` feature)");
    } else {
        reason.push_str(" (is the node running, and the URL right?)");
    }
    DeployError::Unreachable {
        url: url.to_string(),
        reason,
    }
    .into()
}

impl DeployPlan {
    /// Plans the deployment of a pool with `config` and the close verifier `verifier`, sent
    /// by `deployer` through `provider` (whose node is at `rpc_url`). Sends nothing.
    ///
    /// The pool's constructor requires code at the token and verifier addresses, which do
    /// not exist yet: its gas is estimated with their runtime code put at their future
    /// addresses by a state override of `eth_estimateGas` (anvil, geth, reth, erigon and
    /// nethermind support it). A parameter the pool refuses comes back as its
    /// `InvalidConfig` error here, before anything is sent.
    pub async fn new(
        provider: &DynProvider,
        rpc_url: &str,
        deployer: Address,
        config: &PoolConfig,
        verifier: &VerifierArtifact,
    ) -> Result<Self> {
        let chain_id = reach(provider, rpc_url).await?;
        let nonce = provider.get_transaction_count(deployer).pending().await?;
        let balance = provider.get_balance(deployer).await?;
        let gas_price = provider.get_gas_price().await?;
        let fees = match provider.estimate_eip1559_fees().await {
            // Never below what the node asks now.
            Ok(f) => Fees::Eip1559 {
                max_fee_per_gas: f.max_fee_per_gas.max(gas_price),
                max_priority_fee_per_gas: f.max_priority_fee_per_gas,
            },
            Err(_) => Fees::Legacy { gas_price },
        };

        let mut contracts = Vec::new();
        let mut next_nonce = nonce;
        let libs = linked_libraries();
        for lib in libs {
            let code = ContractCode::library(lib);
            let on_chain = provider.get_code_at(lib.address).await?;
            let creation = if on_chain.is_empty() {
                if provider.get_code_at(lib.factory).await?.is_empty() {
                    return Err(DeployError::NoFactory(lib.factory).into());
                }
                next_nonce += 1;
                Creation::Create2 {
                    factory: lib.factory,
                    salt: lib.salt,
                    nonce: next_nonce - 1,
                }
            } else if let Some(detail) = code.mismatch(&on_chain) {
                return Err(DeployError::LibraryClash {
                    name: lib.name.clone(),
                    address: lib.address,
                    detail,
                }
                .into());
            } else {
                Creation::Present
            };
            let tx = matches!(creation, Creation::Create2 { .. }).then(|| {
                let mut data = lib.salt.to_vec();
                data.extend_from_slice(&lib.bytecode);
                TransactionRequest::default()
                    .with_from(deployer)
                    .with_to(lib.factory)
                    .with_input(Bytes::from(data))
            });
            contracts.push(PlannedContract {
                name: lib.name.clone(),
                address: lib.address,
                creation,
                gas: 0,
                gas_limit: 0,
                code,
                tx,
            });
        }

        let mut create = |name: &str, code: ContractCode, tx: TransactionRequest| {
            let planned = PlannedContract {
                name: name.to_string(),
                address: deployer.create(next_nonce),
                creation: Creation::Create { nonce: next_nonce },
                gas: 0,
                gas_limit: 0,
                code,
                tx: Some(tx.with_from(deployer)),
            };
            next_nonce += 1;
            planned
        };
        let token = match config.token {
            Some(token) => {
                if provider.get_code_at(token).await?.is_empty() {
                    return Err(DeployError::NoToken { token, chain_id }.into());
                }
                token
            }
            None => {
                let tx = TestToken::deploy_builder(
                    provider,
                    "zkcredits test token".to_string(),
                    "ZKCT".to_string(),
                )
                .into_transaction_request();
                let planned = create("TestToken", ContractCode::test_token().clone(), tx);
                let address = planned.address;
                contracts.push(planned);
                address
            }
        };
        let verifier_tx =
            TransactionRequest::default().with_deploy_code(verifier.code().bytecode.clone());
        let planned = create("CloseVerifier", verifier.code().clone(), verifier_tx);
        let close_verifier = planned.address;
        contracts.push(planned);
        let mut config = config.clone();
        config.token = Some(token);
        let pool_tx = ZkCreditsPool::deploy_builder(provider, config.to_sol(token, close_verifier))
            .into_transaction_request();
        contracts.push(create(
            "ZkCreditsPool",
            ContractCode::pool().clone(),
            pool_tx,
        ));

        // The pool's constructor checks that its token and verifier have code: give the
        // planned ones theirs for the estimate, and the deployer the pool's nonce (a node
        // derives a creation's address from the sender's nonce in its state, which would
        // otherwise be the verifier's address when no library is sent).
        let mut overrides = alloy::rpc::types::state::StateOverridesBuilder::default()
            .with_nonce(deployer, next_nonce - 1);
        for c in &contracts {
            if c.name != "ZkCreditsPool" {
                overrides = overrides.with_code(c.address, c.code.deployed_bytecode.clone());
            }
        }
        let overrides = overrides.build();
        for c in &mut contracts {
            let Some(tx) = &c.tx else { continue };
            let estimate = if c.name == "ZkCreditsPool" {
                provider
                    .estimate_gas(tx.clone())
                    .overrides(overrides.clone())
                    .await
            } else {
                provider.estimate_gas(tx.clone()).await
            };
            c.gas = estimate.map_err(|e| match Error::from(e) {
                Error::Transport(source) => DeployError::Estimate {
                    name: c.name.clone(),
                    source,
                }
                .into(),
                other => other,
            })?;
            c.gas_limit = c.gas + c.gas * GAS_MARGIN_PERCENT / 100;
        }
        Ok(Self {
            rpc_url: rpc_url.to_string(),
            chain_id,
            deployer,
            nonce,
            balance,
            gas_price,
            fees,
            config,
            contracts,
            close_verifier,
        })
    }

    /// The pool's planned address.
    pub fn pool(&self) -> Address {
        self.contracts.last().map(|c| c.address).unwrap_or_default()
    }

    /// How many transactions the deployment sends.
    pub fn transactions(&self) -> usize {
        self.contracts.iter().filter(|c| c.tx.is_some()).count()
    }

    /// The estimated gas of all its transactions.
    pub fn total_gas(&self) -> u64 {
        self.contracts.iter().map(|c| c.gas).sum()
    }

    /// What the deployment costs at the current gas price (wei).
    pub fn cost(&self) -> U256 {
        U256::from(self.total_gas()) * U256::from(self.gas_price)
    }

    /// The most it can cost: every gas limit at the max fee (wei). The deployer must hold
    /// this much.
    pub fn max_cost(&self) -> U256 {
        let limit: u64 = self.contracts.iter().map(|c| c.gas_limit).sum();
        U256::from(limit) * U256::from(self.fees.max_per_gas())
    }

    /// An error when the deployer holds less than [`DeployPlan::max_cost`].
    pub fn check_funds(&self) -> Result<()> {
        let needed = self.max_cost();
        if self.balance < needed {
            return Err(DeployError::InsufficientFunds {
                address: self.deployer,
                balance: self.balance,
                needed,
                gas: self.contracts.iter().map(|c| c.gas_limit).sum(),
                max_fee_per_gas: self.fees.max_per_gas(),
            }
            .into());
        }
        Ok(())
    }

    /// Sends the planned transactions in order through `provider` (which must sign for
    /// the deployer), each with its planned nonce, gas limit and fees, waiting for each
    /// receipt; `mined` is called after each. Refuses when the deployer cannot pay or its
    /// nonce moved since the plan.
    pub async fn execute(
        &self,
        provider: &DynProvider,
        mut mined: impl FnMut(&DeployedContract),
    ) -> Result<Vec<DeployedContract>> {
        self.check_funds()?;
        let now = provider
            .get_transaction_count(self.deployer)
            .pending()
            .await?;
        if now != self.nonce {
            return Err(DeployError::NonceMoved {
                planned: self.nonce,
                now,
            }
            .into());
        }
        let mut deployed = Vec::with_capacity(self.contracts.len());
        for c in &self.contracts {
            let tx = match (&c.tx, c.creation) {
                (Some(tx), Creation::Create { nonce } | Creation::Create2 { nonce, .. }) => {
                    let mut tx = tx.clone().with_nonce(nonce).with_gas_limit(c.gas_limit);
                    self.fees.apply(&mut tx);
                    let receipt = rpc::send(provider, tx).await?;
                    if let Creation::Create { .. } = c.creation {
                        let got = receipt.contract_address.unwrap_or_default();
                        if got != c.address {
                            return Err(DeployError::WrongAddress {
                                name: c.name.clone(),
                                planned: c.address,
                                got,
                            }
                            .into());
                        }
                    }
                    Some(TxInfo::of(&receipt))
                }
                _ => None,
            };
            let d = DeployedContract {
                name: c.name.clone(),
                address: c.address,
                tx,
            };
            tracing::info!(contract = %d.name, address = %d.address, "deployed");
            mined(&d);
            deployed.push(d);
        }
        Ok(deployed)
    }

    /// Checks what [`DeployPlan::execute`] left on chain: the code at every address is the
    /// artifact's runtime code (immutables masked), and the pool's token, provider,
    /// verifier and constants read back as planned (a genesis time of 0 as the deploy
    /// block's timestamp; the server key, when one was given, as usable). Returns the
    /// [`Deployment`].
    pub async fn verify(
        &self,
        provider: &DynProvider,
        deployed: &[DeployedContract],
    ) -> Result<Deployment> {
        for c in &self.contracts {
            let code = provider.get_code_at(c.address).await?;
            if let Some(detail) = c.code.mismatch(&code) {
                return Err(DeployError::CodeMismatch {
                    name: c.name.clone(),
                    address: c.address,
                    detail,
                }
                .into());
            }
        }
        let pool = self.pool();
        let block = deployed
            .iter()
            .find(|d| d.address == pool)
            .and_then(|d| d.tx)
            .map(|t| t.block_number)
            .ok_or_else(|| Error::NotOnNode("the pool's deployment transaction".into()))?;
        let deployment = Deployment::from_chain(&self.rpc_url, pool, block).await?;
        let genesis = if self.config.constants.genesis_time == 0 {
            provider
                .get_block_by_number(block.into())
                .await?
                .ok_or_else(|| Error::NotOnNode(format!("block {block}")))?
                .header
                .timestamp
        } else {
            self.config.constants.genesis_time
        };
        let expected = self.config.constants(genesis);
        let mismatch = |what: &str, expected: String, got: String| -> Result<()> {
            if expected == got {
                return Ok(());
            }
            Err(DeployError::ConstantMismatch {
                what: what.to_string(),
                expected,
                got,
            }
            .into())
        };
        let token = self.config.token.unwrap_or_default();
        mismatch("token", token.to_string(), deployment.token.to_string())?;
        mismatch(
            "provider",
            self.config.provider.to_string(),
            deployment.provider.to_string(),
        )?;
        mismatch(
            "closeVerifier",
            self.close_verifier.to_string(),
            deployment.close_verifier.to_string(),
        )?;
        mismatch(
            "chain id",
            self.chain_id.to_string(),
            deployment.chain_id.to_string(),
        )?;
        mismatch(
            "constants",
            format!("{expected:?}"),
            format!("{:?}", deployment.constants),
        )?;
        if let Some((x, y)) = self.config.server_key {
            let usable = ZkCreditsPool::new(pool, provider)
                .serverKeyUsable(x, y)
                .call()
                .await?;
            mismatch(
                "server key",
                "usable".into(),
                if usable { "usable" } else { "not usable" }.into(),
            )?;
        }
        Ok(deployment)
    }
}

/// Deploys a `TestToken` (public, unrestricted mint: tests and devnets only).
pub async fn deploy_test_token(
    provider: &DynProvider,
    from: Address,
    name: &str,
    symbol: &str,
) -> Result<Address> {
    let tx = TestToken::deploy_builder(provider, name.to_string(), symbol.to_string())
        .into_transaction_request()
        .with_from(from);
    let receipt = rpc::send(provider, tx).await?;
    receipt
        .contract_address
        .ok_or(Error::NotCreated("the token"))
}

/// Deploys the close verifier generated from the development keys
/// (`contracts/src/CloseVerifier.sol`).
pub async fn deploy_close_verifier(provider: &DynProvider, from: Address) -> Result<Address> {
    let tx = CloseVerifier::deploy_builder(provider)
        .into_transaction_request()
        .with_from(from);
    let receipt = rpc::send(provider, tx).await?;
    receipt
        .contract_address
        .ok_or(Error::NotCreated("the close verifier"))
}

/// Deploys the libraries (if absent), the token (if `config.token` is `None`), the
/// development close verifier and the pool, signing with `deployer`; verifies the code
/// and reads the pool's constants back ([`DeployPlan`]: plan, execute, verify). For
/// devnets and tests: a real deployment chooses its verifier (`zkcredits deploy`).
pub async fn deploy(
    rpc_url: &str,
    deployer: PrivateKeySigner,
    config: &PoolConfig,
) -> Result<Deployment> {
    let from = deployer.address();
    let provider = rpc::wallet_provider(rpc_url, deployer)?;
    let plan = DeployPlan::new(
        &provider,
        rpc_url,
        from,
        config,
        &VerifierArtifact::development(),
    )
    .await?;
    let deployed = plan.execute(&provider, |_| {}).await?;
    let deployment = plan.verify(&provider, &deployed).await?;
    tracing::info!(pool = %deployment.pool, token = %deployment.token, block = deployment.deploy_block, "pool deployed");
    Ok(deployment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_round_trips_through_json() {
        let mut d = crate::testing::offline_deployment();
        // Values that a lossy number format would change.
        d.constants.unit = U256::from(10u64).pow(U256::from(12u64));
        d.constants.genesis_time = 1_700_000_000;
        d.constants.denominations = vec![Credits::new(1000), Credits::new(5000)];
        let json = serde_json::to_string(&d).expect("serialise");
        assert_eq!(serde_json::from_str::<Deployment>(&json).expect("parse"), d);
        assert!(json.contains("\"chain_id\":31337"));
    }

    #[test]
    fn the_committed_artifacts_parse_and_only_the_pool_has_immutables() {
        let pool = ContractCode::pool();
        assert_eq!(pool.name, "ZkCreditsPool");
        // token, unit, cMax, ..., closeVerifier: 14 immutables, each read in a few places.
        assert!(pool.immutables.len() >= 14, "{:?}", pool.immutables);
        assert!(pool.immutables.iter().all(|&(_, len)| len == 32));
        assert!(ContractCode::test_token().immutables.is_empty());
        let verifier = ContractCode::development_close_verifier();
        assert!(verifier.immutables.is_empty());
        assert!(
            verifier
                .functions
                .contains(&"verifyProof(uint256[8],uint256[14])()".to_string()),
            "{:?}",
            verifier.functions
        );
        assert!(VerifierArtifact::development().is_development());
    }

    #[test]
    fn code_differing_only_in_immutables_matches_and_anything_else_does_not() {
        let pool = ContractCode::pool();
        let mut code = pool.deployed_bytecode.to_vec();
        assert_eq!(pool.mismatch(&code), None);
        let (start, len) = pool.immutables[0];
        code[start..start + len].fill(0xab);
        assert_eq!(pool.mismatch(&code), None);
        let outside = (0..code.len())
            .find(|i| !pool.immutables.iter().any(|&(s, l)| *i >= s && *i < s + l))
            .expect("code outside the immutables");
        code[outside] ^= 1;
        assert!(pool.mismatch(&code).is_some());
        code[outside] ^= 1;
        code.push(0);
        assert!(pool.mismatch(&code).is_some());
        assert!(pool.mismatch(&[]).is_some());
    }

    #[test]
    fn a_verifier_artifact_must_be_linked_hex_with_the_pools_functions() {
        let dir =
            std::env::temp_dir().join(format!("zkcredits-verifier-art-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let committed: serde_json::Value = serde_json::from_str(VERIFIER_ARTIFACT).expect("json");
        let write = |name: &str, v: &serde_json::Value| {
            let p = dir.join(name);
            std::fs::write(&p, serde_json::to_string(v).expect("json")).expect("write");
            p
        };
        // A copy of the development verifier is still the development verifier.
        let copy = VerifierArtifact::load(&write("copy.json", &committed)).expect("copy loads");
        assert!(copy.is_development());
        // Another runtime code with the same ABI is not.
        let mut other = committed.clone();
        other["bytecode"] = "0x6001600c60003960016000f300".into();
        other["deployedBytecode"] = "0x00".into();
        let other = VerifierArtifact::load(&write("other.json", &other)).expect("other loads");
        assert!(!other.is_development());
        let mut no_abi = committed.clone();
        no_abi["abi"] = serde_json::json!([]);
        let e = VerifierArtifact::load(&write("no_abi.json", &no_abi)).expect_err("no ABI");
        assert!(e.to_string().contains("verifyProof"), "{e}");
        let mut unlinked = committed;
        unlinked["bytecode"] = "0x60__$abcdef$__00".into();
        let e = VerifierArtifact::load(&write("unlinked.json", &unlinked)).expect_err("unlinked");
        assert!(e.to_string().contains("unlinked"), "{e}");
        let e = VerifierArtifact::load(&dir.join("absent.json")).expect_err("absent");
        assert!(e.to_string().contains("cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
