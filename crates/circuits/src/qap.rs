//! The R1CS-to-QAP reduction of snarkjs, so that keys from a snarkjs phase 2 ceremony
//! (`docs/CEREMONY.md`) and our development keys are used by one prover.
//!
//! Both reductions build the same QAP: constraint `i` is the Lagrange polynomial `L_i` of
//! the size-`n` domain, and the instance variables get the extra rows
//! `num_constraints + j` in `A` (that keeps the public inputs' polynomials linearly
//! independent). They differ in the `H` query, the basis in which the quotient term
//! `h(tau) Z(tau) / delta` of the proof's `C` is computed:
//!
//! - arkworks' libsnark reduction stores `tau^i Z(tau) / delta` and the prover computes
//!   the coefficients of `h = (A B - C) / Z` (its last step divides by `Z` on a coset and
//!   interpolates);
//! - snarkjs stores `L'_{2i+1}(tau) / delta`, the Lagrange polynomials of the domain of
//!   size `2n` at its odd points `g^{2i+1}` (`g` a `2n`-th root of unity, `g^2` the
//!   generator of the size-`n` domain), and the prover gives the values
//!   `P(g^{2i+1})` of `P = A B - C`.
//!
//! The second is sound because `P` has degree at most `2n - 2` and vanishes on the
//! size-`n` domain, the even points of the size-`2n` domain. Interpolating on all `2n`
//! points is exact, and the even terms are zero, so
//! `sum_i L'_{2i+1}(tau) P(g^{2i+1}) = P(tau) = h(tau) Z(tau)`. It also saves the
//! prover the division and one interpolation: three inverse FFTs and three coset FFTs
//! in all. The tests check the two reductions give equal `C` points for one `tau`.

use ark_ff::PrimeField;
use ark_groth16::r1cs_to_qap::{LibsnarkReduction, R1CSToQAP, evaluate_constraint};
use ark_poly::EvaluationDomain;
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};
use rayon::prelude::*;

/// The reduction snarkjs uses (`groth16 setup`, `groth16 prove`); see the module docs.
#[derive(Clone, Copy, Debug)]
pub struct SnarkjsReduction;

impl R1CSToQAP for SnarkjsReduction {
    #[allow(clippy::type_complexity)]
    fn instance_map_with_evaluation<F: PrimeField, D: EvaluationDomain<F>>(
        cs: ConstraintSystemRef<F>,
        t: &F,
    ) -> Result<(Vec<F>, Vec<F>, Vec<F>, F, usize, usize), SynthesisError> {
        // The polynomials A_j, B_j, C_j are the same in both reductions.
        LibsnarkReduction::instance_map_with_evaluation::<F, D>(cs, t)
    }

    fn witness_map_from_matrices<F: PrimeField, D: EvaluationDomain<F>>(
        matrices: &[Vec<Vec<(F, usize)>>],
        num_inputs: usize,
        num_constraints: usize,
        full_assignment: &[F],
    ) -> Result<Vec<F>, SynthesisError> {
        let [a_rows, b_rows, c_rows] = matrices else {
            return Err(SynthesisError::Unsatisfiable);
        };
        let domain =
            D::new(num_constraints + num_inputs).ok_or(SynthesisError::PolynomialDegreeTooLarge)?;
        let n = domain.size();
        let odd_shift = D::new(2 * n)
            .ok_or(SynthesisError::PolynomialDegreeTooLarge)?
            .element(1);
        let evaluate = |rows: &[Vec<(F, usize)>], instance_rows: bool| {
            let mut values = vec![F::zero(); n];
            values[..num_constraints]
                .par_iter_mut()
                .zip(rows)
                .for_each(|(v, row)| *v = evaluate_constraint(row, full_assignment));
            if instance_rows {
                values[num_constraints..num_constraints + num_inputs]
                    .copy_from_slice(&full_assignment[..num_inputs]);
            }
            // From the values on the domain to the values on its odd coset g * domain.
            domain.ifft_in_place(&mut values);
            D::distribute_powers(&mut values, odd_shift);
            domain.fft_in_place(&mut values);
            values
        };
        let (mut p, (b, c)) = rayon::join(
            || evaluate(a_rows, true),
            || rayon::join(|| evaluate(b_rows, false), || evaluate(c_rows, false)),
        );
        p.par_iter_mut()
            .zip(b)
            .zip(c)
            .for_each(|((p, b), c)| *p = *p * b - c);
        Ok(p)
    }

