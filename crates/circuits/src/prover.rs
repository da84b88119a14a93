//! Proving a request.
//!
//! The constraint matrices never change, so [`RequestProver`] extracts them once and
//! each proof only computes the witness (no matrix construction, no linear-combination
//! inlining) before the QAP reduction and the multi-scalar multiplications. The witness
//! is checked against the matrices first, so an unsatisfiable request is refused with
//! the failing constraint instead of yielding a proof that never verifies.

use ark_bn254::{Bn254, Fr};
use ark_ff::{UniformRand, Zero};
use ark_groth16::{Groth16, Proof, ProvingKey};
use ark_relations::gr1cs::{
    ConstraintSynthesizer, ConstraintSystem, OptimizationGoal, R1CS_PREDICATE_LABEL,
    SynthesisMode,
};
use ark_relations::utils::matrix::Matrix;
use ark_std::rand::{CryptoRng, RngCore};
use zkcredits_protocol::wire::ProofPoints;

use crate::error::CircuitError;
use crate::keys::RequestKeys;
use crate::request::RequestCircuit;

/// A request prover: the proving key with the circuit's matrices.
#[derive(Clone, Debug)]
pub struct RequestProver {
    keys: RequestKeys,
    /// A, B and C of the R1CS.
    matrices: Vec<Matrix<Fr>>,
    num_instance: usize,
    num_constraints: usize,
}

impl RequestProver {
    /// Extracts the circuit's matrices (once, tens of milliseconds) for `keys`.
    pub fn new(keys: RequestKeys) -> Result<Self, CircuitError> {
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        cs.set_mode(SynthesisMode::Setup);
        RequestCircuit::blank().generate_constraints(cs.clone())?;
        cs.finalize();
        let num_instance = cs.num_instance_variables();
        let num_constraints = cs.num_constraints();
        let mut all = cs.to_matrices()?;
        let matrices = all
            .remove(R1CS_PREDICATE_LABEL)
            .ok_or(CircuitError::Unsatisfied("no R1CS predicate".into()))?;
        if num_constraints != keys.manifest.constraints {
            return Err(CircuitError::KeyFile {
                path: crate::keys::MANIFEST.into(),
                reason: format!(
                    "was made for {} constraints, this circuit has {num_constraints}",
                    keys.manifest.constraints
                ),
            });
        }
        Ok(Self {
            keys,
            matrices,
            num_instance,
            num_constraints,
        })
    }

    /// The keys in use.
    pub fn keys(&self) -> &RequestKeys {
        &self.keys
    }

    /// The proving key.
    pub fn proving_key(&self) -> &ProvingKey<Bn254> {
        &self.keys.proving_key
    }

    /// Computes the full assignment `(1, public inputs, witness)` and checks it.
    pub fn assignment(&self, circuit: RequestCircuit) -> Result<Vec<Fr>, CircuitError> {
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        cs.set_mode(SynthesisMode::Prove {
            construct_matrices: false,
            generate_lc_assignments: false,
        });
        circuit.generate_constraints(cs.clone())?;
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
        circuit: RequestCircuit,
        rng: &mut R,
    ) -> Result<Proof<Bn254>, CircuitError> {
        let assignment = self.assignment(circuit)?;
        let r = Fr::rand(rng);
        let s = Fr::rand(rng);
        Ok(Groth16::<Bn254>::create_proof_with_reduction_and_matrices(
            &self.keys.proving_key,
            r,
            s,
            &self.matrices,
            self.num_instance,
            self.num_constraints,
            &assignment,
        )?)
    }
}

fn row_value(row: &[(Fr, usize)], z: &[Fr]) -> Fr {
    row.iter().fold(Fr::zero(), |acc, (coeff, i)| acc + *coeff * z[*i])
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
