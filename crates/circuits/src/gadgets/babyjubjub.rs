//! BabyJubJub (circomlib's form, `a = 168700`, `d = 168696`) in R1CS: complete twisted
//! Edwards addition and doubling, a fixed-base windowed multiplication for `S * Base8`
//! and a 2-bit windowed variable-base multiplication for `hm * (8 A)`.
//!
//! The twisted Edwards law is complete on this curve (`a` is a square, `d` is not), so no
//! input needs a special case: the identity `(0, 1)` is an ordinary table entry.

use ark_ec::twisted_edwards::Projective;
use ark_ec::{AdditiveGroup, AffineRepr, CurveGroup};
use ark_ff::{Field, Zero};
use ark_r1cs_std::fields::FieldVar;
use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::prelude::*;
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};
use zkcredits_protocol::Fr;
use zkcredits_protocol::babyjubjub::{BabyJubJub, COEFF_A, COEFF_D, Point};

use super::witness;

/// A point as two field variables. Nothing here checks the curve equation: callers
/// pass points that are on the curve (public keys fixed by the deployment, or points
/// the gadget itself computed), and an off-curve nonce only makes a proof impossible.
#[derive(Clone, Debug)]
pub struct PointVar {
    /// x
    pub x: FpVar<Fr>,
    /// y
    pub y: FpVar<Fr>,
}

impl PointVar {
    /// A constant point.
    pub fn constant(p: Point) -> Self {
        Self {
            x: FpVar::constant(p.x),
            y: FpVar::constant(p.y),
        }
    }

    /// The identity `(0, 1)`.
    pub fn identity() -> Self {
        Self::constant(Point::zero())
    }

    /// The point's value, when known.
    pub fn value(&self) -> Result<Point, SynthesisError> {
        Ok(Point::new_unchecked(self.x.value()?, self.y.value()?))
    }

    /// `self + other` with the complete addition law (6 constraints):
    /// `x3 = (x1 y2 + y1 x2) / (1 + d t)`, `y3 = (y1 y2 - a x1 x2) / (1 - d t)`,
    /// with `t = x1 x2 y1 y2`.
    pub fn add(&self, other: &Self) -> Result<Self, SynthesisError> {
        let beta = &self.x * &other.y;
        let gamma = &self.y * &other.x;
        let delta = (&self.y - &self.x * COEFF_A) * (&other.x + &other.y);
        let tau = &beta * &gamma;
        let x_num = &beta + &gamma;
        let y_num = &delta + &beta * COEFF_A - &gamma;
        let x_den = FpVar::one() + &tau * COEFF_D;
        let y_den = FpVar::one() - &tau * COEFF_D;
        let cs = self.x.cs().or(other.x.cs());
        if cs.is_none() {
            // Both points are constants: so is the sum.
            let sum = (self.value()?.into_group() + other.value()?).into_affine();
            return Ok(Self::constant(sum));
        }
        Self::quotients(&cs, (&x_num, &x_den), (&y_num, &y_den))
    }

    /// `2 * self` (5 constraints), using the curve equation to simplify the
    /// denominators: `x3 = 2xy / (a x^2 + y^2)`, `y3 = (y^2 - a x^2) / (2 - a x^2 - y^2)`.
    pub fn double(&self) -> Result<Self, SynthesisError> {
        let cs = self.x.cs();
        if cs.is_none() {
            let p: Projective<BabyJubJub> = self.value()?.into_group();
            return Ok(Self::constant(p.double().into_affine()));
        }
        let xx = self.x.square()?;
        let yy = self.y.square()?;
        let xy = &self.x * &self.y;
        let axx = &xx * COEFF_A;
        let x_den = &axx + &yy;
        let y_den = FpVar::constant(Fr::from(2u64)) - &axx - &yy;
        let x_num = xy.double()?;
        let y_num = &yy - &axx;
        Self::quotients(&cs, (&x_num, &x_den), (&y_num, &y_den))
    }

