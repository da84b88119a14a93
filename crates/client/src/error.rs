//! The client's errors. Every variant has a stable [`code`](ClientError::code) that the
//! local proxy puts in its OpenAI-style error body, and a suggested HTTP status.

use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::merkle::TreeError;
use zkcredits_protocol::state::StateError;
use zkcredits_protocol::wire::WireError;

use crate::gateway_client::GatewayError;
use crate::journal::{JournalError, NoteStatus};
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
    StaleState(#[from] StaleState),
    /// The gateway's receipt does not decode or its signature does not verify.
    #[error("the gateway's receipt is invalid ({0}); the note stays in flight until recovery")]
    BadReceipt(#[from] BadReceipt),
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
        #[source]
        reason: LimitBreach,
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
    #[error("note {note} is not in the synced note tree ({reason}); run `zkcredits sync`")]
    NoteNotInTree {
        /// The note number.
        note: u64,
        /// What was found instead.
        #[source]
        reason: NotInTree,
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
    ClearanceRefused(#[source] GatewayError),
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
    #[error(transparent)]
    RelayUnusable(#[from] RelayUnusable),
    /// The gateway's relay refused or failed; the note can be closed again.
    #[error(
        "the gateway's relay did not close the note ({0}); run the close again, or send it from a fresh funded key (--keystore)"
    )]
    RelayFailed(#[from] RelayFailure),
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
    ReceiptFetch(#[source] GatewayError),
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

/// How a ticket no longer matches the note journal (`stale_state`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StaleState {
    /// A close was asked for a note with a request in flight.
    #[error(
        "note {note} has a request in flight; start `zkcredits proxy` or `zkcredits call` once to recover it, then close"
    )]
    CloseInFlight {
        /// The note number.
        note: u64,
    },
    /// A close was asked for a note that is closing or closed already.
    #[error("note {note} is {status}: nothing to close")]
    NothingToClose {
        /// The note number.
        note: u64,
        /// Where the journal has it.
        status: NoteStatus,
    },
    /// The journal holds no deposit for the note.
    #[error("note {note} has no deposit")]
    NoDeposit {
        /// The note number.
        note: u64,
    },
    /// The gateway holds a receipt for the ticket a unilateral close would spend: the
    /// journal is older than the note.
    #[error(
        "the gateway holds a receipt for ticket {index} of note {note}, which this journal never recorded (an old copy of the journal?); a unilateral close would be challenged and the note slashed: run `zkcredits call` or `zkcredits proxy` once to move the note forward, then close"
    )]
    UnrecordedReceipt {
        /// The note number.
        note: u64,
        /// The ticket the close would spend.
        index: u64,
    },
    /// The nullifier journaled for the ticket is not the one the note's state gives.
    #[error(
        "the journaled nullifier of note {note}, ticket {index} does not match the note's state"
    )]
    NullifierMismatch {
        /// The note number.
        note: u64,
        /// The ticket index.
        index: u64,
    },
    /// The ticket was finished, lost or released meanwhile.
    #[error("the ticket is no longer in flight: {0}")]
    NotInFlight(#[source] JournalError),
    /// The note moved past the ticket's index.
    #[error("note {note} is at index {note_index}, the ticket has index {ticket_index}")]
    IndexMismatch {
        /// The note number.
        note: u64,
        /// The note's index in the journal.
        note_index: u64,
        /// The ticket's index.
        ticket_index: u64,
    },
}

