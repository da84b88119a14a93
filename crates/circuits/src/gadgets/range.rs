//! Range checks by bit decomposition.

use ark_ff::{BigInteger, PrimeField};
use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::prelude::*;
use ark_relations::gr1cs::SynthesisError;
use zkcredits_protocol::Fr;

use super::witness_bit;

/// Enforces `0 <= value < 2^bits` and returns the little-endian bits
/// (`bits + 1` constraints: one per bit, one for the sum).
///
/// `bits` must be below the field size, so the sum cannot wrap.
pub fn enforce_bits(value: &FpVar<Fr>, bits: usize) -> Result<Vec<Boolean<Fr>>, SynthesisError> {
    assert!(
        bits < Fr::MODULUS_BIT_SIZE as usize,
        "a range this wide could wrap"
    );
    let cs = value.cs();
    let native = value.value().ok();
    let decomposition = (0..bits)
        .map(|i| {
            witness_bit(&cs, || {
                let v = native.ok_or(SynthesisError::AssignmentMissing)?;
                Ok(v.into_bigint().get_bit(i))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Boolean::le_bits_to_fp(&decomposition)?.enforce_equal(value)?;
    Ok(decomposition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_relations::gr1cs::ConstraintSystem;

    fn satisfied(value: Fr, bits: usize) -> bool {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let v = FpVar::new_witness(cs.clone(), || Ok(value)).expect("alloc");
        enforce_bits(&v, bits).expect("synthesis");
        cs.is_satisfied().expect("satisfiable")
    }

    #[test]
    fn values_inside_the_range_pass_and_outside_fail() {
        assert!(satisfied(Fr::from(u64::MAX), 64));
        assert!(satisfied(Fr::from(0u64), 64));
        assert!(!satisfied(Fr::from(u64::MAX) + Fr::from(1u64), 64));
        assert!(!satisfied(-Fr::from(1u64), 64));
        assert!(satisfied(Fr::from(255u64), 8));
        assert!(!satisfied(Fr::from(256u64), 8));
    }
}
