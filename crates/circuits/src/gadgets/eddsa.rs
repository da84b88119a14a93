//! EdDSA-Poseidon verification (circomlib's flavour) in R1CS, with an enable flag: the
//! gadget twin of `zkcredits_protocol::eddsa::PublicKey::verify`.
//!
//! Checks `S < l` (always) and, when `enabled`, that `R8` is on the curve (namespace
//! `r8_on_curve`) and `S * Base8 == R8 + hm * (8 A)` with `hm = H(R8.x, R8.y, A.x, A.y,
//! msg)` decomposed strictly (its canonical bits).

use ark_ff::PrimeField;
use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::prelude::*;
use ark_relations::gr1cs::SynthesisError;
use ark_relations::ns;
use zkcredits_protocol::Fr;
use zkcredits_protocol::babyjubjub::{self, COEFF_A, COEFF_D, Scalar};

use super::babyjubjub::{PointVar, mul_fixed, mul_variable};
use super::{poseidon, range};

/// Verifies `(r8, s)` on `msg` under `public_key` when `enabled` is true.
pub fn verify(
    enabled: &Boolean<Fr>,
    public_key: &PointVar,
    r8: &PointVar,
    s: &FpVar<Fr>,
    msg: &FpVar<Fr>,
) -> Result<(), SynthesisError> {
    // R8 on the curve: a x^2 + y^2 = 1 + d x^2 y^2 (4 constraints). The equation below
    // could not hold for an off-curve R8 anyway (hm hashes R8, so R8 cannot be solved for),
    // but the addition law is a group law only on the curve: this keeps the argument
    // about the curve alone. Conditional, like the equation: ticket 0 has no signature.
    {
        let cs = r8.x.cs().or(r8.y.cs());
        let _ns = ns!(cs, "r8_on_curve");
        let x2 = r8.x.square()?;
        let y2 = r8.y.square()?;
        let lhs = &x2 * COEFF_A + &y2;
        let rhs = FpVar::one() + (&x2 * &y2) * COEFF_D;
        lhs.conditional_enforce_equal(&rhs, enabled)?;
    }

    // S < l: 253 bits, then compare with l - 1.
    let s_bits = range::enforce_bits(s, 253)?;
    let l_minus_one = (-Scalar::from(1u64)).into_bigint();
    Boolean::enforce_smaller_or_equal_than_le(&s_bits, l_minus_one)?;

    let hm = poseidon::hash([&r8.x, &r8.y, &public_key.x, &public_key.y, msg])?;
    let hm_bits = hm.to_bits_le()?;

    let left = mul_fixed(babyjubjub::base8(), &s_bits)?;
    let eight_a = public_key.double()?.double()?.double()?;
    let right = r8.add(&mul_variable(&eight_a, &hm_bits)?)?;
    left.x.conditional_enforce_equal(&right.x, enabled)?;
    left.y.conditional_enforce_equal(&right.y, enabled)?;
    Ok(())
}
