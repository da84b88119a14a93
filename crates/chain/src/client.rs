//! The pool client: approve and deposit (one note or many), commit the root, slash, record
//! violations, claim expired epochs, move the provider role, and the pool's views. Reverts
//! come back as [`ContractError`](crate::ContractError) variants named after the contract's
//! custom errors.

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::merkle::Root;
use zkcredits_protocol::rln::Nullifier;

use crate::bindings::{
    TestToken, ZkCreditsPool, fr_to_u256, root_to_u256, u256_to_fr, u256_to_root,
};
use crate::deploy::Deployment;
use crate::rpc::{self, TxInfo};
use crate::{Error, Result};

/// Gas margin per tree level added to a deposit's estimate: a deposit's cost depends on the
/// leaf index it lands on (one Poseidon node hash, ~21.1k gas, per trailing 1 bit of the
/// index), which another deposit may change between the estimate and the block.
const GAS_PER_LEVEL_MARGIN: u64 = 25_000;

/// One note of a deposit, as the pool's `Deposited` event reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepositedNote {
    /// `ID = H(ID, k)`.
    pub id: Fr,
    /// Position of its leaf in the tree.
    pub leaf_index: u64,
    /// `leaf = H(LEAF, ID, D, E)`.
    pub leaf: Fr,
    /// `D`, credit units.
    pub amount: Credits,
    /// `E`, the expiry epoch.
    pub expiry_epoch: u64,
}

/// A root the pool committed: the root of its first `size` leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommittedRoot {
    /// The LeanIMT root.
    #[serde(with = "crate::serde_root")]
    pub root: Root,
    /// Number of leaves it covers.
    pub size: u64,
}

/// The result of `deposit` / `depositMany`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepositOutcome {
    /// The transaction.
    pub tx: TxInfo,
    /// One entry per note, in leaf order.
    pub notes: Vec<DepositedNote>,
    /// The root committed by a `depositMany` (a single deposit commits none).
    pub committed: Option<CommittedRoot>,
}

/// The result of `commitRoot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The transaction.
    pub tx: TxInfo,
    /// The new root, or `None` when nothing was deposited since the last commit.
    pub committed: Option<CommittedRoot>,
}

/// The result of `slash`, from its `Slashed` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlashOutcome {
    /// The transaction.
    pub tx: TxInfo,
    /// The slashed note's ID.
    pub id: Fr,
    /// Its close nullifier `NC = H(CLOSE, k)`.
    pub nc: Fr,
    /// The revealed secret.
    pub k: Fr,
    /// Who slashed.
    pub slasher: Address,
    /// Token base units paid to the slasher.
    pub bounty: U256,
    /// Token base units paid to the provider.
    pub to_provider: U256,
}

/// One policy violation for `recordViolations`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The request's nullifier `N`.
    pub nullifier: Nullifier,
    /// A hash of the evidence the provider keeps.
    pub evidence_hash: B256,
    /// The penalty in credit units (at most `P_max`).
    pub penalty: Credits,
}

/// The result of `recordViolations`: what its events carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViolationsOutcome {
    /// The transaction.
    pub tx: TxInfo,
    /// One entry per `ViolationRecorded` event, in order.
    pub recorded: Vec<Violation>,
}

/// The result of `claimExpired`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// The transaction.
    pub tx: TxInfo,
    /// The claimed expiry epoch.
    pub epoch: u64,
    /// Token base units paid to the provider.
    pub amount: U256,
}

/// A deposited note as the pool stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoteRecord {
    /// `D`, credit units.
    pub amount: Credits,
    /// `E`.
    pub expiry_epoch: u64,
    /// Position of its leaf.
    pub leaf_index: u64,
}

/// A connection to one pool, signing as one account.
#[derive(Clone, Debug)]
pub struct PoolClient {
    provider: DynProvider,
    sender: Address,
    pool: ZkCreditsPool::ZkCreditsPoolInstance<DynProvider>,
    token: TestToken::TestTokenInstance<DynProvider>,
    unit: U256,
    tree_depth: u8,
    gas_cap: u64,
}