    fn h_query_scalars<F: PrimeField, D: EvaluationDomain<F>>(
        max_power: usize,
        t: F,
        _zt: F,
        delta_inverse: F,
    ) -> Result<Vec<F>, SynthesisError> {
        // arkworks' generator asks for `n - 1` powers (the degree of h plus one).
        let n = max_power + 1;
        let double = D::new(2 * n).ok_or(SynthesisError::PolynomialDegreeTooLarge)?;
        if double.size() != 2 * n {
            return Err(SynthesisError::PolynomialDegreeTooLarge);
        }
        let lagrange = double.evaluate_all_lagrange_coefficients(t);
        Ok(lagrange
            .into_par_iter()
            .skip(1)
            .step_by(2)
            .map(|l| l * delta_inverse)
            .collect())
    }
}

/// The number of `H` query points a key for a circuit with this many constraints and
/// instance variables has under [`SnarkjsReduction`]: the domain size.
pub fn h_query_len<F: PrimeField, D: EvaluationDomain<F>>(
    num_constraints: usize,
    num_inputs: usize,
) -> Option<usize> {
    D::new(num_constraints + num_inputs).map(|d| d.size())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::{Fr, G1Projective};
    use ark_ec::{PrimeGroup, VariableBaseMSM};
    use ark_ff::{One, UniformRand, Zero};
    use ark_poly::GeneralEvaluationDomain;
    use ark_std::rand::SeedableRng;

    type D = GeneralEvaluationDomain<Fr>;

    /// A toy R1CS: `w0 * w1 = w2`, `(w2 + x) * 1 = w3`, over assignment
    /// `(1, x, w0, w1, w2, w3)`.
    type Matrices = Vec<Vec<Vec<(Fr, usize)>>>;

    fn toy() -> (Matrices, Vec<Fr>) {
        let one = Fr::one();
        let a = vec![vec![(one, 2)], vec![(one, 4), (one, 1)]];
        let b = vec![vec![(one, 3)], vec![(one, 0)]];
        let c = vec![vec![(one, 4)], vec![(one, 5)]];
        let (x, w0, w1) = (Fr::from(7u64), Fr::from(3u64), Fr::from(5u64));
        let z = vec![one, x, w0, w1, w0 * w1, w0 * w1 + x];
        (vec![a, b, c], z)
    }

    /// Both reductions put the same `h(tau) Z(tau) / delta` into the proof's `C`.
    #[test]
    fn the_odd_coset_quotient_term_equals_libsnarks() {
        let (matrices, z) = toy();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let (t, delta_inverse) = (Fr::rand(&mut rng), Fr::rand(&mut rng));
        let (num_inputs, num_constraints) = (2, 2);
        let n = D::new(num_constraints + num_inputs)
            .map(|d| d.size())
            .unwrap_or(0);
        let zt = D::new(n)
            .map(|d| d.evaluate_vanishing_polynomial(t))
            .unwrap_or_default();
        let term = |h: Vec<Fr>, scalars: Vec<Fr>| {
            let bases: Vec<_> = scalars
                .iter()
                .map(|s| (G1Projective::generator() * s).into())
                .collect::<Vec<ark_bn254::G1Affine>>();
            // libsnark's h has one coefficient more than its query (always zero).
            G1Projective::msm_unchecked(&bases, &h)
        };
        let libsnark = term(
            LibsnarkReduction::witness_map_from_matrices::<Fr, D>(
                &matrices,
                num_inputs,
                num_constraints,
                &z,
            )
            .unwrap_or_default(),
            LibsnarkReduction::h_query_scalars::<Fr, D>(n - 1, t, zt, delta_inverse)
                .unwrap_or_default(),
        );
        let snarkjs = term(
            SnarkjsReduction::witness_map_from_matrices::<Fr, D>(
                &matrices,
                num_inputs,
                num_constraints,
                &z,
            )
            .unwrap_or_default(),
            SnarkjsReduction::h_query_scalars::<Fr, D>(n - 1, t, zt, delta_inverse)
                .unwrap_or_default(),
        );
        assert!(!libsnark.is_zero(), "the toy's quotient is not trivial");
        assert_eq!(libsnark, snarkjs);
    }
}
