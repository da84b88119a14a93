//! Proving a request or a close.
//!
//! The constraint matrices never change, so a [`Prover`] extracts them once and
//! each proof only computes the witness (no matrix construction, no linear-combination
//! inlining) before the QAP reduction and the multi-scalar multiplications. The witness
//! is checked against the matrices first, so an unsatisfiable request is refused with
//! the failing constraint instead of yielding a proof that never verifies. The proof
//! arithmetic itself (the QAP quotient term in snarkjs' basis, `qap.rs`, then the five
//! MSMs run side by side with fresh blinding `r, s`) lives in `precompute.rs`, shared
//! with the per-note fast path; its proofs are checked by arkworks' own verifier in the
//! tests. It is a method of the non-generic `ProverCore`, so it is compiled here, at
//! this crate's optimisation level, whichever crate proves
//! ([`crate::statement::StatementKind`] says why that matters).

use ark_bn254::{Bn254, Fr};
use ark_ff::Zero;
use ark_groth16::{Proof, ProvingKey};
use ark_relations::gr1cs::{ConstraintSystem, OptimizationGoal, SynthesisMode};
use ark_relations::utils::matrix::Matrix;
use ark_std::rand::{CryptoRng, RngCore};
use zkcredits_protocol::wire::ProofPoints;

use crate::close::CloseCircuit;
use crate::error::CircuitError;
use crate::keys::CircuitKeys;
use crate::precompute::Blinding;
use crate::request::RequestCircuit;
use crate::statement::{Statement, StatementKind};

/// A request prover.
pub type RequestProver = Prover<RequestCircuit>;
/// A close prover.
pub type CloseProver = Prover<CloseCircuit>;

/// A prover for the statement `C`: the proving key with the circuit's matrices.
#[derive(Clone, Debug)]
pub struct Prover<C> {
    core: ProverCore,
    statement: std::marker::PhantomData<fn(C)>,
}

/// What a prover holds, and the proof arithmetic on it, for any statement.
///
/// Not generic, so that the quotient and the MSMs are compiled in this crate, at its
/// optimisation level, whichever crate proves (see [`StatementKind`]). The methods of
/// [`Prover`] that are generic over the statement or the random generator only
/// synthesise the witness or draw the blinding, and hand the rest to this.
#[derive(Clone, Debug)]
pub(crate) struct ProverCore {
    pub(crate) keys: CircuitKeys,
    /// A, B and C of the R1CS.
    pub(crate) matrices: Vec<Matrix<Fr>>,
    pub(crate) num_instance: usize,
    pub(crate) num_constraints: usize,
    /// Full-assignment indices of the values fixed by the note and the root.
    pub(crate) fixed: std::ops::Range<usize>,
    pub(crate) vk_hash: [u8; 32],
}

impl ProverCore {
    /// Extracts the matrices of `kind` and refuses keys made for another circuit or
    /// another version of it.
    fn new(keys: CircuitKeys, kind: StatementKind) -> Result<Self, CircuitError> {
        let shape = kind.shape()?;
        if keys.manifest.circuit != kind.circuit_id()
            || shape.digest_hex() != keys.manifest.circuit_digest
        {
            return Err(CircuitError::KeyFile {
                path: kind.manifest().into(),
                reason: format!("was made for another circuit than {}", kind.circuit_id()),
            });
        }
        if keys.manifest.qap != crate::keys::QAP {
            return Err(CircuitError::KeyFile {
                path: kind.manifest().into(),
                reason: format!(
                    "was made for the {:?} QAP reduction, this prover uses {:?}",
                    keys.manifest.qap,
                    crate::keys::QAP
                ),
            });
        }
        let vk_hash = crate::keys::verifying_key_hash(&keys.proving_key.vk);
        Ok(Self {
            keys,
            fixed: shape.num_instance + shape.layout.note_fixed.start
                ..shape.num_instance + shape.layout.note_fixed.end,
            matrices: shape.matrices,
            num_instance: shape.num_instance,
            num_constraints: shape.num_constraints,
            vk_hash,
        })
    }

