//! The test harness: [`TestChain`], an anvil of its own on a free port with the pool
//! deployed, for this crate's tests and other crates' (gateway, client, CLI).
//!
//! ```ignore
//! # async fn demo() -> zkcredits_chain::Result<()> {
//! use zkcredits_chain::testing::TestChain;
//! let chain = TestChain::start().await?;          // anvil + libraries + token + pool
//! let user = chain.client(2).await?;              // dev account 2, holding test tokens
//! # Ok(()) }
//! ```
//!
//! Dev accounts: 0 deploys, 1 is the provider, the others are users; every account gets
//! [`TestChain::MINTED`] test tokens.

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;

use crate::anvil::{AnvilProcess, DEV_ACCOUNTS, dev_address, dev_signer};
use crate::client::PoolClient;
use crate::deploy::{Deployment, PoolConfig, deploy};
use crate::{Error, Result};

/// Dev account that deploys.
pub const DEPLOYER: usize = 0;
/// Dev account that is the provider.
pub const PROVIDER: usize = 1;

/// A deployment that exists only on paper, for tests that need its values and no chain:
/// chain 31337, addresses `0x11..` (pool), `0x22..` (token), `0x33..` (provider),
/// `0x44..`/`0x55..` (libraries), `0x66..` (close verifier); `C_max` 1000, `P_max`
/// 5000, one token base unit per credit unit, deploy block 7, and an RPC URL nothing
/// listens on (a test that reaches for the chain fails at once).
pub fn offline_deployment() -> Deployment {
    use crate::deploy::{Libraries, PoolConstants};
    Deployment {
        chain_id: 31337,
        rpc_url: "http://127.0.0.1:1".into(),
        pool: Address::repeat_byte(0x11),
        token: Address::repeat_byte(0x22),
        provider: Address::repeat_byte(0x33),
        constants: PoolConstants {
            unit: U256::from(1u64),
            c_max: zkcredits_protocol::credits::Credits::new(1000),
            p_max: zkcredits_protocol::credits::Credits::new(5000),
            epoch_len: 86_400,
            note_lifetime: 30,
            grace: 86_400,
            challenge_window: 3600,
            bounty_bps: 0,
            tree_depth: 20,
            root_history_size: 64,
            genesis_time: 0,
            denominations: Vec::new(),
        },
        deploy_block: 7,
        libraries: Libraries {
            poseidon_t3: Address::repeat_byte(0x44),
            poseidon_t5: Address::repeat_byte(0x55),
        },
        close_verifier: Address::repeat_byte(0x66),
    }
}

/// A local chain with a deployed pool, stopped when dropped.
#[derive(Debug)]
pub struct TestChain {
    anvil: AnvilProcess,
    deployment: Deployment,
}

impl TestChain {
    /// Test tokens minted to every dev account (10^30 base units: 10^12 tokens).
    pub const MINTED: u128 = 1_000_000_000_000_000_000_000_000_000_000;

    /// Starts anvil and deploys a pool with [`PoolConfig::dev`] (provider: account 1).
    pub async fn start() -> Result<Self> {
        Self::with_config(|_| {}).await
    }

    /// Starts anvil and deploys a pool with the dev config changed by `edit`.
    pub async fn with_config(edit: impl FnOnce(&mut PoolConfig)) -> Result<Self> {
        Self::with_anvil_args(&[], edit).await
    }

    /// Like [`TestChain::with_config`], with `anvil_args` passed to anvil (e.g. a larger
    /// block gas limit).
    pub async fn with_anvil_args(
        anvil_args: &[&str],
        edit: impl FnOnce(&mut PoolConfig),
    ) -> Result<Self> {
        let anvil = AnvilProcess::start(0, anvil_args).await?;
        let mut config = PoolConfig::dev(dev_address(PROVIDER));
        edit(&mut config);
        let deployment = deploy(anvil.url(), dev_signer(DEPLOYER), &config).await?;
        let chain = Self { anvil, deployment };
        chain.check_dev_accounts().await?;
        let minter = chain.client(DEPLOYER).await?;
        for i in 0..DEV_ACCOUNTS {
            minter
                .mint_test_tokens(dev_address(i), U256::from(Self::MINTED))
                .await?;
        }
        Ok(chain)
    }

    async fn check_dev_accounts(&self) -> Result<()> {
        let accounts = self.provider()?.get_accounts().await?;
        for (i, a) in accounts.iter().take(DEV_ACCOUNTS).enumerate() {
            if *a != dev_address(i) {
                return Err(Error::Anvil(format!(
                    "dev account {i} is {a}, expected {}",
                    dev_address(i)
                )));
            }
        }
        Ok(())
    }

    /// Deploys another pool on the same chain (same token unless `config.token` says
    /// otherwise), for tests that need other constants.
    pub async fn deploy_pool(&self, edit: impl FnOnce(&mut PoolConfig)) -> Result<Deployment> {
        let mut config = PoolConfig::dev(dev_address(PROVIDER));
        config.token = Some(self.deployment.token);
        edit(&mut config);
        deploy(self.anvil.url(), dev_signer(DEPLOYER), &config).await
    }

    /// The deployed pool.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The anvil process.
    pub fn anvil(&self) -> &AnvilProcess {
        &self.anvil
    }

    /// The JSON-RPC URL.
    pub fn url(&self) -> &str {
        self.anvil.url()
    }

    /// A read-only provider.
    pub fn provider(&self) -> Result<DynProvider> {
        self.anvil.provider()
    }

    /// Dev account `i`'s signer.
    pub fn signer(&self, i: usize) -> PrivateKeySigner {
        dev_signer(i)
    }

