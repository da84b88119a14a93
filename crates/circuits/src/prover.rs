//! Proving a request or a close.
//!
//! The constraint matrices never change, so a [`Prover`] extracts them once and
//! each proof only computes the witness (no matrix construction, no linear-combination
//! inlining) before the QAP reduction and the multi-scalar multiplications. The witness
//! is checked against the matrices first, so an unsatisfiable request is refused with
//! the failing constraint instead of yielding a proof that never verifies. The proof
//! arithmetic itself (the QAP quotient term in snarkjs' basis, `qap.rs`, then the five MSMs run side by side
//! with fresh blinding `r, s`) lives in `precompute.rs`, shared with the per-note fast
//! path; its proofs are checked by arkworks' own verifier in the tests.

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
use crate::request::RequestCircuit;
use crate::statement::{CircuitShape, Statement};

/// A request prover.
pub type RequestProver = Prover<RequestCircuit>;
/// A close prover.
pub type CloseProver = Prover<CloseCircuit>;

/// A prover for the statement `C`: the proving key with the circuit's matrices.
#[derive(Clone, Debug)]
pub struct Prover<C> {
    keys: CircuitKeys,
    /// A, B and C of the R1CS.
    matrices: Vec<Matrix<Fr>>,
    num_instance: usize,
    num_constraints: usize,
    /// Full-assignment indices of the values fixed by the note and the root.
    fixed: std::ops::Range<usize>,
    vk_hash: [u8; 32],
    statement: std::marker::PhantomData<fn(C)>,
}

impl<C: Statement> Prover<C> {
    /// Extracts the circuit's matrices (once, tens of milliseconds) for `keys`, and
    /// refuses keys made for another circuit or another version of it.
    pub fn new(keys: CircuitKeys) -> Result<Self, CircuitError> {
        let shape = CircuitShape::extract_for::<C>()?;
        if keys.manifest.circuit != C::CIRCUIT_ID
            || shape.digest_hex() != keys.manifest.circuit_digest
        {
            return Err(CircuitError::KeyFile {
                path: C::MANIFEST.into(),
                reason: format!("was made for another circuit than {}", C::CIRCUIT_ID),
            });
        }
        if keys.manifest.qap != crate::keys::QAP {
            return Err(CircuitError::KeyFile {
                path: C::MANIFEST.into(),
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
            statement: std::marker::PhantomData,
        })
    }

    /// The keys in use.
    pub fn keys(&self) -> &CircuitKeys {
        &self.keys
    }

    /// Full-assignment indices of the values fixed by the note and the root.
    pub fn fixed_range(&self) -> std::ops::Range<usize> {
        self.fixed.clone()
    }

    /// The number of instance variables (the constant 1 and the public inputs).
    pub fn num_instance(&self) -> usize {
        self.num_instance
    }

    /// The number of constraints.
    pub fn num_constraints(&self) -> usize {
        self.num_constraints
    }

    /// The R1CS matrices A, B, C.
    pub fn matrices(&self) -> &[Matrix<Fr>] {
        &self.matrices
    }

    /// SHA-256 of the verifying key in use.
    pub fn verifying_key_hash(&self) -> [u8; 32] {
        self.vk_hash
    }

    /// The proving key.
    pub fn proving_key(&self) -> &ProvingKey<Bn254> {
        &self.keys.proving_key
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
        if let Some(row) = first_unsatisfied(&self.matrices, &assignment) {
            return Err(CircuitError::Unsatisfied(format!("constraint {row}")));
        }
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
        Ok(self.prove_with_fixed_part(None, &assignment, rng)?)
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