    /// Refuses an assignment that breaks a constraint, naming the first.
    fn check(&self, assignment: &[Fr]) -> Result<(), CircuitError> {
        match first_unsatisfied(&self.matrices, assignment) {
            Some(row) => Err(CircuitError::Unsatisfied(format!("constraint {row}"))),
            None => Ok(()),
        }
    }
}

impl<C: Statement> Prover<C> {
    /// Extracts the circuit's matrices (once, tens of milliseconds) for `keys`, and
    /// refuses keys made for another circuit or another version of it.
    pub fn new(keys: CircuitKeys) -> Result<Self, CircuitError> {
        Ok(Self {
            core: ProverCore::new(keys, C::KIND)?,
            statement: std::marker::PhantomData,
        })
    }

    /// The statement-independent part, for the proof arithmetic.
    pub(crate) fn core(&self) -> &ProverCore {
        &self.core
    }

    /// The keys in use.
    pub fn keys(&self) -> &CircuitKeys {
        &self.core.keys
    }

    /// Full-assignment indices of the values fixed by the note and the root.
    pub fn fixed_range(&self) -> std::ops::Range<usize> {
        self.core.fixed.clone()
    }

    /// The number of instance variables (the constant 1 and the public inputs).
    pub fn num_instance(&self) -> usize {
        self.core.num_instance
    }

    /// The number of constraints.
    pub fn num_constraints(&self) -> usize {
        self.core.num_constraints
    }

    /// The R1CS matrices A, B, C.
    pub fn matrices(&self) -> &[Matrix<Fr>] {
        &self.core.matrices
    }

    /// SHA-256 of the verifying key in use.
    pub fn verifying_key_hash(&self) -> [u8; 32] {
        self.core.vk_hash
    }

    /// The proving key.
    pub fn proving_key(&self) -> &ProvingKey<Bn254> {
        &self.core.keys.proving_key
    }

    /// Computes the full assignment `(1, public inputs, witness)` and checks it.
    pub fn assignment(&self, circuit: C) -> Result<Vec<Fr>, CircuitError> {
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        cs.set_mode(SynthesisMode::Prove {
            construct_matrices: false,
            generate_lc_assignments: false,
        });
        circuit.synthesize_with_layout(cs.clone())?;
        let mut assignment = cs.instance_assignment()?;
        assignment.extend(cs.witness_assignment()?);
        self.core.check(&assignment)?;
        Ok(assignment)
    }

    /// Proves `circuit` with fresh blinding `r, s` from `rng`, so two proofs of one
    /// statement share nothing.
    pub fn prove<R: RngCore + CryptoRng>(
        &self,
        circuit: C,
        rng: &mut R,
    ) -> Result<Proof<Bn254>, CircuitError> {
        let assignment = self.assignment(circuit)?;
        Ok(self.core.prove(None, &assignment, Blinding::draw(rng))?)
    }
}

pub(crate) fn row_value(row: &[(Fr, usize)], z: &[Fr]) -> Fr {
    row.iter()
        .fold(Fr::zero(), |acc, (coeff, i)| acc + *coeff * z[*i])
}

fn first_unsatisfied(matrices: &[Matrix<Fr>], z: &[Fr]) -> Option<usize> {
    let [a, b, c] = matrices else {
        return Some(0);
    };
    (0..a.len()).find(|&i| row_value(&a[i], z) * row_value(&b[i], z) != row_value(&c[i], z))
}

/// The proof's points, for the wire.
pub fn to_points(proof: &Proof<Bn254>) -> ProofPoints {
    ProofPoints {
        a: proof.a,
        b: proof.b,
        c: proof.c,
    }
}

/// A proof from its wire points.
pub fn from_points(points: &ProofPoints) -> Proof<Bn254> {
    Proof {
        a: points.a,
        b: points.b,
        c: points.c,
    }
}