    /// Dev account `i`'s address.
    pub fn address(&self, i: usize) -> Address {
        dev_address(i)
    }

    /// A pool client for the main pool, signing as dev account `i`.
    pub async fn client(&self, i: usize) -> Result<PoolClient> {
        PoolClient::connect(&self.deployment, dev_signer(i)).await
    }

    /// A pool client for another pool on this chain, signing as dev account `i`.
    pub async fn client_for(&self, deployment: &Deployment, i: usize) -> Result<PoolClient> {
        PoolClient::connect(deployment, dev_signer(i)).await
    }

    /// Moves time forward by `seconds` and mines a block carrying it.
    pub async fn advance(&self, seconds: u64) -> Result<()> {
        self.anvil.increase_time(seconds).await?;
        self.anvil.mine().await
    }

    /// The latest block's timestamp.
    pub async fn now(&self) -> Result<u64> {
        let block = self
            .provider()?
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| Error::NotOnNode("the latest block".into()))?;
        Ok(block.header.timestamp)
    }

    /// The latest block number.
    pub async fn block_number(&self) -> Result<u64> {
        Ok(self.provider()?.get_block_number().await?)
    }
}

// ---------------------------------------------------------------------- closes

/// The development close prover: keys from the public development seed
/// (`zkcredits_circuits::keys::DEV_SEED`), the ones `contracts/src/CloseVerifier.sol` was
/// generated from, in the shared development key directory
/// ([`zkcredits_circuits::testing::dev_keys_dir`]: made once per machine).
pub fn dev_close_prover() -> Result<&'static zkcredits_circuits::prover::CloseProver> {
    use std::sync::OnceLock;
    use zkcredits_circuits::keys;
    static PROVER: OnceLock<zkcredits_circuits::prover::CloseProver> = OnceLock::new();
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if let Some(p) = PROVER.get() {
        return Ok(p);
    }
    // One load at a time (tests run in parallel); the others then find its result.
    let _guard = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = PROVER.get() {
        return Ok(p);
    }
    let dir = zkcredits_circuits::testing::try_dev_keys_dir()?;
    let prover = zkcredits_circuits::prover::CloseProver::new(keys::load_close_proving_key(dir)?)?;
    Ok(PROVER.get_or_init(|| prover))
}

/// A fixed receipt key for tests and benchmarks (public: never for a real gateway).
pub fn test_server_key() -> zkcredits_protocol::eddsa::PrivateKey {
    zkcredits_protocol::eddsa::PrivateKey::from_bytes(*b"zkcredits test receipt key (pub)")
}

/// The pool's `(x, y)` words of a receipt key, for [`PoolConfig::server_key`].
pub fn server_key_words(key: &zkcredits_protocol::eddsa::PublicKey) -> (U256, U256) {
    let p = key.point();
    (
        crate::bindings::fr_to_u256(&p.x),
        crate::bindings::fr_to_u256(&p.y),
    )
}

/// A note as a test user holds it, with the shares a gateway saw for each of its tickets.
/// Requests are simulated off chain exactly as the gateway answers them: the receipt key
/// signs `H(RECEIPT, T_next, r, p)` and the state advances.
#[derive(Clone, Debug)]
pub struct SimulatedNote {
    /// The note's secret.
    pub secret: zkcredits_protocol::note::NoteSecret,
    /// `D`.
    pub deposit: zkcredits_protocol::credits::Credits,
    /// `E`.
    pub expiry_epoch: u64,
    /// Its leaf index.
    pub leaf_index: u64,
    /// Its current state.
    pub state: zkcredits_protocol::state::NoteState,
    /// Every state it went through, oldest first (for stale closes).
    pub history: Vec<zkcredits_protocol::state::NoteState>,
    /// The share of each used ticket, as the gateway stored it: `shares[i]` for ticket `i`.
    pub shares: Vec<zkcredits_protocol::rln::Share>,
}

impl SimulatedNote {
    /// A note just deposited.
    pub fn new(
        secret: zkcredits_protocol::note::NoteSecret,
        deposited: &crate::client::DepositedNote,
    ) -> Self {
        Self {
            secret,
            deposit: deposited.amount,
            expiry_epoch: deposited.expiry_epoch,
            leaf_index: deposited.leaf_index,
            state: zkcredits_protocol::state::NoteState::fresh(),
            history: Vec::new(),
            shares: Vec::new(),
        }
    }

    /// One paid request bound to `x`, answered with `refund` and `penalty` signed by
    /// `server`.
    pub fn request(
        &mut self,
        server: &zkcredits_protocol::eddsa::PrivateKey,
        x: zkcredits_protocol::Fr,
        rho_next: zkcredits_protocol::Fr,
        refund: zkcredits_protocol::credits::Credits,
        penalty: zkcredits_protocol::credits::Credits,
    ) -> Result<()> {
        use zkcredits_protocol::state::{Receipt, receipt_message};
        let k = self.secret.expose();
        let ticket = zkcredits_protocol::rln::Ticket::new(k, self.state.index);
        self.shares.push(ticket.share(k, x));
        let next = self
            .state
            .next_commitment(k, rho_next)
            .map_err(|e| Error::Circuit(e.into()))?;
        let receipt = Receipt {
            refund,
            penalty,
            signature: server.sign(receipt_message(next, refund, penalty)),
        };
        self.history.push(self.state);
        self.state = self
            .state
            .advance(k, rho_next, receipt)
            .map_err(|e| Error::Circuit(e.into()))?;
        Ok(())
    }
}
