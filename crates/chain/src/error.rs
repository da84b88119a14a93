//! Errors of this crate, grouped by who is at fault: the contract refused (its named custom
//! errors), the chain or the RPC endpoint failed, the local state is damaged, or what the
//! chain reported is inconsistent.

use std::path::PathBuf;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::SolInterface;

use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::merkle::Root;

use crate::bindings::{TestToken, ZkCreditsPool};

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A revert of the pool or of its token, by the name of the contract's custom error.
///
/// One variant per custom error of `ZkCreditsPool.sol` and `TestToken.sol` (the pool passes a
/// token's own revert on unchanged, so a deposit can fail with either).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// Pool: a deployment parameter is out of range (its name).
    #[error("InvalidConfig({0}): a deployment parameter is out of range")]
    InvalidConfig(String),
    /// Pool: a token call re-entered the pool.
    #[error("Reentrancy: a token call re-entered the pool")]
    Reentrancy,
    /// Pool: only the provider may do this.
    #[error("NotProvider: only the provider may do this")]
    NotProvider,
    /// Pool: only the pending provider may accept the role.
    #[error("NotPendingProvider: only the pending provider may accept the role")]
    NotPendingProvider,
    /// Pool: an amount of zero.
    #[error("ZeroAmount: deposit a non-zero amount")]
    ZeroAmount,
    /// Pool: the amount (token base units) is not a whole number of credit units.
    #[error("AmountNotMultipleOfUnit({0}): deposit a whole number of credit units")]
    AmountNotMultipleOfUnit(U256),
    /// Pool: the note would hold 2^64 credit units or more.
    #[error("AmountTooLarge({0} credits): a note holds less than 2^64 credit units")]
    AmountTooLarge(U256),
    /// Pool: the pool only accepts its listed denominations.
    #[error("DenominationNotAllowed({0} credits): use one of the pool's denominations")]
    DenominationNotAllowed(U256),
    /// Pool: the pool received another amount than was sent (fee-on-transfer token).
    #[error("TransferAmountMismatch(expected {expected}, received {received})")]
    TransferAmountMismatch {
        /// What was sent.
        expected: U256,
        /// What arrived.
        received: U256,
    },
    /// Pool: the token call failed without a reason, or returned false.
    #[error("TokenCallFailed: the token call failed")]
    TokenCallFailed,
    /// Pool: an ID or secret is not below the BN254 field modulus.
    #[error("NotAFieldElement({0}): IDs and secrets must be below the field modulus")]
    NotAFieldElement(U256),
    /// Pool: a note with this ID already exists.
    #[error("NoteAlreadyDeposited({0}): derive a fresh note")]
    NoteAlreadyDeposited(U256),
    /// Pool: the tree holds 2^treeDepth leaves already.
    #[error("TreeFull: the pool's tree is full")]
    TreeFull,
    /// Pool: a batch with no note.
    #[error("EmptyBatch: a batch needs at least one note")]
    EmptyBatch,
    /// Pool: array arguments of different lengths.
    #[error("LengthMismatch: the argument arrays differ in length")]
    LengthMismatch,
    /// Pool: no note has the ID H(ID, k).
    #[error("UnknownNote: no deposit has this key's ID")]
    UnknownNote,
    /// Pool: the note was already slashed (or closed).
    #[error("NoteAlreadySettled: the note was already slashed or closed")]
    NoteAlreadySettled,
    /// Pool: the provider already claimed the note's expiry epoch.
    #[error("EpochClaimed: the epoch was already claimed")]
    EpochClaimed,
    /// Pool: the epoch has not ended plus the grace period yet.
    #[error("EpochNotExpired: wait until the epoch has ended plus the grace period")]
    EpochNotExpired,
    /// Pool: a penalty above `pMax` (position in the batch, penalty).
    #[error("PenaltyTooLarge(index {index}, penalty {penalty}): penalties are at most pMax")]
    PenaltyTooLarge {
        /// Position in the batch.
        index: U256,
        /// The refused penalty.
        penalty: u64,
    },
    /// Pool: the close names a root that is not one of the recent committed roots.
    #[error("UnknownRoot({0}): prove against a recent committed root (commitRoot first)")]
    UnknownRoot(U256),
    /// Pool: the note already has a unilateral close waiting for its window.
    #[error("ClosePending: the note already has a pending close; wait and finalize it")]
    ClosePending,
    /// Pool: there is no pending close with this NC.
    #[error("NoPendingClose: no unilateral close is pending for this NC")]
    NoPendingClose,
    /// Pool: the challenge window of the close has not passed yet.
    #[error("ChallengeWindowOpen(until {0}): finalize after the challenge window")]
    ChallengeWindowOpen(u64),
    /// Pool: (k, a) do not open the pending close's ticket.
    #[error("InvalidChallenge: (k, a) do not match the close's N_j, y_w and NC")]
    InvalidChallenge,
    /// Pool: the clearance is not the provider's signature over this close.
    #[error(
        "InvalidClearance: ask the gateway for a clearance of this NC and N_j, or close unilaterally"
    )]
    InvalidClearance,
    /// Pool: U + B exceed the deposit D.
    #[error("AmountsExceedDeposit: U + B exceed the note's deposit")]
    AmountsExceedDeposit,
    /// Pool: the payout address is zero.
    #[error("InvalidPayout: give a non-zero payout address")]
    InvalidPayout,
    /// Pool: a relay fee above `U`, or a fee with no recipient.
    #[error("InvalidRelayFee: the relay fee must be at most U and name its recipient")]
    InvalidRelayFee,
    /// Pool: the close names a server key the provider never accepted.
    #[error("UnknownServerKey: the receipt key is not accepted by the pool")]
    UnknownServerKey,
    /// Pool: the receipt key is not a non-identity point of BabyJubJub's prime subgroup.
    #[error("InvalidServerKey: a receipt key must be a non-identity point of the prime subgroup")]
    InvalidServerKey,
    /// Pool: the receipt key was revoked and its notice ended at this time.
    #[error(
        "ServerKeyRetired(at {0}): the receipt key was revoked and its notice is over; the note \
         can no longer close under it"
    )]
    ServerKeyRetired(u64),
    /// Close verifier: the proof does not verify for these public inputs.
    #[error("InvalidProof: the close proof does not verify for these public inputs")]
    InvalidProof,
    /// Close verifier: a public input is not below the field modulus.
    #[error("InputNotInField(input {0}): public inputs must be below the field modulus")]
    InputNotInField(U256),
    /// Token (`TestToken`): the sender's balance is too small.
    #[error("InsufficientBalance({account}: has {balance}, needs {needed})")]
    InsufficientBalance {
        /// Whose balance.
        account: Address,
        /// What it holds.
        balance: U256,
        /// What was asked.
        needed: U256,
    },
    /// Token (`TestToken`): the allowance is too small; approve first.
    #[error("InsufficientAllowance({spender}: allowed {allowance}, needs {needed}): approve first")]
    InsufficientAllowance {
        /// The spender (the pool).
        spender: Address,
        /// The current allowance.
        allowance: U256,
        /// What was asked.
        needed: U256,
    },
    /// Token (`TestToken`): the zero address as recipient or spender.
    #[error("ZeroAddress: the token refuses the zero address")]
    ZeroAddress,
}

