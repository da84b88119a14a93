//! A sample note in a sample tree, with receipts from a sample gateway key: the
//! statement that benchmarks prove and that tests tamper with. Real values, computed by
//! the protocol code exactly as a client would.
//!
//! Not test-only: `zkcredits setup import-zkey` proves this statement once with each
//! imported ceremony key before installing it, so the module is in every build. The
//! constructors that skip the amount checks only serve soundness tests and are behind the
//! `test-util` feature.

use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::eddsa::PrivateKey;
use zkcredits_protocol::merkle::{LeanImt, MerklePath};
use zkcredits_protocol::note::{self, NoteSecret, WalletSeed};
use zkcredits_protocol::state::{Limits, NoteState, Receipt, receipt_message};

use crate::error::CircuitError;
use crate::request::{RequestCircuit, RequestInputs};

/// The sample deployment's limits.
pub const LIMITS: Limits = Limits {
    c_max: Credits::new(1_000),
    p_max: Credits::new(5_000),
};
/// The sample notes' expiry epoch.
pub const EXPIRY: u64 = 30;

/// The sample gateway's receipt key.
pub fn server_key() -> PrivateKey {
    PrivateKey::from_bytes([42u8; 32])
}

/// A note among others in a tree, after some paid requests.
#[derive(Clone, Debug)]
pub struct SampleNote {
    /// The note's secret.
    pub secret: NoteSecret,
    /// `D`.
    pub deposit: Credits,
    /// The tree holding the note.
    pub tree: LeanImt,
    /// The note's leaf index.
    pub leaf_index: u64,
    /// The note's state.
    pub state: NoteState,
    /// The request binding of the next request.
    pub x: Fr,
    /// `rho_next` of the next request.
    pub rho_next: Fr,
}

impl SampleNote {
    /// Note number 4 of `notes` (at least 5) holding `deposit`, after `requests` paid
    /// requests that each got `refund` back.
    pub fn new(notes: u64, deposit: Credits, requests: u64, refund: Credits) -> Self {
        assert!(notes >= 5, "the sample note is number 4");
        let seed = WalletSeed::from_entropy(b"zkcredits sample wallet");
        let secret = seed.note_secret(4);
        let mut tree = LeanImt::new();
        for j in 0..notes {
            let d = if j == 4 {
                deposit
            } else {
                Credits::new(10_000 + j)
            };
            // Cannot fail: the leaves are non-zero hashes and far fewer than 2^32.
            tree.push(note::leaf(seed.note_secret(j).id(), d, EXPIRY))
                .expect("small tree");
        }
        let key = server_key();
        let mut state = NoteState::fresh();
        for n in 0..requests {
            let rho_next = Fr::from(1_000 + n);
            // Cannot fail: sample totals stay far below 2^64 and indices below 2^32.
            let commitment = state
                .next_commitment(secret.expose(), rho_next)
                .expect("small index");
            let receipt = Receipt {
                refund,
                penalty: Credits::ZERO,
                signature: key.sign(receipt_message(commitment, refund, Credits::ZERO)),
            };
            state = state
                .advance(secret.expose(), rho_next, receipt)
                .expect("small totals");
        }
        Self {
            secret,
            deposit,
            tree,
            leaf_index: 4,
            state,
            x: Fr::from(0xabcdefu64),
            rho_next: Fr::from(77u64),
        }
    }

    /// The note's current path.
    pub fn path(&self) -> MerklePath {
        // Cannot fail: the note is leaf 4 of a tree of at least 5.
        self.tree.path(self.leaf_index).expect("leaf in tree")
    }

    /// The client's inputs for the next request.
    pub fn inputs<'a>(&'a self, path: &'a MerklePath) -> RequestInputs<'a> {
        RequestInputs {
            secret: &self.secret,
            deposit: self.deposit,
            expiry_epoch: EXPIRY,
            path,
            root: self.tree.root(),
            state: &self.state,
            x: self.x,
            rho_next: self.rho_next,
            limits: LIMITS,
            server_key: server_key().public_key(),
        }
    }

    /// The circuit of the next request (refused if the note is insolvent).
    pub fn circuit(&self) -> Result<RequestCircuit, CircuitError> {
        let path = self.path();
        RequestCircuit::new(self.inputs(&path))
    }

    /// The circuit of the next request, without the solvency check.
    #[cfg(any(test, feature = "test-util"))]
    pub fn circuit_unchecked(&self) -> Result<RequestCircuit, CircuitError> {
        let path = self.path();
        RequestCircuit::new_unchecked(self.inputs(&path))
    }
}

impl SampleNote {
    /// The inputs of this note's close with flag `m = lost_last_receipt`, bound to `x_w`.
    pub fn close_inputs<'a>(
        &'a self,
        path: &'a MerklePath,
        lost_last_receipt: bool,
        x_w: Fr,
    ) -> crate::close::CloseInputs<'a> {
        crate::close::CloseInputs {
            secret: &self.secret,
            deposit: self.deposit,
            expiry_epoch: EXPIRY,
            path,
            root: self.tree.root(),
            state: &self.state,
            lost_last_receipt,
            x_w,
            limits: LIMITS,
            server_key: server_key().public_key(),
        }
    }

    /// The close circuit of this note (refused if the state is overdrawn).
    pub fn close_circuit(
        &self,
        lost_last_receipt: bool,
        x_w: Fr,
    ) -> Result<crate::close::CloseCircuit, CircuitError> {
        let path = self.path();
        crate::close::CloseCircuit::new(self.close_inputs(&path, lost_last_receipt, x_w))
    }

    /// The close circuit without the amount checks.
    #[cfg(any(test, feature = "test-util"))]
    pub fn close_circuit_unchecked(
        &self,
        lost_last_receipt: bool,
        x_w: Fr,
    ) -> Result<crate::close::CloseCircuit, CircuitError> {
        let path = self.path();
        crate::close::CloseCircuit::new_unchecked(self.close_inputs(&path, lost_last_receipt, x_w))
    }
}