    /// The point `(xn / xd, yn / yd)`, allocated and enforced as `x * xd = xn`,
    /// `y * yd = yn` (2 constraints). The denominators never vanish on the curve.
    fn quotients(
        cs: &ConstraintSystemRef<Fr>,
        (x_num, x_den): (&FpVar<Fr>, &FpVar<Fr>),
        (y_num, y_den): (&FpVar<Fr>, &FpVar<Fr>),
    ) -> Result<Self, SynthesisError> {
        let divide = |num: &FpVar<Fr>, den: &FpVar<Fr>| -> Result<Fr, SynthesisError> {
            Ok(num.value()? * den.value()?.inverse().unwrap_or_default())
        };
        let x = witness(cs, || divide(x_num, x_den))?;
        let y = witness(cs, || divide(y_num, y_den))?;
        x.mul_equals(x_den, x_num)?;
        y.mul_equals(y_den, y_num)?;
        Ok(Self { x, y })
    }

    /// Selects `t` when `cond` else `f` (2 constraints).
    fn select(cond: &Boolean<Fr>, t: &Self, f: &Self) -> Result<Self, SynthesisError> {
        Ok(Self {
            x: cond.select(&t.x, &f.x)?,
            y: cond.select(&t.y, &f.y)?,
        })
    }
}

/// `scalar * base` for a constant `base`, with the scalar as little-endian bits.
///
/// Windows of 3 bits: each window's 8 multiples are constants, so the lookup is linear
/// in `(b0, b1, b0 b1)` and costs 3 constraints, plus 6 for the addition.
pub fn mul_fixed(base: Point, scalar_bits: &[Boolean<Fr>]) -> Result<PointVar, SynthesisError> {
    let mut acc: Option<PointVar> = None;
    let mut window_base = base.into_group();
    for window in scalar_bits.chunks(3) {
        // table[j] = j * 2^(3w) * base
        let mut table = Vec::with_capacity(8);
        let mut entry = Projective::<BabyJubJub>::zero();
        for _ in 0..8 {
            table.push(entry.into_affine());
            entry += window_base;
        }
        let looked_up = lookup_constant(&table, window)?;
        acc = Some(match acc {
            None => looked_up,
            Some(acc) => acc.add(&looked_up)?,
        });
        for _ in 0..window.len() {
            window_base.double_in_place();
        }
    }
    Ok(acc.unwrap_or_else(PointVar::identity))
}

/// Looks up `table[bits]` (bits little-endian, 1 to 3 of them) from constants.
///
/// # Panics
/// With more than 3 bits: callers pass windows of at most 3.
fn lookup_constant(table: &[Point], bits: &[Boolean<Fr>]) -> Result<PointVar, SynthesisError> {
    assert!((1..=3).contains(&bits.len()), "windows have 1 to 3 bits");
    let coord = |j: usize, x: bool| -> Fr { if x { table[j].x } else { table[j].y } };
    let b = |i: usize| FpVar::from(bits[i].clone());
    let b01 = if bits.len() >= 2 {
        Some(b(0) * b(1))
    } else {
        None
    };
    let lookup = |is_x: bool| -> FpVar<Fr> {
        // The 4-entry lookup for the low two bits from entries offset..offset+4, as a
        // linear combination of 1, b0, b1 and b0*b1.
        let low = |offset: usize| -> FpVar<Fr> {
            let t = |j: usize| coord(offset + j, is_x);
            let mut v = FpVar::constant(t(0)) + b(0) * (t(1) - t(0));
            if let Some(b01) = &b01 {
                v += b(1) * (t(2) - t(0)) + b01 * (t(3) - t(2) - t(1) + t(0));
            }
            v
        };
        match bits.len() {
            3 => {
                let lo = low(0);
                let hi = low(4);
                &lo + b(2) * (hi - &lo)
            }
            _ => low(0),
        }
    };
    let (x, y) = (lookup(true), lookup(false));
    Ok(PointVar { x, y })
}