impl From<ZkCreditsPool::ZkCreditsPoolErrors> for ContractError {
    fn from(e: ZkCreditsPool::ZkCreditsPoolErrors) -> Self {
        use ZkCreditsPool::ZkCreditsPoolErrors as E;
        // Exhaustive on purpose: a new custom error in the contract fails this build.
        match e {
            E::InvalidConfig(x) => Self::InvalidConfig(x.parameter),
            E::Reentrancy(_) => Self::Reentrancy,
            E::NotProvider(_) => Self::NotProvider,
            E::NotPendingProvider(_) => Self::NotPendingProvider,
            E::ZeroAmount(_) => Self::ZeroAmount,
            E::AmountNotMultipleOfUnit(x) => Self::AmountNotMultipleOfUnit(x.amount),
            E::AmountTooLarge(x) => Self::AmountTooLarge(x.credits),
            E::DenominationNotAllowed(x) => Self::DenominationNotAllowed(x.credits),
            E::TransferAmountMismatch(x) => Self::TransferAmountMismatch {
                expected: x.expected,
                received: x.received,
            },
            E::TokenCallFailed(_) => Self::TokenCallFailed,
            E::NotAFieldElement(x) => Self::NotAFieldElement(x.value),
            E::NoteAlreadyDeposited(x) => Self::NoteAlreadyDeposited(x.id),
            E::TreeFull(_) => Self::TreeFull,
            E::EmptyBatch(_) => Self::EmptyBatch,
            E::LengthMismatch(_) => Self::LengthMismatch,
            E::UnknownNote(_) => Self::UnknownNote,
            E::NoteAlreadySettled(_) => Self::NoteAlreadySettled,
            E::EpochClaimed(_) => Self::EpochClaimed,
            E::EpochNotExpired(_) => Self::EpochNotExpired,
            E::PenaltyTooLarge(x) => Self::PenaltyTooLarge {
                index: x.index,
                penalty: x.penalty,
            },
            E::UnknownRoot(x) => Self::UnknownRoot(x.root),
            E::ClosePending(_) => Self::ClosePending,
            E::NoPendingClose(_) => Self::NoPendingClose,
            E::ChallengeWindowOpen(x) => Self::ChallengeWindowOpen(x.deadline),
            E::InvalidChallenge(_) => Self::InvalidChallenge,
            E::InvalidClearance(_) => Self::InvalidClearance,
            E::AmountsExceedDeposit(_) => Self::AmountsExceedDeposit,
            E::InvalidPayout(_) => Self::InvalidPayout,
            E::InvalidRelayFee(_) => Self::InvalidRelayFee,
            E::UnknownServerKey(_) => Self::UnknownServerKey,
            E::InvalidServerKey(_) => Self::InvalidServerKey,
            E::ServerKeyRetired(x) => Self::ServerKeyRetired(x.retiredAt),
            E::InvalidProof(_) => Self::InvalidProof,
            E::InputNotInField(x) => Self::InputNotInField(x.index),
        }
    }
}

