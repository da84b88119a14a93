//! Verifying request proofs, one at a time or many at once.
//!
//! A batch is checked with a random linear combination: for random 128-bit `z_i`,
//!
//! `prod_i e(z_i A_i, B_i) == e(sum(z_i) alpha, beta) * e(sum(z_i L_i), gamma) * e(sum(z_i C_i), delta)`
//!
//! where `L_i` is the public-input combination of proof `i`. That is `n + 3` Miller loops
//! and one final exponentiation instead of `n` of each. If any proof is bad the equation
//! fails except with probability about 2^-128 over the `z_i`; a failed batch says
//! nothing about which proof is bad, so callers then check the proofs one by one.

use ark_bn254::{Bn254, Fr, G1Affine, G1Projective, G2Affine};
use ark_ec::pairing::{Pairing, PairingOutput};
use ark_ec::{AffineRepr, CurveGroup, VariableBaseMSM};
use ark_ff::{BigInteger, PrimeField, Zero};
use ark_groth16::{Groth16, PreparedVerifyingKey, Proof, VerifyingKey, prepare_verifying_key};
use ark_std::rand::{CryptoRng, Rng, RngCore};

/// A verifying key prepared for single and batch verification.
#[derive(Clone, Debug)]
pub struct Verifier {
    prepared: PreparedVerifyingKey<Bn254>,
    beta_prepared: <Bn254 as Pairing>::G2Prepared,
    /// Byte-window tables of the public-input points `IC_1..IC_n`.
    input_tables: Vec<FixedBaseTable>,
}

/// `table[w][d] = d * 256^w * P` for one fixed point `P`: a scalar multiplication is
/// then one mixed addition per non-zero byte of the scalar (32 at most), instead of a
/// full double-and-add. 8,192 points (512 KiB) per public input.
#[derive(Clone, Debug)]
struct FixedBaseTable {
    windows: Vec<Vec<G1Affine>>,
}

impl FixedBaseTable {
    fn new(base: G1Affine) -> Self {
        let mut windows = Vec::with_capacity(32);
        let mut window_base = base.into_group();
        for _ in 0..32 {
            let mut entries = Vec::with_capacity(256);
            let mut entry = G1Projective::zero();
            for _ in 0..256 {
                entries.push(entry);
                entry += window_base;
            }
            windows.push(G1Projective::normalize_batch(&entries));
            window_base = entry;
        }
        Self { windows }
    }

    fn mul(&self, scalar: &Fr) -> G1Projective {
        let bytes = scalar.into_bigint().to_bytes_le();
        let mut acc = G1Projective::zero();
        for (window, byte) in self.windows.iter().zip(bytes) {
            if byte != 0 {
                acc += window[byte as usize];
            }
        }
        acc
    }
}

impl Verifier {
    /// Prepares `vk` once; reuse the verifier for every proof.
    pub fn new(vk: &VerifyingKey<Bn254>) -> Self {
        Self {
            prepared: prepare_verifying_key(vk),
            beta_prepared: vk.beta_g2.into(),
            input_tables: vk.gamma_abc_g1[1..]
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
        self.input_tables.iter().zip(public_inputs).fold(
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
        if batch.is_empty() {
            return true;
        }
        if batch
            .iter()
            .any(|(_, inputs)| inputs.len() != self.num_public_inputs())
        {
            return false;
        }
        let vk = &self.prepared.vk;
        let z: Vec<Fr> = batch
            .iter()
            .map(|_| Fr::from(rng.r#gen::<u128>()))
            .collect();
        let z_sum: Fr = z.iter().sum();

        // sum_i z_i L_i = (sum z_i) IC_0 + sum_j (sum_i z_i x_ij) IC_j
        let mut input_scalars = vec![Fr::zero(); vk.gamma_abc_g1.len()];
        input_scalars[0] = z_sum;
        for ((_, inputs), zi) in batch.iter().zip(&z) {
            for (acc, x) in input_scalars[1..].iter_mut().zip(inputs.iter()) {
                *acc += *zi * x;
            }
        }
        let inputs_acc = G1Projective::msm_unchecked(&vk.gamma_abc_g1, &input_scalars);
        let c_points: Vec<G1Affine> = batch.iter().map(|(p, _)| p.c).collect();
        let c_acc = G1Projective::msm_unchecked(&c_points, &z);
        let a_scaled: Vec<G1Projective> =
            batch.iter().zip(&z).map(|((p, _), zi)| p.a * zi).collect();

        let mut g1: Vec<G1Affine> = G1Projective::normalize_batch(&a_scaled);
        let mut g2: Vec<<Bn254 as Pairing>::G2Prepared> = batch
            .iter()
            .map(|(p, _)| G2Affine::from(p.b).into())
            .collect();
        let tail = G1Projective::normalize_batch(&[-(vk.alpha_g1 * z_sum), inputs_acc, c_acc]);
        g1.extend(tail);
        g2.push(self.beta_prepared.clone());
        g2.push(self.prepared.gamma_g2_neg_pc.clone());
        g2.push(self.prepared.delta_g2_neg_pc.clone());
        let miller = Bn254::multi_miller_loop(g1, g2);
        Bn254::final_exponentiation(miller).is_some_and(|out| out == PairingOutput::zero())
    }
}