impl PoolClient {
    /// Connects to the pool of `deployment` through its RPC URL, signing with `signer`.
    pub async fn connect(deployment: &Deployment, signer: PrivateKeySigner) -> Result<Self> {
        Self::connect_url(deployment, &deployment.rpc_url, signer).await
    }

    /// Like [`PoolClient::connect`], through another RPC URL.
    pub async fn connect_url(
        deployment: &Deployment,
        url: &str,
        signer: PrivateKeySigner,
    ) -> Result<Self> {
        Self::connect_with(deployment, url, signer, None).await
    }

    /// Like [`PoolClient::connect_url`], over `http` when given: an HTTP client the
    /// caller configured (its TLS roots, e.g. a private CA).
    pub async fn connect_with(
        deployment: &Deployment,
        url: &str,
        signer: PrivateKeySigner,
        http: Option<rpc::HttpClient>,
    ) -> Result<Self> {
        let sender = signer.address();
        let provider = rpc::wallet_provider_with(url, signer, http)?;
        let chain_id = provider.get_chain_id().await?;
        if chain_id != deployment.chain_id {
            return Err(Error::WrongChain {
                url: url.to_owned(),
                served: chain_id,
                expected: deployment.chain_id,
            });
        }
        let gas_cap = match provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await?
        {
            Some(b) => b.header.gas_limit,
            None => 30_000_000,
        };
        Ok(Self {
            pool: ZkCreditsPool::new(deployment.pool, provider.clone()),
            token: TestToken::new(deployment.token, provider.clone()),
            provider,
            sender,
            unit: deployment.constants.unit,
            tree_depth: deployment.constants.tree_depth,
            gas_cap,
        })
    }

    /// The signing account.
    pub fn sender(&self) -> Address {
        self.sender
    }

    /// The pool's address.
    pub fn pool_address(&self) -> Address {
        *self.pool.address()
    }

    /// The token's address.
    pub fn token_address(&self) -> Address {
        *self.token.address()
    }

    /// The signing provider.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// Token base units per credit unit.
    pub fn unit(&self) -> U256 {
        self.unit
    }

    /// Token base units for `credits` credit units.
    pub fn token_amount(&self, credits: Credits) -> U256 {
        U256::from(credits.get()) * self.unit
    }

    fn request(&self, call: TransactionRequest) -> TransactionRequest {
        call.with_from(self.sender)
    }

    async fn send(&self, tx: TransactionRequest) -> Result<TransactionReceipt> {
        rpc::send(&self.provider, self.request(tx)).await
    }

    /// Sends a pool transaction from the signing account and waits for its receipt.
    pub(crate) async fn send_tx(&self, tx: TransactionRequest) -> Result<TransactionReceipt> {
        self.send(tx).await
    }

    /// The pool's binding.
    pub(crate) fn pool_contract(&self) -> &ZkCreditsPool::ZkCreditsPoolInstance<DynProvider> {
        &self.pool
    }

    /// The first `E` the pool emitted in `receipt`.
    pub(crate) fn event<E: SolEvent>(&self, receipt: &TransactionReceipt) -> Result<E> {
        self.pool_event(receipt)
    }

    // ------------------------------------------------------------------ token

    /// Approves the pool to pull `amount` token base units.
    pub async fn approve(&self, amount: U256) -> Result<TxInfo> {
        let tx = self
            .token
            .approve(self.pool_address(), amount)
            .into_transaction_request();
        Ok(TxInfo::of(&self.send(tx).await?))
    }

    /// Approves `amount` when the current allowance is lower.
    pub async fn ensure_allowance(&self, amount: U256) -> Result<Option<TxInfo>> {
        let allowance = self
            .token
            .allowance(self.sender, self.pool_address())
            .call()
            .await?;
        if allowance >= amount {
            return Ok(None);
        }
        self.approve(amount).await.map(Some)
    }

    /// The token balance of `who`, in base units.
    pub async fn token_balance(&self, who: Address) -> Result<U256> {
        Ok(self.token.balanceOf(who).call().await?)
    }

