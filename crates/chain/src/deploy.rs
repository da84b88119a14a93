//! Deploying the pool: the Poseidon libraries through the CREATE2 factory (when absent), a
//! `TestToken` (unless a token is given), and `ZkCreditsPool` with a [`PoolConfig`]. The
//! result is a [`Deployment`], which is written to and read from JSON.

use std::path::Path;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};

use crate::bindings::{CloseVerifier, TestToken, ZkCreditsPool, linked_libraries};
use crate::{Error, Result, rpc};

/// The deployment parameters of a pool (`docs/PROTOCOL.md §2`, `contracts/README.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolConfig {
    /// The ERC-20 the notes are paid in; `None` deploys a fresh `TestToken`.
    pub token: Option<Address>,
    /// The provider: receives revenue, records violations, claims expired epochs.
    pub provider: Address,
    /// Token base units per credit unit (`unit`, > 0, <= 2^128).
    pub unit: U256,
    /// Charge per request in credit units (`C_max`).
    pub c_max: u64,
    /// Largest policy penalty per request in credit units (`P_max`).
    pub p_max: u64,
    /// Seconds per epoch.
    pub epoch_len: u64,
    /// Epochs from a deposit's epoch to its expiry epoch.
    pub note_lifetime: u64,
    /// Seconds after an epoch's end before the provider may claim it.
    pub grace: u64,
    /// Seconds a unilateral close waits for challenges.
    pub challenge_window: u64,
    /// Share of a slashed note paid to the slasher, in basis points.
    pub bounty_bps: u16,
    /// The tree holds at most 2^tree_depth leaves (1..=20: the levels the circuits prove).
    pub tree_depth: u8,
    /// How many recent committed roots the pool knows.
    pub root_history_size: u32,
    /// Start of epoch 0 in unix seconds; 0 means the deploy time.
    pub genesis_time: u64,
    /// Allowed note amounts in credit units, strictly increasing; empty allows any.
    pub denominations: Vec<u64>,
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
            unit: U256::from(10u64).pow(U256::from(12u64)),
            c_max: 1000,
            p_max: 5000,
            epoch_len: 86_400,
            note_lifetime: 30,
            grace: 86_400,
            challenge_window: 3_600,
            bounty_bps: 0,
            tree_depth: 20,
            root_history_size: 64,
            genesis_time: 0,
            denominations: Vec::new(),
            server_key: None,
        }
    }

    fn to_sol(&self, token: Address, close_verifier: Address) -> ZkCreditsPool::Config {
        let (server_key_x, server_key_y) = self.server_key.unwrap_or_default();
        ZkCreditsPool::Config {
            token,
            provider: self.provider,
            unit: self.unit,
            cMax: self.c_max,
            pMax: self.p_max,
            epochLen: self.epoch_len,
            noteLifetime: self.note_lifetime,
            grace: self.grace,
            challengeWindow: self.challenge_window,
            bountyBps: self.bounty_bps,
            treeDepth: self.tree_depth,
            rootHistorySize: self.root_history_size,
            genesisTime: self.genesis_time,
            denominations: self.denominations.clone(),
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
    pub c_max: u64,
    /// `P_max`, credit units.
    pub p_max: u64,
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
    pub denominations: Vec<u64>,
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
            c_max: c.cMax().call().await?,
            p_max: c.pMax().call().await?,
            epoch_len: c.epochLen().call().await?,
            note_lifetime: c.noteLifetime().call().await?,
            grace: c.grace().call().await?,
            challenge_window: c.challengeWindow().call().await?,
            bounty_bps: c.bountyBps().call().await?,
            tree_depth: c.treeDepth().call().await?,
            root_history_size: c.rootHistorySize().call().await?,
            genesis_time: c.genesisTime().call().await?,
            denominations: c.denominations().call().await?,
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

/// Makes sure the Poseidon libraries exist at the addresses the pool's bytecode is linked
/// to: for each one without code, sends `salt ++ bytecode` to the CREATE2 factory.
pub async fn ensure_libraries(provider: &DynProvider, from: Address) -> Result<Libraries> {
    let libs = linked_libraries();
    for lib in libs {
        let runtime = lib.runtime_code();
        let code = provider.get_code_at(lib.address).await?;
        if code == runtime {
            continue;
        }
        if !code.is_empty() {
            return Err(Error::MissingCode {
                what: format!("{} (other code is there)", lib.name),
                address: lib.address,
            });
        }
        if provider.get_code_at(lib.factory).await?.is_empty() {
            return Err(Error::MissingCode {
                what: "the deterministic CREATE2 factory; deploy the libraries elsewhere and relink (contracts/README.md)".into(),
                address: lib.factory,
            });
        }
        let mut data = lib.salt.to_vec();
        data.extend_from_slice(&lib.bytecode);
        let tx = TransactionRequest::default()
            .with_from(from)
            .with_to(lib.factory)
            .with_input(Bytes::from(data));
        rpc::send(provider, tx).await?;
        if provider.get_code_at(lib.address).await? != runtime {
            return Err(Error::MissingCode {
                what: format!("{} after its CREATE2 deployment", lib.name),
                address: lib.address,
            });
        }
        tracing::info!(library = %lib.name, address = %lib.address, "deployed");
    }
    Ok(Libraries {
        poseidon_t3: library_address(libs, "PoseidonT3"),
        poseidon_t5: library_address(libs, "PoseidonT5"),
    })
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
    receipt.contract_address.ok_or(Error::Rpc(
        "token deployment receipt has no contract address".into(),
    ))
}

/// Deploys the close verifier generated from the close circuit's keys
/// (`contracts/src/CloseVerifier.sol`).
pub async fn deploy_close_verifier(provider: &DynProvider, from: Address) -> Result<Address> {
    let tx = CloseVerifier::deploy_builder(provider)
        .into_transaction_request()
        .with_from(from);
    let receipt = rpc::send(provider, tx).await?;
    receipt.contract_address.ok_or(Error::Rpc(
        "verifier deployment receipt has no contract address".into(),
    ))
}

/// Deploys the libraries (if absent), the token (if `config.token` is `None`), the close
/// verifier and the pool, signing with `deployer`, and reads the pool's constants back.
pub async fn deploy(
    rpc_url: &str,
    deployer: PrivateKeySigner,
    config: &PoolConfig,
) -> Result<Deployment> {
    let from = deployer.address();
    let provider = rpc::wallet_provider(rpc_url, deployer)?;
    ensure_libraries(&provider, from).await?;
    let token = match config.token {
        Some(t) => t,
        None => deploy_test_token(&provider, from, "zkcredits test token", "ZKCT").await?,
    };
    let verifier = deploy_close_verifier(&provider, from).await?;
    let tx = ZkCreditsPool::deploy_builder(&provider, config.to_sol(token, verifier))
        .into_transaction_request()
        .with_from(from);
    let receipt = rpc::send(&provider, tx).await?;
    let pool = receipt.contract_address.ok_or(Error::Rpc(
        "pool deployment receipt has no contract address".into(),
    ))?;
    let block = receipt.block_number.unwrap_or_default();
    tracing::info!(%pool, %token, block, "pool deployed");
    Deployment::from_chain(rpc_url, pool, block).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_round_trips_through_json() {
        let d = Deployment {
            chain_id: 31337,
            rpc_url: "http://127.0.0.1:8545".into(),
            pool: Address::repeat_byte(1),
            token: Address::repeat_byte(2),
            provider: Address::repeat_byte(3),
            constants: PoolConstants {
                unit: U256::from(10u64).pow(U256::from(12u64)),
                c_max: 1000,
                p_max: 5000,
                epoch_len: 86_400,
                note_lifetime: 30,
                grace: 86_400,
                challenge_window: 3600,
                bounty_bps: 0,
                tree_depth: 20,
                root_history_size: 64,
                genesis_time: 1_700_000_000,
                denominations: vec![1000, 5000],
            },
            deploy_block: 7,
            libraries: Libraries {
                poseidon_t3: Address::repeat_byte(4),
                poseidon_t5: Address::repeat_byte(5),
            },
            close_verifier: Address::repeat_byte(6),
        };
        let json = serde_json::to_string(&d).expect("serialise");
        assert_eq!(serde_json::from_str::<Deployment>(&json).expect("parse"), d);
        assert!(json.contains("\"chain_id\":31337"));
    }
}
