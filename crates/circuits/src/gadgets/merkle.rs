//! LeanIMT membership in R1CS: the gadget twin of `MerklePath::root_from`.
//!
//! The circuit has a fixed number of levels. At each level the prover supplies the
//! sibling, whether the node is a right child, and whether it has a sibling at all; a
//! node without a sibling is carried up unchanged (that is how LeanIMT grows without
//! zero padding). Levels above the tree's depth simply have no sibling.

use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::prelude::*;
use ark_relations::gr1cs::SynthesisError;
use zkcredits_protocol::Fr;

use super::poseidon;

/// One level of a path inside the circuit.
#[derive(Clone, Debug)]
pub struct LevelVar {
    /// The sibling (any value where there is none).
    pub sibling: FpVar<Fr>,
    /// Whether the path's node is the right child.
    pub is_right: Boolean<Fr>,
    /// Whether there is a sibling to hash with.
    pub has_sibling: Boolean<Fr>,
}

/// The root reached from `leaf` along `levels` (per level: 243 constraints for the
/// hash, 2 selections).
pub fn root(leaf: &FpVar<Fr>, levels: &[LevelVar]) -> Result<FpVar<Fr>, SynthesisError> {
    let mut node = leaf.clone();
    for level in levels {
        let left = level.is_right.select(&level.sibling, &node)?;
        let right = &node + &level.sibling - &left;
        let parent = poseidon::hash([&left, &right])?;
        node = level.has_sibling.select(&parent, &node)?;
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gadgets::{witness, witness_bit};
    use crate::request::path_levels;
    use ark_r1cs_std::fields::fp::FpVar;
    use ark_relations::gr1cs::ConstraintSystem;
    use proptest::prelude::*;
    use zkcredits_protocol::merkle::{LeanImt, Root};

    /// The root the gadget computes, as the native tree's type so that they compare.
    fn circuit_root(leaf: Fr, path: &zkcredits_protocol::merkle::MerklePath) -> (Root, bool) {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let leaf = FpVar::new_witness(cs.clone(), || Ok(leaf)).expect("leaf");
        let levels: Vec<LevelVar> = path_levels(path)
            .iter()
            .map(|l| LevelVar {
                sibling: witness(&cs, || Ok(l.sibling)).expect("sibling"),
                is_right: witness_bit(&cs, || Ok(l.is_right)).expect("bit"),
                has_sibling: witness_bit(&cs, || Ok(l.has_sibling)).expect("bit"),
            })
            .collect();
        let root = root(&leaf, &levels).expect("root").value().expect("value");
        (
            Root::from_field(root),
            cs.is_satisfied().expect("satisfiable"),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn the_circuit_and_the_native_tree_agree_on_roots_and_paths(
            n in 1u64..300, pick in any::<u64>(), salt in any::<u64>(),
        ) {
            let mut tree = LeanImt::new();
            for i in 0..n {
                tree.push(Fr::from(salt) + Fr::from(i + 1)).expect("push");
            }
            let index = pick % n;
            let leaf = tree.leaf(index).expect("leaf");
            let path = tree.path(index).expect("path");
            let (root, satisfied) = circuit_root(leaf, &path);
            prop_assert!(satisfied);
            prop_assert_eq!(root, tree.root());
            prop_assert_eq!(root, path.root_from(leaf));
            // Another leaf at the same position does not reach the root.
            let (other, _) = circuit_root(leaf + Fr::from(1u64), &path);
            prop_assert_ne!(other, tree.root());
        }
    }
}