    /// Mints test tokens (only on a `TestToken`, whose mint is public).
    pub async fn mint_test_tokens(&self, to: Address, amount: U256) -> Result<TxInfo> {
        let tx = self.token.mint(to, amount).into_transaction_request();
        Ok(TxInfo::of(&self.send(tx).await?))
    }

    // ------------------------------------------------------------------ deposits

    /// Deposits one note of `credits` credit units with `id = H(ID, k)`, approving the
    /// amount first when the allowance is short.
    pub async fn deposit(&self, id: Fr, credits: Credits) -> Result<DepositOutcome> {
        let amount = self.token_amount(credits);
        self.ensure_allowance(amount).await?;
        self.deposit_raw(fr_to_u256(&id), amount).await
    }

    /// Deposits several notes `(id, credits)` with one transfer, approving the sum first when
    /// the allowance is short. The pool commits the root at the end.
    pub async fn deposit_many(&self, notes: &[(Fr, Credits)]) -> Result<DepositOutcome> {
        let ids = notes.iter().map(|(id, _)| fr_to_u256(id)).collect();
        let amounts: Vec<U256> = notes.iter().map(|(_, c)| self.token_amount(*c)).collect();
        let total = amounts.iter().fold(U256::ZERO, |a, b| a.saturating_add(*b));
        self.ensure_allowance(total).await?;
        self.deposit_many_raw(ids, amounts).await
    }

    /// `deposit(id, amount)` with raw `uint256` arguments and no approval.
    pub async fn deposit_raw(&self, id: U256, amount: U256) -> Result<DepositOutcome> {
        let tx = self.request(self.pool.deposit(id, amount).into_transaction_request());
        let margin = (u64::from(self.tree_depth) + 2) * GAS_PER_LEVEL_MARGIN;
        let receipt = rpc::send_with_margin(&self.provider, tx, margin, self.gas_cap).await?;
        self.deposit_outcome(&receipt)
    }

    /// `depositMany(ids, amounts)` with raw arguments and no approval.
    pub async fn deposit_many_raw(
        &self,
        ids: Vec<U256>,
        amounts: Vec<U256>,
    ) -> Result<DepositOutcome> {
        let tx = self.request(
            self.pool
                .depositMany(ids, amounts)
                .into_transaction_request(),
        );
        // The inserts may meet other trailing bits and the commit's fold other set bits.
        let margin = (2 * u64::from(self.tree_depth) + 4) * GAS_PER_LEVEL_MARGIN;
        let receipt = rpc::send_with_margin(&self.provider, tx, margin, self.gas_cap).await?;
        self.deposit_outcome(&receipt)
    }

    fn deposit_outcome(&self, receipt: &TransactionReceipt) -> Result<DepositOutcome> {
        let mut notes = Vec::new();
        let mut committed = None;
        for log in self.pool_logs(receipt) {
            if let Ok(e) = ZkCreditsPool::Deposited::decode_log_data(log.data()) {
                notes.push(deposited_note(&e)?);
            } else if let Ok(e) = ZkCreditsPool::RootCommitted::decode_log_data(log.data()) {
                committed = Some(committed_root(&e)?);
            }
        }
        if notes.is_empty() {
            return Err(Error::MissingEvent {
                tx: receipt.transaction_hash,
                event: "Deposited",
            });
        }
        Ok(DepositOutcome {
            tx: TxInfo::of(receipt),
            notes,
            committed,
        })
    }