/// Why a receipt from the gateway cannot be used (`bad_receipt`): it may not be the
/// gateway's, so the genuine one may still come.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadReceipt {
    /// The text does not decode as a receipt.
    #[error("it does not decode: {0}")]
    Undecodable(#[source] WireError),
    /// The note's state has no next commitment for a receipt to sign.
    #[error("the note's state has no next ticket to sign: {0}")]
    NoNextState(#[source] StateError),
    /// The signature does not verify under any of the gateway's keys.
    #[error("the signature does not verify under the gateway's keys for T_next")]
    Unsigned,
}

/// Which of the pool's limits a receipt the gateway signed breaks
/// (`receipt_outside_limits`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitBreach {
    /// A refund above the reservation.
    #[error("refund r = {refund} above the reservation C_max = {c_max}")]
    RefundAboveCMax {
        /// The receipt's refund.
        refund: Credits,
        /// `C_max`.
        c_max: Credits,
    },
    /// A penalty above `P_max`.
    #[error("penalty p = {penalty} above P_max = {p_max}")]
    PenaltyAbovePMax {
        /// The receipt's penalty.
        penalty: Credits,
        /// `P_max`.
        p_max: Credits,
    },
    /// A refund off the published granularity.
    #[error("refund r = {refund} is not a multiple of the published granularity {granularity}")]
    OffGranularity {
        /// The receipt's refund.
        refund: Credits,
        /// The published granularity.
        granularity: u64,
    },
    /// The state after the receipt is out of the circuit's ranges.
    #[error("the state after it is out of range: {0}")]
    State(#[source] StateError),
    /// The state after the receipt would pay the user a negative `U` on close.
    #[error("the note could not close: U = D + R - P - n C_max = {payout}")]
    CannotClose {
        /// `U`, negative.
        payout: i128,
    },
    /// The refunds would exceed what was charged.
    #[error("refunds R = {refunds} above the n C_max = {charged} charged")]
    RefundsAboveCharged {
        /// `R` after the receipt.
        refunds: Credits,
        /// `n C_max`.
        charged: i128,
    },
    /// Signed by a server key the pool does not accept.
    #[error("signed by server key {key_id}, which the pool does not accept")]
    KeyNotAccepted {
        /// The signer's key id.
        key_id: u32,
    },
}

/// Why the gateway's relay cannot be used for a close (`relay_unusable`); each says
/// what to do instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayUnusable {
    /// The relay's fee is above the user's `--max-relay-fee`.
    #[error(
        "the gateway's relay asks {fee} credit units per close, more than the {max_fee} allowed (--max-relay-fee); allow more, or send the close from a fresh funded key (--keystore)"
    )]
    FeeAboveMax {
        /// The relay's fee, credit units.
        fee: Credits,
        /// The most the user allows.
        max_fee: Credits,
    },
    /// The relay's fee is more than the close pays out (the chain crate's
    /// `RelayFeeTooHigh`).
    #[error(
        "the relay fee ({fee} credit units) is more than this close pays out ({payout}); close it yourself (--keystore) or through a cheaper relay"
    )]
    FeeAbovePayout {
        /// The relay's fee, credit units.
        fee: Credits,
        /// `U`, credit units.
        payout: Credits,
    },
    /// The gateway is not reachable.
    #[error(
        "the gateway cannot be reached to relay the close; `--unilateral --keystore FILE` closes without it"
    )]
    NoGateway,
    /// The gateway publishes no relay.
    #[error(
        "the gateway does not relay closes; send the close from a fresh funded key (--keystore)"
    )]
    NotOffered,
}

/// Why a note's leaf is not where its deposit put it (`note_not_in_tree`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotInTree {
    /// The synced tree does not reach the note's leaf (yet).
    #[error(transparent)]
    NotSynced(#[from] TreeError),
    /// The leaf at the note's index holds another note.
    #[error("leaf {index} holds another note")]
    OtherNote {
        /// The note's leaf index.
        index: u64,
    },
}

