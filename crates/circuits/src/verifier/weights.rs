//! The random weights of a batch check, `z = a + b * lambda` with 64-bit `a` and `b`.
//!
//! A batch check raises proof `i`'s pairing equation to the power `z_i`; a bad proof
//! passes only if its `z_i` hits one value modulo `r` out of those the verifier could
//! have drawn. The weights therefore need 2^128 distinct values, not 128 random bits of
//! a particular shape. `lambda` is the eigenvalue of the GLV endomorphism of G1
//! (`phi(x, y) = (beta * x, y) = lambda * (x, y)`), so
//!
//! - `z * P = a * P + b * phi(P)`: a joint double-and-add over 64 bits instead of 128;
//! - `sum z_i C_i = sum a_i C_i + sum b_i phi(C_i)`: one MSM with 64-bit scalars.
//!
//! Distinct `(a, b)` give distinct `z`: `a + b * lambda = a' + b' * lambda (mod r)`
//! would put `(a - a', b - b')` in the lattice `{(u, v) : u + v * lambda = 0 (mod r)}`,
//! whose shortest non-zero vector has length about 2^127 (arkworks' GLV basis of it is
//! reduced, tested below), while both differences are below 2^64. So 2^128 pairs give
//! 2^128 weights.
//!
//! The multiplications branch on the weights' bits. The weights are drawn after the
//! proofs arrived, used for one batch and never shown, so there is nothing for timing
//! to leak that an attacker could still use.

use ark_bn254::g1::Config as G1Config;
use ark_bn254::{Fr, G1Affine, G1Projective};
use ark_ec::scalar_mul::glv::GLVConfig;
use ark_ec::{AdditiveGroup, CurveGroup, VariableBaseMSM};
use ark_std::rand::{CryptoRng, RngCore};

/// One proof's weight in a batch check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Weight {
    a: u64,
    b: u64,
}

impl Weight {
    /// A uniformly random weight.
    pub(super) fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self {
            a: rng.next_u64(),
            b: rng.next_u64(),
        }
    }

    /// `z = a + b * lambda` as a scalar.
    pub(super) fn scalar(self) -> Fr {
        Fr::from(self.a) + G1Config::LAMBDA * Fr::from(self.b)
    }
}

/// `phi(P) = lambda * P`: one multiplication in the base field.
fn endo(p: &G1Affine) -> G1Affine {
    G1Config::endomorphism_affine(p)
}

/// `z_i * P_i` for every `i`.
pub(super) fn scale_each(points: &[G1Affine], weights: &[Weight]) -> Vec<G1Projective> {
    let phis: Vec<G1Affine> = points.iter().map(endo).collect();
    // P + phi(P) for every point, brought to affine together (one field inversion), so
    // that every addition in the loops below is a mixed one.
    let sums: Vec<G1Projective> = points.iter().zip(&phis).map(|(p, q)| *p + q).collect();
    let sums = G1Projective::normalize_batch(&sums);
    points
        .iter()
        .zip(&phis)
        .zip(&sums)
        .zip(weights)
        .map(|(((p, phi), sum), w)| {
            let mut acc = G1Projective::ZERO;
            for bit in (0..64 - (w.a | w.b).leading_zeros()).rev() {
                acc.double_in_place();
                match ((w.a >> bit) & 1 == 1, (w.b >> bit) & 1 == 1) {
                    (true, false) => acc += p,
                    (false, true) => acc += phi,
                    (true, true) => acc += sum,
                    (false, false) => {}
                }
            }
            acc
        })
        .collect()
}

/// `sum_i z_i * P_i`.
pub(super) fn weighted_sum(points: &[G1Affine], weights: &[Weight]) -> G1Projective {
    let bases: Vec<G1Affine> = points
        .iter()
        .copied()
        .chain(points.iter().map(endo))
        .collect();
    let scalars: Vec<u64> = weights
        .iter()
        .map(|w| w.a)
        .chain(weights.iter().map(|w| w.b))
        .collect();
    G1Projective::msm_u64(&bases, &scalars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::AffineRepr;
    use ark_ff::PrimeField;
    use ark_std::UniformRand;
    use num_bigint::{BigInt, BigUint, Sign};
    use rand::SeedableRng;

    fn rng(seed: u8) -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::from_seed([seed; 32])
    }

    #[test]
    fn the_endomorphism_is_multiplication_by_lambda() {
        let mut rng = rng(1);
        for _ in 0..8 {
            let p = G1Projective::rand(&mut rng).into_affine();
            assert_eq!(endo(&p), (p * G1Config::LAMBDA).into_affine());
        }
    }

    #[test]
    fn scaling_and_summing_agree_with_plain_multiplication() {
        let mut rng = rng(2);
        let mut points: Vec<G1Affine> = (0..9)
            .map(|_| G1Projective::rand(&mut rng).into_affine())
            .collect();
        points.push(G1Affine::zero());
        let mut weights: Vec<Weight> = (0..points.len())
            .map(|_| Weight::random(&mut rng))
            .collect();
        weights[0] = Weight { a: 0, b: 0 };
        weights[1] = Weight { a: 1, b: 0 };
        weights[2] = Weight { a: 0, b: 1 };
        weights[3] = Weight {
            a: u64::MAX,
            b: u64::MAX,
        };
        let scaled = scale_each(&points, &weights);
        let mut expected_sum = G1Projective::ZERO;
        for ((p, w), s) in points.iter().zip(&weights).zip(&scaled) {
            let expected = *p * w.scalar();
            assert_eq!(*s, expected, "{w:?}");
            expected_sum += expected;
        }
        assert_eq!(weighted_sum(&points, &weights), expected_sum);
    }

    fn signed((positive, magnitude): (bool, <Fr as PrimeField>::BigInt)) -> BigInt {
        let sign = if positive { Sign::Plus } else { Sign::Minus };
        BigInt::from_biguint(sign, BigUint::from(magnitude))
    }

    /// The soundness claim of the module: the lattice of weight collisions has no
    /// non-zero vector with both coordinates below 2^64.
    #[test]
    fn distinct_halves_give_distinct_weights() {
        let [n11, n12, n21, n22] = G1Config::SCALAR_DECOMP_COEFFS.map(signed);
        let r = BigInt::from(BigUint::from(Fr::MODULUS));
        let lambda = BigInt::from(BigUint::from(G1Config::LAMBDA.into_bigint()));
        let rows = [(n11, n12), (n21, n22)];
        // Both rows lie in the collision lattice...
        for (u, v) in &rows {
            assert_eq!((u + v * &lambda) % &r, BigInt::from(0));
        }
        // ...and span all of it (their determinant is +-r, the lattice's index)...
        let det = &rows[0].0 * &rows[1].1 - &rows[0].1 * &rows[1].0;
        assert_eq!(det.magnitude(), r.magnitude());
        // ...as a Lagrange-reduced basis, so its shorter row is a shortest vector...
        let dot = |x: &(BigInt, BigInt), y: &(BigInt, BigInt)| &x.0 * &y.0 + &x.1 * &y.1;
        let shortest = dot(&rows[0], &rows[0]).min(dot(&rows[1], &rows[1]));
        let dot01 = dot(&rows[0], &rows[1]);
        assert!(BigInt::from(2) * BigInt::from(dot01.magnitude().clone()) <= shortest);
        // ...longer than any difference of two weights' halves: |(u, v)|^2 < 2^129.
        assert!(shortest > BigInt::from(1) << 129);
    }
}
