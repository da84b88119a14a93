//! Verifying request proofs, one at a time or many at once.
//!
//! A batch is checked with a random linear combination: for random weights `z_i`,
//!
//! `prod_i e(z_i A_i, B_i) == e(alpha, beta)^sum(z_i) * e(sum(z_i L_i), gamma) * e(sum(z_i C_i), delta)`
//!
//! where `L_i` is the public-input combination of proof `i`. That is `n + 2` Miller-loop
//! pairs and one final exponentiation instead of `n` of each. If any proof is bad the
//! equation fails except with probability 2^-128 over the weights (`weights.rs`); a
//! failed batch says nothing about which proof is bad, so callers then check the proofs
//! one by one.
//!
//! What a batch costs beyond its proofs' own pairs is kept small, because the gateway's
//! batches are as large as the load makes them, often a handful: the multiples of the
//! key's fixed points `IC_j` and the power of the fixed pairing value `e(alpha, beta)`
//! come from tables (`fixed_base.rs`), and all pairs share one Miller-loop accumulator
//! (`miller.rs`).

mod fixed_base;
mod miller;
mod weights;

use ark_bn254::{Bn254, Fr, G1Affine, G1Projective, G2Affine};
use ark_ec::pairing::{Pairing, PairingOutput};
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::Zero;
use ark_groth16::{Groth16, PreparedVerifyingKey, Proof, VerifyingKey, prepare_verifying_key};
use ark_std::rand::{CryptoRng, RngCore};

use fixed_base::{FixedBaseTable, TargetTable};
use weights::Weight;

/// A verifying key prepared for single and batch verification.
#[derive(Clone, Debug)]
pub struct Verifier {
    prepared: PreparedVerifyingKey<Bn254>,
    /// Table of `e(alpha, beta)`, for its power `sum(z_i)`.
    alpha_beta_table: TargetTable,
    /// Tables of the public-input points `IC_0..IC_n`.
    input_tables: Vec<FixedBaseTable>,
}

impl Verifier {
    /// Prepares `vk` once; reuse the verifier for every proof.
    pub fn new(vk: &VerifyingKey<Bn254>) -> Self {
        let prepared = prepare_verifying_key(vk);
        Self {
            alpha_beta_table: TargetTable::new(PairingOutput(prepared.alpha_g1_beta_g2)),
            prepared,
            input_tables: vk
                .gamma_abc_g1
                .iter()
                .map(|p| FixedBaseTable::new(*p))
                .collect(),
        }
    }

    /// The number of public inputs the key expects.
    pub fn num_public_inputs(&self) -> usize {
        self.prepared.vk.gamma_abc_g1.len() - 1
    }

    /// Verifies one proof against its public inputs.
    pub fn verify(&self, proof: &Proof<Bn254>, public_inputs: &[Fr]) -> bool {
        if public_inputs.len() != self.num_public_inputs() {
            return false;
        }
        let prepared = self.prepare_inputs(public_inputs);
        Groth16::<Bn254>::verify_proof_with_prepared_inputs(&self.prepared, proof, &prepared)
            .unwrap_or(false)
    }

    /// `IC_0 + sum_j x_j IC_j` from the precomputed tables. (arkworks' own version
    /// multiplies bit by bit and was 0.6 ms of a 1.9 ms verification here.)
    fn prepare_inputs(&self, public_inputs: &[Fr]) -> G1Projective {
        self.input_tables[1..].iter().zip(public_inputs).fold(
            self.prepared.vk.gamma_abc_g1[0].into_group(),
            |acc, (table, x)| acc + table.mul(x),
        )
    }

    /// Verifies many proofs with one final exponentiation. True only if every proof is
    /// valid (up to a 2^-128 chance over `rng`); an empty batch is valid.
    pub fn verify_batch<R: RngCore + CryptoRng>(
        &self,
        batch: &[(&Proof<Bn254>, &[Fr])],
        rng: &mut R,
    ) -> bool {
        let weights: Vec<Weight> = batch.iter().map(|_| Weight::random(rng)).collect();
        self.verify_weighted(batch, &weights)
    }

    /// [`Verifier::verify_batch`] with the weights drawn. Not generic, so the pairing
    /// arithmetic is compiled in this crate whichever crate verifies (see
    /// [`crate::statement::StatementKind`]).
    fn verify_weighted(&self, batch: &[(&Proof<Bn254>, &[Fr])], weights: &[Weight]) -> bool {
        if batch.is_empty() {
            return true;
        }
        if batch
            .iter()
            .any(|(_, inputs)| inputs.len() != self.num_public_inputs())
        {
            return false;
        }
        let z: Vec<Fr> = weights.iter().map(|w| w.scalar()).collect();
        let z_sum: Fr = z.iter().sum();

        // sum_i z_i L_i = (sum_i z_i) IC_0 + sum_j (sum_i z_i x_ij) IC_j
        let mut input_scalars = vec![Fr::zero(); self.input_tables.len()];
        input_scalars[0] = z_sum;
        for ((_, inputs), zi) in batch.iter().zip(&z) {
            for (acc, x) in input_scalars[1..].iter_mut().zip(inputs.iter()) {
                *acc += *zi * x;
            }
        }
        let inputs_acc = self
            .input_tables
            .iter()
            .zip(&input_scalars)
            .map(|(table, s)| table.mul(s))
            .sum::<G1Projective>();
        let a_points: Vec<G1Affine> = batch.iter().map(|(p, _)| p.a).collect();
        let c_points: Vec<G1Affine> = batch.iter().map(|(p, _)| p.c).collect();
        let c_acc = weights::weighted_sum(&c_points, weights);

        let mut g1 = weights::scale_each(&a_points, weights);
        g1.extend([inputs_acc, c_acc]);
        let g1 = G1Projective::normalize_batch(&g1);
        let b_prepared: Vec<<Bn254 as Pairing>::G2Prepared> = batch
            .iter()
            .map(|(p, _)| G2Affine::from(p.b).into())
            .collect();
        let g2 = b_prepared.iter().chain([
            &self.prepared.gamma_g2_neg_pc,
            &self.prepared.delta_g2_neg_pc,
        ]);
        let pairs: Vec<_> = g1.into_iter().zip(g2).collect();
        miller::multi_miller_loop(&pairs)
            .and_then(Bn254::final_exponentiation)
            .is_some_and(|out| out == self.alpha_beta_table.mul(&z_sum))
    }
}