/// How a relayed close failed (`relay_failed`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayFailure {
    /// The relay refused, or its answer was lost or unusable.
    #[error(transparent)]
    Gateway(GatewayError),
    /// The relay's answer names no transaction hash.
    #[error("the relay named no transaction ({tx_hash:?}): {source}")]
    NoTransaction {
        /// What it named.
        tx_hash: String,
        /// Why it is not a hash.
        #[source]
        source: zkcredits_chain::alloy::primitives::hex::FromHexError,
    },
    /// The transaction it names could not be read, or holds no `Closed` event of the
    /// note.
    #[error(transparent)]
    NotClosed(zkcredits_chain::Error),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn gateway_error() -> GatewayError {
        GatewayError::Unexpected("test".into())
    }

    /// The typed causes did not move any case to another code or status: the proxy's
    /// error bodies and docs/CLIENT.md list these.
    #[test]
    fn each_typed_cause_keeps_its_code_and_status() {
        let not_a_hash = "0xzz"
            .parse::<zkcredits_chain::alloy::primitives::TxHash>()
            .unwrap_err();
        let stale = [
            StaleState::CloseInFlight { note: 1 },
            StaleState::NothingToClose {
                note: 1,
                status: NoteStatus::Closed,
            },
            StaleState::NoDeposit { note: 1 },
            StaleState::UnrecordedReceipt { note: 1, index: 2 },
            StaleState::NullifierMismatch { note: 1, index: 2 },
            StaleState::NotInFlight(JournalError::TicketNotInFlight(3)),
            StaleState::IndexMismatch {
                note: 1,
                note_index: 2,
                ticket_index: 1,
            },
        ];
        let bad = [
            BadReceipt::Undecodable(WireError::Base64),
            BadReceipt::NoNextState(StateError::IndicesExhausted),
            BadReceipt::Unsigned,
        ];
        let breaches = [
            LimitBreach::RefundAboveCMax {
                refund: Credits::new(2),
                c_max: Credits::new(1),
            },
            LimitBreach::PenaltyAbovePMax {
                penalty: Credits::new(2),
                p_max: Credits::new(1),
            },
            LimitBreach::OffGranularity {
                refund: Credits::new(5),
                granularity: 10,
            },
            LimitBreach::State(StateError::Overflow),
            LimitBreach::CannotClose { payout: -1 },
            LimitBreach::RefundsAboveCharged {
                refunds: Credits::new(2),
                charged: 1,
            },
            LimitBreach::KeyNotAccepted { key_id: 3 },
        ];
        let unusable = [
            RelayUnusable::FeeAboveMax {
                fee: Credits::new(2),
                max_fee: Credits::new(1),
            },
            RelayUnusable::FeeAbovePayout {
                fee: Credits::new(2),
                payout: Credits::new(1),
            },
            RelayUnusable::NoGateway,
            RelayUnusable::NotOffered,
        ];
        let failed = [
            RelayFailure::Gateway(gateway_error()),
            RelayFailure::NoTransaction {
                tx_hash: "0xzz".into(),
                source: not_a_hash,
            },
            RelayFailure::NotClosed(zkcredits_chain::Error::IndexerPoisoned),
        ];

        let mut cases: Vec<(ClientError, &str, u16)> = Vec::new();
        cases.extend(stale.map(|e| (e.into(), "stale_state", 409)));
        cases.extend(bad.map(|e| (e.into(), "bad_receipt", 502)));
        cases.extend(breaches.map(|reason| {
            (
                ClientError::ReceiptOutsideLimits {
                    note: 1,
                    index: 2,
                    reason,
                },
                "receipt_outside_limits",
                502,
            )
        }));
        cases.extend(unusable.map(|e| (e.into(), "relay_unusable", 500)));
        cases.extend(failed.map(|e| (e.into(), "relay_failed", 500)));
        for (e, code, status) in cases {
            assert_eq!((e.code(), e.http_status()), (code, status), "{e}");
        }
    }

    /// A variant with a typed cause hands it on through `source()`.
    #[test]
    fn the_cause_is_kept() {
        let e = ClientError::from(BadReceipt::Undecodable(WireError::Base64));
        let cause = std::error::Error::source(&e).unwrap();
        assert!(cause.is::<BadReceipt>());
        let inner = std::error::Error::source(cause).unwrap();
        assert_eq!(inner.downcast_ref::<WireError>(), Some(&WireError::Base64));

        // A wrapper that adds no words of its own is transparent: the gateway's error is
        // matched through the enum, and a printed chain does not say it twice.
        let e = ClientError::from(RelayFailure::Gateway(gateway_error()));
        let cause = std::error::Error::source(&e).unwrap();
        assert!(matches!(
            cause.downcast_ref::<RelayFailure>(),
            Some(RelayFailure::Gateway(GatewayError::Unexpected(_)))
        ));

        let e = ClientError::from(StaleState::NotInFlight(JournalError::TicketNotInFlight(7)));
        let cause = std::error::Error::source(&e).unwrap();
        assert!(matches!(
            std::error::Error::source(cause)
                .unwrap()
                .downcast_ref::<JournalError>(),
            Some(JournalError::TicketNotInFlight(7))
        ));
    }

    /// Every message of an error chain, outermost first: what `{:#}` and anyhow's
    /// `Caused by:` print.
    fn chain(e: &dyn std::error::Error) -> Vec<String> {
        std::iter::successors(Some(e), |e| e.source())
            .map(ToString::to_string)
            .collect()
    }

    /// No level of a chain only repeats the level below it: a wrapper either adds words
    /// of its own or is transparent.
    #[test]
    fn a_printed_chain_says_nothing_twice() {
        let cases: Vec<Box<dyn std::error::Error>> = vec![
            Box::new(ClientError::from(RelayFailure::Gateway(gateway_error()))),
            Box::new(RelayFailure::NotClosed(zkcredits_chain::Error::TxFailed(
                Default::default(),
            ))),
            Box::new(ClientError::from(BadReceipt::Undecodable(
                WireError::Base64,
            ))),
            Box::new(crate::spender::UnusableReceipt::OutsideLimits(
                LimitBreach::KeyNotAccepted { key_id: 3 },
            )),
            Box::new(crate::wallet::EthKeyError::NotHex(
                hex::decode("zz").unwrap_err(),
            )),
        ];
        for e in cases {
            let levels = chain(e.as_ref());
            for pair in levels.windows(2) {
                assert_ne!(pair[0], pair[1], "{levels:?}");
            }
        }
    }
}
