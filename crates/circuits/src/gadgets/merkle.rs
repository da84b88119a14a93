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