    fn pool_logs<'a>(
        &self,
        receipt: &'a TransactionReceipt,
    ) -> impl Iterator<Item = &'a alloy::rpc::types::Log> + 'a {
        let pool = self.pool_address();
        receipt
            .inner
            .logs()
            .iter()
            .filter(move |l| l.address() == pool)
    }

    /// The first `E` the pool emitted in `receipt`; a successful call that did not emit
    /// it is an error (the contract and these bindings disagree).
    fn pool_event<E: SolEvent>(&self, receipt: &TransactionReceipt) -> Result<E> {
        self.pool_logs(receipt)
            .find_map(|log| E::decode_log_data(log.data()).ok())
            .ok_or(Error::MissingEvent {
                tx: receipt.transaction_hash,
                event: E::SIGNATURE,
            })
    }

    // ------------------------------------------------------------------ roots

    /// Commits the current root (permissionless). `committed` is `None` when nothing was
    /// deposited since the last commit.
    pub async fn commit_root(&self) -> Result<CommitOutcome> {
        let tx = self.pool.commitRoot().into_transaction_request();
        // The fold costs popcount(size) - 1 hashes; a deposit may land first.
        let tx = self.request(tx);
        let margin = (u64::from(self.tree_depth) + 2) * GAS_PER_LEVEL_MARGIN;
        let receipt = rpc::send_with_margin(&self.provider, tx, margin, self.gas_cap).await?;
        let mut committed = None;
        for log in self.pool_logs(&receipt) {
            if let Ok(e) = ZkCreditsPool::RootCommitted::decode_log_data(log.data()) {
                committed = Some(committed_root(&e)?);
            }
        }
        Ok(CommitOutcome {
            tx: TxInfo::of(&receipt),
            committed,
        })
    }

    // ------------------------------------------------------------------ slashing

    /// Slashes the note whose secret `k` became public (permissionless).
    pub async fn slash(&self, k: Fr) -> Result<SlashOutcome> {
        self.slash_raw(fr_to_u256(&k)).await
    }

    /// `slash(k)` with a raw `uint256`.
    pub async fn slash_raw(&self, k: U256) -> Result<SlashOutcome> {
        let receipt = self
            .send(self.pool.slash(k).into_transaction_request())
            .await?;
        let e: ZkCreditsPool::Slashed = self.pool_event(&receipt)?;
        Ok(SlashOutcome {
            tx: TxInfo::of(&receipt),
            id: u256_to_fr(e.id)?,
            nc: u256_to_fr(e.nc)?,
            k: u256_to_fr(e.k)?,
            slasher: e.slasher,
            bounty: e.bounty,
            to_provider: e.toProvider,
        })
    }

    // ------------------------------------------------------------------ provider

    /// Logs policy violations (provider only; events only).
    pub async fn record_violations(&self, violations: &[Violation]) -> Result<ViolationsOutcome> {
        let nullifiers = violations
            .iter()
            .map(|v| fr_to_u256(&v.nullifier.field()))
            .collect();
        let evidence = violations.iter().map(|v| v.evidence_hash).collect();
        let penalties = violations.iter().map(|v| v.penalty.get()).collect();
        let tx = self
            .pool
            .recordViolations(nullifiers, evidence, penalties)
            .into_transaction_request();
        let receipt = self.send(tx).await?;
        let mut recorded = Vec::new();
        for log in self.pool_logs(&receipt) {
            if let Ok(e) = ZkCreditsPool::ViolationRecorded::decode_log_data(log.data()) {
                recorded.push(Violation {
                    nullifier: Nullifier::from_field(u256_to_fr(e.nullifier)?),
                    evidence_hash: e.evidenceHash,
                    penalty: Credits::new(e.penalty),
                });
            }
        }
        Ok(ViolationsOutcome {
            tx: TxInfo::of(&receipt),
            recorded,
        })
    }

    /// Claims what is outstanding for expiry epoch `epoch` (provider only, once the epoch
    /// has ended plus the grace period, once).
    pub async fn claim_expired(&self, epoch: u64) -> Result<ClaimOutcome> {
        let receipt = self
            .send(self.pool.claimExpired(epoch).into_transaction_request())
            .await?;
        let e: ZkCreditsPool::ExpiredClaimed = self.pool_event(&receipt)?;
        Ok(ClaimOutcome {
            tx: TxInfo::of(&receipt),
            epoch: e.epoch,
            amount: e.amount,
        })
    }

    /// Starts handing the provider role to `to` (provider only; `Address::ZERO` cancels).
    pub async fn transfer_provider(&self, to: Address) -> Result<TxInfo> {
        let tx = self.pool.transferProvider(to).into_transaction_request();
        Ok(TxInfo::of(&self.send(tx).await?))
    }

    /// Takes the provider role (the pending provider only).
    pub async fn accept_provider(&self) -> Result<TxInfo> {
        let tx = self.pool.acceptProvider().into_transaction_request();
        Ok(TxInfo::of(&self.send(tx).await?))
    }

    // ------------------------------------------------------------------ views

    /// The latest block's timestamp: the clock the pool judges deadlines and epochs by.
    pub async fn chain_time(&self) -> Result<u64> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| Error::NotOnNode("the latest block".into()))?;
        Ok(block.header.timestamp)
    }

    /// Whether `root` is one of the pool's recent committed roots.
    pub async fn is_known_root(&self, root: Root) -> Result<bool> {
        Ok(self.pool.isKnownRoot(root_to_u256(root)).call().await?)
    }

    /// The last committed root (zero before the first commit).
    pub async fn root(&self) -> Result<Root> {
        u256_to_root(self.pool.root().call().await?)
    }

    /// Number of leaves in the tree, committed or not.
    pub async fn tree_size(&self) -> Result<u64> {
        to_u64("treeSize", self.pool.treeSize().call().await?)
    }

    /// Number of leaves the last committed root covers.
    pub async fn committed_size(&self) -> Result<u64> {
        to_u64("committedSize", self.pool.committedSize().call().await?)
    }

    /// Number of roots committed so far.
    pub async fn root_count(&self) -> Result<u64> {
        to_u64("rootCount", self.pool.rootCount().call().await?)
    }

    /// The note with `id`, if deposited.
    pub async fn deposit_of(&self, id: Fr) -> Result<Option<NoteRecord>> {
        let n = self.pool.deposits(fr_to_u256(&id)).call().await?;
        Ok(n.exists.then_some(NoteRecord {
            amount: Credits::new(n.amount),
            expiry_epoch: n.expiryEpoch,
            leaf_index: n.leafIndex,
        }))
    }

    /// Credit units outstanding for expiry epoch `epoch` (kept after a claim).
    pub async fn outstanding(&self, epoch: u64) -> Result<u64> {
        to_u64("outstanding", self.pool.outstanding(epoch).call().await?)
    }

    /// Whether the provider claimed expiry epoch `epoch`.
    pub async fn epoch_claimed(&self, epoch: u64) -> Result<bool> {
        Ok(self.pool.epochClaimed(epoch).call().await?)
    }

    /// The epoch of the latest block.
    pub async fn current_epoch(&self) -> Result<u64> {
        Ok(self.pool.currentEpoch().call().await?)
    }

    /// Whether the note with close nullifier `nc` was slashed (or closed).
    pub async fn closed_or_slashed(&self, nc: Fr) -> Result<bool> {
        Ok(self.pool.closedOrSlashed(fr_to_u256(&nc)).call().await?)
    }

    /// The current provider.
    pub async fn provider_address(&self) -> Result<Address> {
        Ok(self
            .pool
            .call_builder(&ZkCreditsPool::providerCall {})
            .call()
            .await?)
    }

    /// The pending provider (zero when none).
    pub async fn pending_provider(&self) -> Result<Address> {
        Ok(self.pool.pendingProvider().call().await?)
    }
}

pub(crate) fn deposited_note(e: &ZkCreditsPool::Deposited) -> Result<DepositedNote> {
    Ok(DepositedNote {
        id: u256_to_fr(e.id)?,
        leaf_index: to_u64("leafIndex", e.leafIndex)?,
        leaf: u256_to_fr(e.leaf)?,
        amount: Credits::new(e.amount),
        expiry_epoch: e.expiryEpoch,
    })
}

pub(crate) fn committed_root(e: &ZkCreditsPool::RootCommitted) -> Result<CommittedRoot> {
    Ok(CommittedRoot {
        root: u256_to_root(e.root)?,
        size: to_u64("size", e.size)?,
    })
}

pub(crate) fn to_u64(what: &'static str, value: U256) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::OutOfRange { what, value })
}
