//! The multi-Miller loop of a batch, with one accumulator for every pair.
//!
//! arkworks' `multi_miller_loop` splits the pairs into chunks of four (so that rayon can
//! run them side by side) and each chunk squares its own accumulator 63 times. A batch
//! of `n` proofs has `n + 3` pairs, so arkworks repeats the squarings `(n + 3) / 4`
//! times; on a verifier thread (a one-thread pool) nothing runs side by side and the
//! repeats are pure cost. Here all pairs share one accumulator, so the squarings are
//! paid once. The line coefficients are arkworks' own (`G2Prepared`), evaluated as its
//! `ell` does, so the result is the same field element (tested below).

use ark_bn254::{Bn254, Config, Fq12, G1Affine};
use ark_ec::AffineRepr;
use ark_ec::bn::{BnConfig, G2Prepared, TwistType, g2::EllCoeff};
use ark_ec::pairing::MillerLoopOutput;
use ark_ff::{CyclotomicMultSubgroup, Field, One};

/// `prod_i f_{6x+2, Q_i}(P_i)` with arkworks' line conventions, or `None` if a prepared
/// point has fewer line coefficients than the loop needs (arkworks' preparation always
/// has enough; a caller treats `None` as a failed check).
pub(super) fn multi_miller_loop(
    pairs: &[(G1Affine, &G2Prepared<Config>)],
) -> Option<MillerLoopOutput<Bn254>> {
    let mut lines: Vec<(&G1Affine, std::slice::Iter<'_, EllCoeff<Config>>)> = pairs
        .iter()
        .filter(|(p, q)| !p.is_zero() && !q.infinity)
        .map(|(p, q)| (p, q.ell_coeffs.iter()))
        .collect();
    let bits = <Config as BnConfig>::ATE_LOOP_COUNT;
    let mut f = Fq12::one();
    for i in (1..bits.len()).rev() {
        if i != bits.len() - 1 {
            f.square_in_place();
        }
        evaluate_lines(&mut f, &mut lines)?;
        if bits[i - 1] != 0 {
            evaluate_lines(&mut f, &mut lines)?;
        }
    }
    if <Config as BnConfig>::X_IS_NEGATIVE {
        f.cyclotomic_inverse_in_place();
    }
    // The two lines through `pi(Q)` and `-pi^2(Q)` that end the optimal ate loop.
    evaluate_lines(&mut f, &mut lines)?;
    evaluate_lines(&mut f, &mut lines)?;
    Some(MillerLoopOutput(f))
}

/// Multiplies `f` by the next line of every pair, evaluated at the pair's G1 point.
fn evaluate_lines(
    f: &mut Fq12,
    lines: &mut [(&G1Affine, std::slice::Iter<'_, EllCoeff<Config>>)],
) -> Option<()> {
    for (p, coeffs) in lines.iter_mut() {
        let (mut c0, mut c1, mut c2) = *coeffs.next()?;
        match <Config as BnConfig>::TWIST_TYPE {
            TwistType::M => {
                c2.mul_assign_by_fp(&p.y);
                c1.mul_assign_by_fp(&p.x);
                f.mul_by_014(&c0, &c1, &c2);
            }
            TwistType::D => {
                c0.mul_assign_by_fp(&p.y);
                c1.mul_assign_by_fp(&p.x);
                f.mul_by_034(&c0, &c1, &c2);
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::{G1Projective, G2Affine, G2Projective};
    use ark_ec::CurveGroup;
    use ark_ec::pairing::Pairing;
    use ark_std::UniformRand;
    use rand::SeedableRng;

    fn pairs(n: usize, seed: u8) -> Vec<(G1Affine, G2Prepared<Config>)> {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([seed; 32]);
        (0..n)
            .map(|_| {
                (
                    G1Projective::rand(&mut rng).into_affine(),
                    G2Projective::rand(&mut rng).into_affine().into(),
                )
            })
            .collect()
    }

    #[test]
    fn the_loop_equals_arkworks_for_every_batch_shape() {
        // 1 to 4 pairs fit one arkworks chunk; 5, 11 and 67 span two, three and 17.
        for (n, seed) in [(1, 1), (3, 2), (4, 3), (5, 4), (11, 5), (67, 6)] {
            let pairs = pairs(n, seed);
            let ours = multi_miller_loop(&pairs.iter().map(|(p, q)| (*p, q)).collect::<Vec<_>>())
                .expect("full coefficients");
            let theirs = Bn254::multi_miller_loop(
                pairs.iter().map(|(p, _)| *p),
                pairs.iter().map(|(_, q)| q.clone()),
            );
            assert_eq!(ours.0, theirs.0, "{n} pairs");
        }
    }

    #[test]
    fn identity_points_drop_out_and_the_pairing_is_bilinear() {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([9; 32]);
        let p = G1Projective::rand(&mut rng);
        let q = G2Projective::rand(&mut rng).into_affine();
        let s = ark_bn254::Fr::rand(&mut rng);
        let q_prepared: G2Prepared<Config> = q.into();
        let minus_sq: G2Prepared<Config> = (-(q * s)).into_affine().into();
        let infinity: G2Prepared<Config> = G2Affine::zero().into();
        // e(sP, Q) * e(P, -sQ) * e(0, Q) * e(P, 0) == 1
        let f = multi_miller_loop(&[
            ((p * s).into_affine(), &q_prepared),
            (p.into_affine(), &minus_sq),
            (G1Affine::zero(), &q_prepared),
            (p.into_affine(), &infinity),
        ])
        .expect("full coefficients");
        assert!(Bn254::final_exponentiation(f).expect("non-zero").0.is_one());
        let f = multi_miller_loop(&[((p * s).into_affine(), &q_prepared)]).expect("full");
        assert!(!Bn254::final_exponentiation(f).expect("non-zero").0.is_one());
    }

    #[test]
    fn missing_coefficients_are_refused_not_a_panic() {
        let mut pairs = pairs(2, 7);
        pairs[1].1.ell_coeffs.truncate(10);
        let refs: Vec<_> = pairs.iter().map(|(p, q)| (*p, q)).collect();
        assert!(multi_miller_loop(&refs).is_none());
    }
}
