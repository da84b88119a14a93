//! R1CS gadgets. Each one sits beside its native twin in `zkcredits-protocol` and is
//! tested against it.

pub mod babyjubjub;
pub mod eddsa;
pub mod merkle;
pub mod poseidon;
pub mod range;

use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::prelude::*;
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};
use zkcredits_protocol::Fr;

/// Allocates a private witness whose value is computed lazily (never evaluated while
/// generating keys, when no values exist).
pub(crate) fn witness(
    cs: &ConstraintSystemRef<Fr>,
    value: impl FnOnce() -> Result<Fr, SynthesisError>,
) -> Result<FpVar<Fr>, SynthesisError> {
    FpVar::new_witness(cs.clone(), value)
}

/// Allocates a private bit.
pub(crate) fn witness_bit(
    cs: &ConstraintSystemRef<Fr>,
    value: impl FnOnce() -> Result<bool, SynthesisError>,
) -> Result<Boolean<Fr>, SynthesisError> {
    Boolean::new_witness(cs.clone(), value)
}
