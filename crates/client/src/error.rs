//! The client's errors. Every variant has a stable [`code`](ClientError::code) that the
//! local proxy puts in its OpenAI-style error body, and a suggested HTTP status.

use crate::journal::JournalError;
use crate::wallet::WalletError;

/// What can go wrong on the user's side of a paid request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Every note that could pay has a request in flight (one request per note at a
    /// time).
    #[error(
        "every solvent note has a request in flight; retry when one finishes, or deposit more notes for more concurrency"
    )]
    AllNotesBusy,
    /// No note can pay for another request.
    #[error(
        "no note can pay for another request (each needs C_max plus the P_max reserve); deposit with `zkcredits deposit`"
    )]
    NoSolventNote,
    /// The ticket does not match the journal (already finished, or the note moved on).
    #[error("the ticket does not match the note journal ({0}); run recovery and retry")]
    StaleState(String),
    /// The gateway's receipt does not decode or its signature does not verify.
    #[error("the gateway's receipt is invalid ({0}); the note stays in flight until recovery")]
    BadReceipt(String),
    /// The gateway signed a receipt that breaks the pool's constants (`r > C_max`,
    /// `p > P_max`, a refund off the granularity, a state that could not close, a key
    /// the pool does not accept). Applying it would leave a note that can never close,
    /// so the note keeps its previous state and is marked to close with `m = 1`.
    #[error(
        "the gateway signed a receipt for note {note}, ticket {index} that breaks the pool's limits ({reason}); it was refused, the note keeps its previous state and must be closed with m = 1 (`zkcredits close`); do not trust this gateway"
    )]
    ReceiptOutsideLimits {
        /// The note number.
        note: u64,
        /// The ticket index the receipt answers.
        index: u64,
        /// Which limit it breaks.
        reason: String,
    },
    /// The gateway's server key is not one the pool accepts: a note whose receipts it
    /// signs could not be closed.
    #[error(
        "server key {key_id} of the gateway is not accepted by the pool (serverKeyAccepted is false), so a note it signs receipts for could never close; nothing was spent: use another gateway, or wait until the provider registers the key"
    )]
    ServerKeyNotOnChain {
        /// The key id the gateway publishes for it.
        key_id: u32,
    },
    /// The gateway publishes other constants than the deployment and keys in use.
    #[error(
        "the gateway's {what} is {published}, this wallet expects {expected}; check the gateway URL and the deployment file"
    )]
    GatewayConstantsMismatch {
        /// Which constant.
        what: &'static str,
        /// What the deployment or local keys say.
        expected: String,
        /// What the gateway published.
        published: String,
    },
    /// The note's last receipt was signed by a server key the gateway no longer accepts.
    #[error(
        "note {note}'s last receipt is signed by server key {key_id}, which the gateway no longer accepts; close the note"
    )]
    ServerKeyRetired {
        /// The note number.
        note: u64,
        /// The retired key id.
        key_id: u32,
    },
    /// The note's leaf is not (yet) in the synced tree.
    #[error("note {note} is not in the synced note tree ({detail}); run `zkcredits sync`")]
    NoteNotInTree {
        /// The note number.
        note: u64,
        /// What was found instead.
        detail: String,
    },
    /// Syncing the note tree from the chain failed.
    #[error("syncing the note tree failed: {0}; check the RPC URL and retry")]
    TreeSync(#[source] zkcredits_chain::Error),
    /// The pool does not know the root the client synced, even after committing it.
    #[error(
        "the pool does not know the synced root {root} even after a commit; sync again and retry"
    )]
    RootNotCommitted {
        /// The root.
        root: zkcredits_protocol::merkle::Root,
    },
    /// A chain call failed (deposit, views, a close).
    #[error("chain: {0}")]
    Chain(#[source] zkcredits_chain::Error),
    /// The pool's answer to a deposit does not match what was sent.
    #[error("the deposit's receipt does not match what was sent: {0}")]
    DepositMismatch(&'static str),
    /// No gateway is configured or reachable for a cooperative close.
    #[error(
        "the gateway cannot be reached for a cooperative close; `--unilateral` closes without it"
    )]
    NoGatewayForClose,
    /// The gateway refused the close clearance.
    #[error("the gateway refused the close clearance ({0}); `--unilateral` closes without it")]
    ClearanceRefused(#[source] crate::gateway_client::GatewayError),
    /// The gateway's clearance does not verify for this note and pool.
    #[error("the clearance is invalid: {0}; `--unilateral` closes without it")]
    ClearanceInvalid(#[source] zkcredits_chain::clearance::ClearanceError),
    /// A close would be sent from the account that deposited: the chain would link the
    /// deposit to the note's payout and total spend.
    #[error(
        "the close would be sent from {address}, the account that deposited, which links the deposit to the payout and to everything the note spent; let the gateway relay it (the default) or send it from a fresh funded key (--keystore)"
    )]
    DepositAccountSends {
        /// The deposit account.
        address: String,
    },
    /// The gateway runs no relay, or asks more than the user allows.
    #[error("{0}")]
    RelayUnusable(String),
    /// The gateway's relay refused or failed; the note can be closed again.
    #[error(
        "the gateway's relay did not close the note ({0}); run the close again, or send it from a fresh funded key (--keystore)"
    )]
    RelayFailed(String),
    /// Proving failed (a bug or damaged keys).
    #[error("proving failed: {0}; check the keys with `zkcredits setup`")]
    Proving(#[source] zkcredits_circuits::CircuitError),
    /// A proof made here does not verify under the local verifying key: the keys do
    /// not belong together (damaged, or from two setups). Nothing was sent.
    #[error(
        "the proof does not verify under the local verifying key; nothing was sent: check the keys with `zkcredits setup`"
    )]
    ProofDoesNotVerify,
    /// Asking the gateway for a receipt failed.
    #[error("asking the gateway for a receipt failed: {0}")]
    ReceiptFetch(#[source] crate::gateway_client::GatewayError),
    /// The wallet file could not be opened.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The note journal failed.
    #[error(transparent)]
    Journal(JournalError),
    /// A blocking task panicked or was cancelled.
    #[error("internal error: a blocking task failed: {0}")]
    Blocking(#[from] tokio::task::JoinError),
}

impl ClientError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AllNotesBusy => "all_notes_busy",
            Self::NoSolventNote => "no_solvent_note",
            Self::StaleState(_) => "stale_state",
            Self::BadReceipt(_) => "bad_receipt",
            Self::ReceiptOutsideLimits { .. } => "receipt_outside_limits",
            Self::ServerKeyNotOnChain { .. } => "server_key_not_on_chain",
            Self::GatewayConstantsMismatch { .. } => "gateway_constants_mismatch",
            Self::ServerKeyRetired { .. } => "server_key_retired",
            Self::NoteNotInTree { .. } => "note_not_in_tree",
            Self::TreeSync(_) | Self::RootNotCommitted { .. } => "tree_sync_failed",
            Self::Proving(_) | Self::ProofDoesNotVerify => "proving_failed",
            Self::ReceiptFetch(_) => "receipt_fetch_failed",
            Self::DepositAccountSends { .. } => "close_from_deposit_account",
            Self::RelayUnusable(_) => "relay_unusable",
            Self::RelayFailed(_) => "relay_failed",
            Self::Chain(_)
            | Self::DepositMismatch(_)
            | Self::NoGatewayForClose
            | Self::ClearanceRefused(_)
            | Self::ClearanceInvalid(_) => "chain_error",
            Self::Wallet(e) => e.code(),
            Self::Journal(_) => "journal_error",
            Self::Blocking(_) => "internal_error",
        }
    }

    /// The HTTP status a local proxy should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::AllNotesBusy => 429,
            Self::NoSolventNote => 402,
            Self::BadReceipt(_)
            | Self::ReceiptOutsideLimits { .. }
            | Self::ServerKeyNotOnChain { .. }
            | Self::GatewayConstantsMismatch { .. } => 502,
            Self::ServerKeyRetired { .. } => 402,
            Self::NoteNotInTree { .. }
            | Self::TreeSync(_)
            | Self::RootNotCommitted { .. }
            | Self::Chain(_)
            | Self::DepositMismatch(_)
            | Self::NoGatewayForClose
            | Self::ClearanceRefused(_)
            | Self::ClearanceInvalid(_)
            | Self::ReceiptFetch(_) => 503,
            Self::StaleState(_) => 409,
            _ => 500,
        }
    }
}

impl From<JournalError> for ClientError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::AllNotesBusy => Self::AllNotesBusy,
            JournalError::NoSolventNote => Self::NoSolventNote,
            other => Self::Journal(other),
        }
    }
}