impl From<TestToken::TestTokenErrors> for ContractError {
    fn from(e: TestToken::TestTokenErrors) -> Self {
        use TestToken::TestTokenErrors as E;
        match e {
            E::InsufficientBalance(x) => Self::InsufficientBalance {
                account: x.account,
                balance: x.balance,
                needed: x.needed,
            },
            E::InsufficientAllowance(x) => Self::InsufficientAllowance {
                spender: x.spender,
                allowance: x.allowance,
                needed: x.needed,
            },
            E::ZeroAddress(_) => Self::ZeroAddress,
        }
    }
}

impl ContractError {
    /// Decodes revert data against the pool's and the token's custom errors.
    pub fn decode(data: &[u8]) -> Option<Self> {
        if let Ok(e) = ZkCreditsPool::ZkCreditsPoolErrors::abi_decode(data) {
            return Some(e.into());
        }
        TestToken::TestTokenErrors::abi_decode(data)
            .ok()
            .map(Into::into)
    }
}

/// Errors of the chain crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pool or its token refused the call with a named custom error.
    #[error("the contract refused: {0}")]
    Contract(#[from] ContractError),
    /// The call reverted with data that matches no custom error of the pool or the token.
    #[error("the call reverted with unknown data {0}")]
    UnknownRevert(Bytes),
    /// A transaction was mined but failed (status 0), e.g. out of gas, or the state changed
    /// between the gas estimate and the block.
    #[error("transaction {0} failed on chain (status 0); check the state and retry")]
    TxFailed(B256),
    /// No receipt arrived in time.
    #[error("no receipt for transaction {0} within {1:?}")]
    ReceiptTimeout(B256, std::time::Duration),
    /// The JSON-RPC endpoint failed or refused: the connection, an HTTP status, the node's
    /// error response or an answer that does not parse. [`Error::is_transient`] says
    /// whether trying again may help.
    #[error("JSON-RPC: {0}")]
    Transport(#[source] alloy::transports::TransportError),
    /// A contract call failed without reaching the node or without a revert (an ABI
    /// mismatch, no data where the function returns some).
    #[error("contract call: {0}")]
    Call(#[source] Box<alloy::contract::Error>),
    /// Watching a sent transaction failed.
    #[error("pending transaction: {0}")]
    PendingTx(#[source] Box<alloy::providers::PendingTransactionError>),
    /// The node does not know something it must know: a block, a transaction, the
    /// receipt of a mined transaction. Usually a node behind the one that answered before
    /// (a load balancer); retry.
    #[error("the node does not know {0}")]
    NotOnNode(String),
    /// The RPC URL serves another chain than the deployment's.
    #[error("{url} serves chain {served}, the deployment is on chain {expected}")]
    WrongChain {
        /// The RPC URL.
        url: String,
        /// Its chain id.
        served: u64,
        /// The deployment's chain id.
        expected: u64,
    },
    /// A creation's receipt has no contract address.
    #[error("the deployment receipt of {0} has no contract address")]
    NotCreated(&'static str),
    /// A log of the pool does not decode as the event its topic names.
    #[error("undecodable {event} log: {source}")]
    UndecodableLog {
        /// The event.
        event: &'static str,
        /// The decoder's error (boxed: it is larger than every other variant).
        #[source]
        source: Box<alloy::sol_types::Error>,
    },
    /// A log of the pool carries a topic this crate does not read.
    #[error("unexpected log topic {0}")]
    UnexpectedLog(B256),
    /// The RPC URL does not parse.
    #[error("invalid RPC URL {0:?}")]
    BadUrl(String),
    /// A contract the deployment needs is missing on this chain.
    #[error("no code at {address} ({what})")]
    MissingCode {
        /// What was expected there.
        what: String,
        /// Where.
        address: Address,
    },
    /// A transaction receipt lacks an event the call always emits.
    #[error("the receipt of {tx} has no {event} event")]
    MissingEvent {
        /// The transaction.
        tx: B256,
        /// The event's name.
        event: &'static str,
    },
    /// A value from the chain is not a canonical field element.
    #[error("{0} is not below the BN254 field modulus")]
    NotAFieldElement(U256),
    /// A value does not fit the type the protocol gives it.
    #[error("{what} = {value} is out of range")]
    OutOfRange {
        /// What the value is.
        what: &'static str,
        /// The value.
        value: U256,
    },
    /// The indexer saw a `Deposited` event whose leaf index is not the next one: logs are
    /// missing (a gap) or repeated. Resync from the deploy block.
    #[error(
        "leaf index gap: expected leaf {expected}, the chain reported {got}; resync from the deploy block"
    )]
    LeafIndexGap {
        /// The index the next leaf must have.
        expected: u64,
        /// The index the event carried.
        got: u64,
    },
    /// A `RootCommitted` event disagrees with the tree rebuilt from the `Deposited` events.
    #[error(
        "committed root mismatch at size {size}: chain {chain}, rebuilt {} (tree size {tree_size})",
        .rebuilt.map_or_else(|| "(another size)".to_owned(), |r| r.to_string())
    )]
    RootMismatch {
        /// The size the commit covers.
        size: u64,
        /// Number of leaves in the rebuilt tree at that point.
        tree_size: u64,
        /// The committed root.
        chain: Root,
        /// The rebuilt root, or `None` when the commit's size is not the rebuilt tree's
        /// at that point (a commit out of step with the deposits).
        rebuilt: Option<Root>,
    },
    /// An earlier `RootMismatch` left the indexer half way through a page: open a new one
    /// (from its state file or from the deploy block).
    #[error("the indexer stopped on a root mismatch and is unusable; open a new one")]
    IndexerPoisoned,
    /// A close would pay its relayer more than the note pays out (`U`).
    #[error(
        "the relay fee ({fee} credit units) is more than this close pays out ({payout}); close it yourself (--keystore) or through a cheaper relay"
    )]
    RelayFeeTooHigh {
        /// The fee asked.
        fee: Credits,
        /// `U`, credit units.
        payout: Credits,
    },
    /// The tree refused an insert.
    #[error("tree: {0}")]
    Tree(#[from] zkcredits_protocol::merkle::TreeError),
    /// The indexer's state file belongs to another chain or pool.
    #[error(
        "indexer state {path:?} is for another deployment ({detail}); use another path or delete it"
    )]
    StateMismatch {
        /// The state file.
        path: PathBuf,
        /// What differs.
        detail: String,
    },
    /// The indexer's state file is damaged.
    #[error("indexer state {path:?} is corrupt ({detail}); delete it and resync")]
    StateCorrupt {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Reading or writing a local file failed.
    #[error("{path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// JSON (de)serialisation failed.
    #[error("JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// Building or proving the close failed (keys, an overdrawn state, a tree too deep).
    #[error("close proof: {0}")]
    Circuit(#[from] zkcredits_circuits::CircuitError),
    /// A clearance could not be made or is not the provider's.
    #[error("clearance: {0}")]
    Clearance(#[from] crate::clearance::ClearanceError),
    /// The local anvil could not be started (test-util only).
    #[error("anvil: cannot start {}: {source}", bin.display())]
    AnvilSpawn {
        /// The anvil binary.
        bin: PathBuf,
        /// Why the process could not be spawned.
        #[source]
        source: std::io::Error,
    },
    /// The local anvil printed its address but does not answer JSON-RPC there
    /// (test-util only).
    #[error("anvil: does not answer on {url}: {source}")]
    AnvilUnreachable {
        /// Where it said it listens.
        url: String,
        /// The last failure.
        #[source]
        source: alloy::transports::TransportError,
    },
    /// The local anvil misbehaved (no binary, exited or never listened, no snapshot,
    /// unexpected dev accounts), or a benchmark's own check failed (test-util only).
    #[error("anvil: {0}")]
    Anvil(String),
    /// A benchmark step failed on an error of another crate (test-util only).
    #[error("bench: {what}: {source}")]
    Bench {
        /// The step.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A deployment was refused or failed (`deploy`).
    /// (Boxed: its larger variants would make every chain error that large.)
    #[error(transparent)]
    Deploy(Box<crate::deploy::DeployError>),
    /// An encrypted keystore could not be opened.
    #[error(transparent)]
    Keystore(#[from] crate::keystore::KeystoreError),
}

impl Error {
    /// The contract's named error, if this is one.
    pub fn contract_error(&self) -> Option<&ContractError> {
        match self {
            Self::Contract(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the same call may succeed if tried again: a transport failure, a rate limit
    /// or a server error (alloy's own retry rule), or a node behind its peers. A refusal
    /// (a revert, a wrong chain, a bad state file) is not.
    pub fn is_transient(&self) -> bool {
        use alloy::transports::layers::{RateLimitRetryPolicy, RetryPolicy};
        let transport = |e: &alloy::transports::TransportError| {
            e.is_transport_error() || RateLimitRetryPolicy::default().should_retry(e)
        };
        match self {
            Self::Transport(e) => transport(e),
            Self::ReceiptTimeout(..) | Self::NotOnNode(_) => true,
            _ => false,
        }
    }

    pub(crate) fn undecodable_log(event: &'static str, source: alloy::sol_types::Error) -> Self {
        Self::UndecodableLog {
            event,
            source: Box::new(source),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl Error {
    /// A revert: one of the named contract errors when the data decodes as one.
    fn from_revert(data: Bytes) -> Self {
        match ContractError::decode(&data) {
            Some(c) => Self::Contract(c),
            None => Self::UnknownRevert(data),
        }
    }
}

impl From<alloy::contract::Error> for Error {
    fn from(e: alloy::contract::Error) -> Self {
        match e.as_revert_data() {
            Some(data) => Self::from_revert(data),
            None => match e {
                alloy::contract::Error::TransportError(e) => Self::Transport(e),
                alloy::contract::Error::PendingTransactionError(e) => e.into(),
                other => Self::Call(Box::new(other)),
            },
        }
    }
}

impl From<alloy::transports::TransportError> for Error {
    fn from(e: alloy::transports::TransportError) -> Self {
        match e.as_error_resp().and_then(|p| p.as_revert_data()) {
            Some(data) => Self::from_revert(data),
            None => Self::Transport(e),
        }
    }
}

impl From<crate::deploy::DeployError> for Error {
    fn from(e: crate::deploy::DeployError) -> Self {
        Self::Deploy(Box::new(e))
    }
}

impl From<alloy::providers::PendingTransactionError> for Error {
    fn from(e: alloy::providers::PendingTransactionError) -> Self {
        match e {
            alloy::providers::PendingTransactionError::TransportError(e) => e.into(),
            other => Self::PendingTx(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::sol_types::SolError;

    #[test]
    fn revert_data_decodes_to_the_named_error_of_pool_or_token() {
        let data = ZkCreditsPool::PenaltyTooLarge {
            index: U256::from(3),
            penalty: 9,
        }
        .abi_encode();
        assert_eq!(
            ContractError::decode(&data),
            Some(ContractError::PenaltyTooLarge {
                index: U256::from(3),
                penalty: 9
            })
        );
        let data = TestToken::InsufficientAllowance {
            spender: Address::repeat_byte(7),
            allowance: U256::from(1),
            needed: U256::from(2),
        }
        .abi_encode();
        assert!(matches!(
            ContractError::decode(&data),
            Some(ContractError::InsufficientAllowance { .. })
        ));
        assert_eq!(ContractError::decode(&[1, 2, 3, 4]), None);
    }
}
