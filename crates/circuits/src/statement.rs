//! What the crate proves, as a type: each statement (the request circuit, the close
//! circuit) names its circuit identifier and key files ([`Statement`]), and its R1CS can
//! be extracted once ([`CircuitShape`]). Keys, the prover and the ceremony import all
//! start from here, so this module depends on none of them.

use ark_bn254::Fr;
use ark_relations::gr1cs::{
    ConstraintSynthesizer, ConstraintSystem, ConstraintSystemRef, OptimizationGoal,
    R1CS_PREDICATE_LABEL, SynthesisError, SynthesisMode,
};
use ark_relations::utils::matrix::Matrix;
use sha2::{Digest, Sha256};

use crate::close::CloseCircuit;
use crate::error::CircuitError;
use crate::request::{RequestCircuit, WitnessLayout};

/// The statements the crate proves, as a value.
///
/// The code that does the heavy work for a statement (extracting its R1CS, generating,
/// reading and importing its keys) takes this value instead of a type parameter, so it
/// is compiled once, here, at this crate's optimisation level. A function generic over
/// [`Statement`] is compiled by every crate that calls it, at that crate's level: in the
/// dev profile the crates above this one build unoptimised, and field and curve
/// arithmetic compiled there runs tens of times slower. The generic functions of this
/// crate only name the statement and call a function that takes its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatementKind {
    /// A paid request (`request.rs`).
    Request,
    /// A note's close (`close.rs`).
    Close,
}

impl StatementKind {
    /// The circuit identifier written into the key manifest; bumped whenever the
    /// statement changes.
    pub const fn circuit_id(self) -> &'static str {
        match self {
            Self::Request => "zkcredits/request/v1",
            Self::Close => "zkcredits/close/v1",
        }
    }

    /// The manifest file name inside a key directory.
    pub const fn manifest(self) -> &'static str {
        match self {
            Self::Request => "keys.json",
            Self::Close => "close-keys.json",
        }
    }

    /// The proving key file name.
    pub const fn proving_key_file(self) -> &'static str {
        match self {
            Self::Request => "request.pk",
            Self::Close => "close.pk",
        }
    }

    /// The verifying key file name.
    pub const fn verifying_key_file(self) -> &'static str {
        match self {
            Self::Request => "request.vk",
            Self::Close => "close.vk",
        }
    }

    /// Synthesises the statement's blank circuit in setup mode.
    pub fn shape(self) -> Result<CircuitShape, CircuitError> {
        match self {
            Self::Request => CircuitShape::synthesize(RequestCircuit::blank()),
            Self::Close => CircuitShape::synthesize(CloseCircuit::blank()),
        }
    }
}

/// A statement the crate proves: its kind, its blank shape and its synthesis with the
/// witness layout.
pub trait Statement: ConstraintSynthesizer<Fr> + Sized {
    /// Which statement this is: its identifier and file names are the kind's.
    const KIND: StatementKind;
    /// A circuit of the right shape with placeholder values.
    fn blank() -> Self;
    /// Synthesises the circuit and reports the witness layout.
    fn synthesize_with_layout(
        self,
        cs: ConstraintSystemRef<Fr>,
    ) -> Result<WitnessLayout, SynthesisError>;
}

impl Statement for RequestCircuit {
    const KIND: StatementKind = StatementKind::Request;
    fn blank() -> Self {
        RequestCircuit::blank()
    }
    fn synthesize_with_layout(
        self,
        cs: ConstraintSystemRef<Fr>,
    ) -> Result<WitnessLayout, SynthesisError> {
        self.synthesize(cs)
    }
}

impl Statement for CloseCircuit {
    const KIND: StatementKind = StatementKind::Close;
    fn blank() -> Self {
        CloseCircuit::blank()
    }
    fn synthesize_with_layout(
        self,
        cs: ConstraintSystemRef<Fr>,
    ) -> Result<WitnessLayout, SynthesisError> {
        self.synthesize(cs)
    }
}

/// A circuit's R1CS: matrices, sizes and witness layout.
#[derive(Clone, Debug)]
pub struct CircuitShape {
    /// A, B and C.
    pub matrices: Vec<Matrix<Fr>>,
    /// Instance variables, including the constant 1.
    pub num_instance: usize,
    /// Constraints.
    pub num_constraints: usize,
    /// Witness variables (the assignment after the instance).
    pub num_witness: usize,
    /// Where the note-fixed witness sits.
    pub layout: WitnessLayout,
}

impl CircuitShape {
    /// Synthesises the blank request circuit in setup mode.
    pub fn extract() -> Result<Self, CircuitError> {
        Self::extract_for::<RequestCircuit>()
    }

    /// Synthesises the blank circuit of statement `C` in setup mode.
    pub fn extract_for<C: Statement>() -> Result<Self, CircuitError> {
        C::KIND.shape()
    }

    /// Synthesises `blank` in setup mode. Private and generic: it is compiled here, for
    /// the two statements [`StatementKind::shape`] names.
    fn synthesize<C: Statement>(blank: C) -> Result<Self, CircuitError> {
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        cs.set_mode(SynthesisMode::Setup);
        let layout = blank.synthesize_with_layout(cs.clone())?;
        cs.finalize();
        let mut all = cs.to_matrices()?;
        let matrices = all
            .remove(R1CS_PREDICATE_LABEL)
            .ok_or(CircuitError::Unsatisfied("no R1CS predicate".into()))?;
        Ok(Self {
            matrices,
            num_instance: cs.num_instance_variables(),
            num_constraints: cs.num_constraints(),
            num_witness: cs.num_witness_variables(),
            layout,
        })
    }

    /// SHA-256 over the matrices and sizes, hex: any change to the statement, even one
    /// that keeps the constraint count, changes it, so keys for an older circuit are
    /// refused instead of producing proofs that never verify.
    pub fn digest_hex(&self) -> String {
        let mut hasher = Sha256::new_with_prefix(b"zkcredits/r1cs/v1");
        hasher.update((self.num_instance as u64).to_be_bytes());
        hasher.update((self.num_constraints as u64).to_be_bytes());
        for matrix in &self.matrices {
            for row in matrix {
                hasher.update((row.len() as u64).to_be_bytes());
                for (coeff, index) in row {
                    hasher.update(zkcredits_protocol::field::to_be_bytes(coeff));
                    hasher.update((*index as u64).to_be_bytes());
                }
            }
        }
        hex::encode(hasher.finalize())
    }
}