/// `scalar * base` for a variable `base`, scalar as little-endian bits, 2-bit windows
/// from the top: per window two doublings (10), a lookup among `O, Q, 2Q, 3Q` (6) and
/// an addition (6).
pub fn mul_variable(
    base: &PointVar,
    scalar_bits: &[Boolean<Fr>],
) -> Result<PointVar, SynthesisError> {
    let q1 = base.clone();
    let q2 = base.double()?;
    let q3 = q2.add(&q1)?;
    let mut acc: Option<PointVar> = None;
    let windows: Vec<&[Boolean<Fr>]> = scalar_bits.chunks(2).collect();
    for window in windows.into_iter().rev() {
        let looked_up = match window {
            [lo, hi] => {
                // lo ? (hi ? 3Q : Q) : (hi ? 2Q : O)
                let odd = PointVar::select(hi, &q3, &q1)?;
                let even = PointVar {
                    x: FpVar::from(hi.clone()) * &q2.x,
                    y: FpVar::one() + FpVar::from(hi.clone()) * (&q2.y - FpVar::one()),
                };
                PointVar::select(lo, &odd, &even)?
            }
            [lo] => PointVar::select(lo, &q1, &PointVar::identity())?,
            _ => unreachable!("chunks of two"),
        };
        acc = Some(match acc {
            None => looked_up,
            Some(acc) => {
                let mut doubled = acc;
                for _ in 0..window.len() {
                    doubled = doubled.double()?;
                }
                doubled.add(&looked_up)?
            }
        });
    }
    Ok(acc.unwrap_or_else(PointVar::identity))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{BigInteger, PrimeField};
    use ark_relations::gr1cs::ConstraintSystem;
    use proptest::prelude::*;
    use zkcredits_protocol::babyjubjub::{self, Scalar};

    fn bits(
        cs: &ark_relations::gr1cs::ConstraintSystemRef<Fr>,
        value: Fr,
        n: usize,
    ) -> Vec<Boolean<Fr>> {
        let bigint = value.into_bigint();
        (0..n)
            .map(|i| Boolean::new_witness(cs.clone(), || Ok(bigint.get_bit(i))).expect("bit"))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]
        #[test]
        fn the_gadgets_equal_native_arithmetic(s in any::<[u8; 32]>(), t in any::<[u8; 32]>()) {
            let cs = ConstraintSystem::<Fr>::new_ref();
            let s = Scalar::from_le_bytes_mod_order(&s);
            let t = Fr::from_le_bytes_mod_order(&t);
            let b8 = babyjubjub::base8();
            let s_fr = Fr::from_le_bytes_mod_order(&s.into_bigint().to_bytes_le());

            let fixed = mul_fixed(b8, &bits(&cs, s_fr, 253)).expect("fixed");
            prop_assert_eq!(fixed.value().expect("value"), (b8 * s).into_affine());

            let q = (b8 * Scalar::from(12345u64)).into_affine();
            let qv = PointVar {
                x: FpVar::new_witness(cs.clone(), || Ok(q.x)).expect("x"),
                y: FpVar::new_witness(cs.clone(), || Ok(q.y)).expect("y"),
            };
            let var = mul_variable(&qv, &bits(&cs, t, 254)).expect("variable");
            prop_assert_eq!(var.value().expect("value"), babyjubjub::mul_integer(&q, t.into_bigint()));

            let doubled = qv.double().expect("double");
            prop_assert_eq!(doubled.value().expect("value"), (q + q).into_affine());
            let sum = qv.add(&fixed).expect("add");
            prop_assert_eq!(sum.value().expect("value"), (q + (b8 * s).into_affine()).into_affine());
            prop_assert!(cs.is_satisfied().expect("satisfiable"));
        }
    }

    #[test]
    fn adding_the_identity_and_a_point_to_its_negation_are_handled() {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let p = babyjubjub::base8();
        let pv = PointVar {
            x: FpVar::new_witness(cs.clone(), || Ok(p.x)).expect("x"),
            y: FpVar::new_witness(cs.clone(), || Ok(p.y)).expect("y"),
        };
        let neg = PointVar {
            x: FpVar::new_witness(cs.clone(), || Ok(-p.x)).expect("x"),
            y: FpVar::new_witness(cs.clone(), || Ok(p.y)).expect("y"),
        };
        assert_eq!(
            pv.add(&PointVar::identity())
                .expect("add")
                .value()
                .expect("v"),
            p
        );
        assert_eq!(
            pv.add(&neg).expect("add").value().expect("v"),
            Point::zero()
        );
        assert!(cs.is_satisfied().expect("satisfiable"));
    }
}
