//! Poseidon in R1CS with circomlib's parameters: the gadget twin of
//! `zkcredits_protocol::poseidon::hash`.
//!
//! Only S-boxes cost constraints (three each: x^2, x^4, x^5); round constants and the
//! MDS mixing are linear combinations. Inputs that are constants (domain tags) stay
//! constants through the first round, so a tagged hash saves those S-boxes.

use ark_r1cs_std::fields::FieldVar;
use ark_r1cs_std::fields::fp::FpVar;
use ark_relations::gr1cs::SynthesisError;
use zkcredits_protocol::Fr;
use zkcredits_protocol::poseidon::{Tag, circom_parameters};

fn sbox(x: &FpVar<Fr>) -> Result<FpVar<Fr>, SynthesisError> {
    let x2 = x.square()?;
    let x4 = x2.square()?;
    Ok(x4 * x)
}

/// Poseidon of `N` inputs (circomlib's `Poseidon(N)`).
pub fn hash<const N: usize>(inputs: [&FpVar<Fr>; N]) -> Result<FpVar<Fr>, SynthesisError> {
    let params = circom_parameters(N);
    let width = params.width;
    let mut state: Vec<FpVar<Fr>> = Vec::with_capacity(width);
    state.push(FpVar::zero());
    state.extend(inputs.iter().map(|x| (*x).clone()));
    let half = params.full_rounds / 2;
    let rounds = params.full_rounds + params.partial_rounds;
    for round in 0..rounds {
        for (i, s) in state.iter_mut().enumerate() {
            *s += params.ark[round * width + i];
        }
        if round < half || round >= half + params.partial_rounds {
            for s in state.iter_mut() {
                *s = sbox(s)?;
            }
        } else {
            state[0] = sbox(&state[0])?;
        }
        state = params
            .mds
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&state)
                    .map(|(m, s)| s * *m)
                    .fold(FpVar::zero(), |acc, term| acc + term)
            })
            .collect();
    }
    Ok(state.swap_remove(0))
}

/// A tag as a circuit constant.
pub fn tag(tag: Tag) -> FpVar<Fr> {
    FpVar::constant(tag.to_field())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_r1cs_std::prelude::*;
    use ark_relations::gr1cs::ConstraintSystem;
    use proptest::prelude::*;
    use zkcredits_protocol::poseidon;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn the_gadget_equals_the_native_hash(a in any::<u64>(), b in any::<u64>(), c in any::<u64>()) {
            let cs = ConstraintSystem::<Fr>::new_ref();
            let (a, b, c) = (Fr::from(a), Fr::from(b) * Fr::from(u64::MAX), -Fr::from(c));
            let va = FpVar::new_witness(cs.clone(), || Ok(a)).expect("alloc");
            let vb = FpVar::new_witness(cs.clone(), || Ok(b)).expect("alloc");
            let vc = FpVar::new_witness(cs.clone(), || Ok(c)).expect("alloc");
            let h2 = hash([&va, &vb]).expect("hash");
            let h3 = hash([&tag(Tag::Slope), &va, &vc]).expect("hash");
            let h6 = hash([&va, &vb, &vc, &va, &vb, &vc]).expect("hash");
            prop_assert_eq!(h2.value().expect("value"), poseidon::hash([a, b]));
            prop_assert_eq!(h3.value().expect("value"), poseidon::hash([Tag::Slope.to_field(), a, c]));
            prop_assert_eq!(h6.value().expect("value"), poseidon::hash([a, b, c, a, b, c]));
            prop_assert!(cs.is_satisfied().expect("satisfiable"));
        }
    }

    #[test]
    fn a_two_input_hash_costs_three_constraints_per_s_box() {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let a = FpVar::new_witness(cs.clone(), || Ok(Fr::from(1u64))).expect("alloc");
        let b = FpVar::new_witness(cs.clone(), || Ok(Fr::from(2u64))).expect("alloc");
        let _ = hash([&a, &b]).expect("hash");
        // 8 full rounds of 3 S-boxes and 57 partial rounds of 1, 3 constraints each,
        // less the first S-box of the capacity element, which is the constant 0.
        assert_eq!(cs.num_constraints(), 3 * (8 * 3 + 57) - 3);
    }
}
