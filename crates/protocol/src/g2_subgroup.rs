//! Membership of a BN254 twist point in G2, the order-`r` subgroup: the check every
//! proof's `B` point must pass before it enters a pairing.
//!
//! The twist `E'(Fq2)` has `h * r` points, and its cofactor `h` has small factors, so a
//! point that is merely on the curve may carry a small-order component that the pairing
//! does not cancel. arkworks tests `psi(Q) == [6x^2]Q`, one 127-bit multiplication.
//! Dai, Lin, Zhao and Zhou (ePrint 2022/348, "Fast subgroup membership testings for G1,
//! G2 and GT on pairing-friendly curves") show that for BN curves it is enough that
//!
//! `[x+1]Q + psi([x]Q) + psi^2([x]Q) == psi^3([2x]Q)`
//!
//! which needs only `[x]Q`, a 63-bit multiplication, and a few Frobenius maps: about
//! half the work. On G2, `psi` acts as multiplication by `p = 6x^2 (mod r)`, so the
//! equation holds there because `(x+1) + p x + p^2 x - 2 p^3 x == 0 (mod r)`; the paper
//! proves that no other point of `E'(Fq2)` satisfies it. The tests compare this check
//! with arkworks' on points inside and outside the subgroup.

use std::sync::LazyLock;

use ark_bn254::{Fq, Fq2, G2Affine, G2Projective};
use ark_ec::{AdditiveGroup, AffineRepr};
use ark_ff::{Field, PrimeField};

/// BN254's curve parameter `x` (the `u` of some papers): `p` and `r` are polynomials in it.
const BN_X: u64 = 4_965_661_367_192_848_881;

/// The constants of `psi(x, y) = (conj(x) * c_x, conj(y) * c_y)` on the twist:
/// `c_x = xi^((p-1)/3)` and `c_y = xi^((p-1)/2)` with `xi = 9 + u`, the twist's
/// non-residue. Computed once from their definition rather than written out.
static PSI_COEFFS: LazyLock<(Fq2, Fq2)> = LazyLock::new(|| {
    let xi = Fq2::new(Fq::from(9u64), Fq::from(1u64));
    let mut p_minus_1 = Fq::MODULUS;
    // p is odd, so its lowest limb is at least 1 and nothing borrows.
    p_minus_1.0[0] -= 1;
    (
        xi.pow(div_by_3(p_minus_1)),
        xi.pow(Fq::MODULUS_MINUS_ONE_DIV_TWO),
    )
});

/// `n / 3` for a 256-bit integer (used on `p - 1`, which 3 divides), by long division
/// over the limbs: arkworks' `BigInt` has no general division.
fn div_by_3(mut n: <Fq as PrimeField>::BigInt) -> <Fq as PrimeField>::BigInt {
    let mut remainder: u128 = 0;
    for limb in n.0.iter_mut().rev() {
        let value = (remainder << 64) | u128::from(*limb);
        *limb = (value / 3) as u64;
        remainder = value % 3;
    }
    n
}

/// The untwist-Frobenius-twist endomorphism on Jacobian coordinates. With
/// `x = X/Z^2` and `y = Y/Z^3`, conjugating all three and scaling `X` and `Y` gives the
/// image without an inversion.
fn psi(point: &G2Projective) -> G2Projective {
    let (c_x, c_y) = *PSI_COEFFS;
    let mut image = *point;
    image.x.frobenius_map_in_place(1);
    image.y.frobenius_map_in_place(1);
    image.z.frobenius_map_in_place(1);
    image.x *= c_x;
    image.y *= c_y;
    image
}

/// True if `point`, which must be on the twist curve, lies in G2. The identity does.
pub fn contains(point: &G2Affine) -> bool {
    let x_q = point.mul_bigint([BN_X]);
    let lhs = x_q + point + psi(&x_q) + psi(&psi(&x_q));
    let rhs = psi(&psi(&psi(&x_q.double())));
    lhs == rhs
}

/// A uniformly random point of the whole twist `E'(Fq2)`, almost never in G2: what the
/// tests of this module and of the wire decoder feed the check.
#[cfg(test)]
pub(crate) fn any_twist_point(rng: &mut impl ark_std::rand::Rng) -> G2Affine {
    use ark_ff::UniformRand;
    loop {
        let x = Fq2::rand(rng);
        if let Some(point) = G2Affine::get_point_from_x_unchecked(x, bool::rand(rng)) {
            assert!(point.is_on_curve());
            return point;
        }
    }
}

#[cfg(test)]
mod tests {
    use ark_bn254::Fr;
    use ark_ec::short_weierstrass::SWCurveConfig;
    use ark_ec::{AffineRepr, CurveGroup, PrimeGroup};
    use ark_ff::{BigInteger, UniformRand, Zero};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    fn arkworks_says(point: &G2Affine) -> bool {
        ark_bn254::g2::Config::is_in_correct_subgroup_assuming_on_curve(point)
    }

    #[test]
    fn psi_acts_as_p_on_g2() {
        let q = G2Affine::generator().into_group();
        let p_mod_r = Fr::from_le_bytes_mod_order(&Fq::MODULUS.to_bytes_le());
        assert_eq!(psi(&q), q * p_mod_r);
    }

    #[test]
    fn g2_points_and_the_identity_are_members() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        assert!(contains(&G2Affine::identity()));
        assert!(contains(&G2Affine::generator()));
        for _ in 0..32 {
            let member = (G2Affine::generator() * Fr::rand(&mut rng)).into_affine();
            assert!(contains(&member));
            let cleared = any_twist_point(&mut rng).clear_cofactor();
            assert!(contains(&cleared));
        }
    }

    #[test]
    fn agrees_with_arkworks_on_random_twist_points() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for _ in 0..64 {
            let point = any_twist_point(&mut rng);
            assert!(
                !arkworks_says(&point),
                "a random twist point is almost never in G2"
            );
            assert_eq!(contains(&point), arkworks_says(&point));
        }
    }

    /// The dangerous case: a valid G2 point plus a small-order component, the shape a
    /// forger would send. The twist's cofactor has the small factors 10,069 and
    /// 5,864,401; a torsion point of exactly that order is `[r * h / f]R`.
    #[test]
    fn a_member_plus_small_order_torsion_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let order = num_bigint::BigUint::from_bytes_le(&Fr::MODULUS.to_bytes_le())
            * num_bigint::BigUint::from_bytes_le(
                &<ark_bn254::g2::Config as ark_ec::CurveConfig>::COFACTOR
                    .iter()
                    .flat_map(|limb| limb.to_le_bytes())
                    .collect::<Vec<_>>(),
            );
        for factor in [10_069u64, 5_864_401] {
            assert_eq!(&order % factor, num_bigint::BigUint::from(0u32));
            let cofactor = (&order / factor).to_u64_digits();
            let mut found = 0;
            while found < 4 {
                let torsion = any_twist_point(&mut rng).mul_bigint(&cofactor);
                if torsion.is_zero() {
                    continue;
                }
                assert!(torsion.mul_bigint([factor]).is_zero());
                let member = G2Affine::generator() * Fr::rand(&mut rng);
                let forged = (member + torsion).into_affine();
                assert!(!arkworks_says(&forged));
                assert!(!contains(&forged));
                assert!(!contains(&torsion.into_affine()));
                found += 1;
            }
        }
    }
}
