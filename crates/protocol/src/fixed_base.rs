//! `k * Base8` from a table of precomputed multiples: the nonce point of every receipt
//! signature.
//!
//! Double-and-add costs about 250 doublings and 125 additions, and it branches on the
//! bits of the scalar, here a secret nonce. With 4-bit windows and a table holding
//! `j * 16^i * Base8` for every window `i` and digit `j`, a multiplication is 63 mixed
//! additions. Every window reads all 16 of its entries and keeps the wanted one with a
//! mask, so the table accesses do not depend on the nonce, and nothing here branches on
//! its digits. The additions are the complete twisted Edwards formulas (BabyJubJub's `d`
//! is not a square), so a zero digit adds the identity with no special case. This is
//! not a constant-time implementation as a whole: arkworks' field arithmetic (its final
//! conditional subtraction) and the closing inversion are variable-time.
//!
//! arkworks' `BatchMulPreprocessing` builds a similar table, but it indexes it by the
//! scalar's bits and runs through rayon even for one scalar.

use std::sync::LazyLock;

use ark_ec::{AdditiveGroup, CurveGroup};
use ark_ff::{BigInt, PrimeField, Zero};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::Fr;
use crate::babyjubjub::{Point, ProjectivePoint, Scalar, base8};

const WINDOW_BITS: u32 = 4;
const DIGITS: usize = 1 << WINDOW_BITS;
/// Windows that cover a scalar below `l` (251 bits).
const WINDOWS: usize = (Scalar::MODULUS_BIT_SIZE as usize).div_ceil(WINDOW_BITS as usize);

/// An affine point as the Montgomery-form limbs of `x` and `y`, for masked selection
/// (rebuilt with `new_unchecked`, which does no arithmetic and so no branch on zero).
#[derive(Clone, Copy, Default)]
struct Entry {
    x: [u64; 4],
    y: [u64; 4],
}

/// `table[i][j] = j * 16^i * Base8`.
struct Table(Vec<[Entry; DIGITS]>);

static BASE8_TABLE: LazyLock<Table> = LazyLock::new(|| Table::new(base8().into()));

impl Table {
    fn new(base: ProjectivePoint) -> Self {
        let mut points = Vec::with_capacity(WINDOWS * DIGITS);
        let mut window_base = base;
        for _ in 0..WINDOWS {
            let mut multiple = ProjectivePoint::zero();
            for _ in 0..DIGITS {
                points.push(multiple);
                multiple += window_base;
            }
            for _ in 0..WINDOW_BITS {
                window_base.double_in_place();
            }
        }
        let affine = ProjectivePoint::normalize_batch(&points);
        let rows = affine
            .chunks_exact(DIGITS)
            .map(|row| {
                let mut entries = [Entry::default(); DIGITS];
                for (entry, point) in entries.iter_mut().zip(row) {
                    *entry = Entry {
                        x: point.x.0.0,
                        y: point.y.0.0,
                    };
                }
                entries
            })
            .collect();
        Self(rows)
    }

    fn mul(&self, k: &Scalar) -> Point {
        let limbs = k.into_bigint();
        let limbs = limbs.as_ref();
        let mut acc = ProjectivePoint::zero();
        for (i, row) in self.0.iter().enumerate() {
            let bit = i * WINDOW_BITS as usize;
            let digit = ((limbs[bit / 64] >> (bit % 64)) & (DIGITS as u64 - 1)) as u8;
            let mut chosen = Entry::default();
            for (j, entry) in row.iter().enumerate() {
                let here = (j as u8).ct_eq(&digit);
                let limbs = chosen.x.iter_mut().chain(&mut chosen.y);
                for (c, e) in limbs.zip(entry.x.iter().chain(&entry.y)) {
                    c.conditional_assign(e, here);
                }
            }
            let x = Fr::new_unchecked(BigInt::new(chosen.x));
            let y = Fr::new_unchecked(BigInt::new(chosen.y));
            acc += Point::new_unchecked(x, y);
        }
        acc.into_affine()
    }
}

/// `k * Base8`, with table accesses and control flow that do not depend on `k`'s digits.
pub fn mul_base8(k: &Scalar) -> Point {
    BASE8_TABLE.mul(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::CurveGroup;
    use ark_ff::One;
    use proptest::prelude::*;

    #[test]
    fn edge_scalars_match_double_and_add() {
        for k in [
            Scalar::zero(),
            Scalar::one(),
            -Scalar::one(),
            Scalar::from(16u64),
        ] {
            assert_eq!(mul_base8(&k), (base8() * k).into_affine());
        }
    }

    proptest! {
        #[test]
        fn random_scalars_match_double_and_add(bytes in any::<[u8; 32]>()) {
            let k = Scalar::from_le_bytes_mod_order(&bytes);
            prop_assert_eq!(mul_base8(&k), (base8() * k).into_affine());
        }
    }
}
