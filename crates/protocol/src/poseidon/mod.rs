//! Poseidon over BN254 with circomlib's parameters, and the protocol's domain tags
//! (`docs/PROTOCOL.md §2`).
//!
//! The parameters are `light-poseidon`'s (x^5 S-box, width t = inputs + 1,
//! `state[0] = 0`), which match circomlib's `Poseidon(n)` template, circomlibjs and
//! `poseidon-solidity`. Native hashing runs them in the optimised form of `optimized.rs`
//! (about twice as fast as `light-poseidon`'s textbook rounds, which its tests compare
//! against); the same round constants and MDS matrix feed our R1CS gadget through
//! [`circom_parameters`], so native and in-circuit hashes cannot drift apart.

mod optimized;

use std::sync::OnceLock;

use ark_ff::Zero;
use light_poseidon::PoseidonParameters;

use optimized::Optimized;

use crate::Fr;

/// The largest number of inputs circomlib's parameter set covers.
pub const MAX_INPUTS: usize = 12;

/// Domain tags: the first input of every tagged hash, so that hashes made for one
/// purpose can never be mistaken for another (`docs/PROTOCOL.md §2`).
///
/// Merkle nodes are the only untagged hash: arity 2 is used for nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Tag {
    /// `ID = H(ID, k)`
    Id = 1,
    /// `leaf = H(LEAF, ID, D, E)`
    Leaf = 2,
    /// `T = H(STATE, k, i, R, P, rho)`
    State = 3,
    /// `m = H(RECEIPT, T, r, p)`
    Receipt = 4,
    /// `a = H(SLOPE, k, i)`
    Slope = 5,
    /// `N = H(NULLIFIER, a)`
    Nullifier = 6,
    /// `NC = H(CLOSE, k)`
    Close = 7,
    /// `k_j = H(NOTE, seed, j)`
    Note = 8,
}

impl Tag {
    /// The tag as the field element that is hashed.
    pub fn to_field(self) -> Fr {
        Fr::from(self as u64)
    }
}

/// Poseidon of `N` field elements (circomlib's `Poseidon(N)`).
pub fn hash<const N: usize>(inputs: [Fr; N]) -> Fr {
    const {
        assert!(
            N >= 1 && N <= MAX_INPUTS,
            "circomlib Poseidon takes 1 to 12 inputs"
        )
    };
    static ROUNDS: [OnceLock<Optimized>; MAX_INPUTS] = [const { OnceLock::new() }; MAX_INPUTS];
    let rounds = ROUNDS[N - 1].get_or_init(|| Optimized::new(circom_parameters(N)));
    let mut state = [Fr::zero(); optimized::MAX_WIDTH];
    state[1..=N].copy_from_slice(&inputs);
    rounds.hash(&mut state[..=N])
}

/// A Merkle node: `H(left, right)`, untagged.
pub fn hash_node(left: Fr, right: Fr) -> Fr {
    hash([left, right])
}

/// circomlib's parameters (round constants, MDS matrix, round counts) for `n_inputs`
/// inputs, built once per width.
///
/// # Panics
/// If `n_inputs` is 0 or more than [`MAX_INPUTS`]; callers use fixed arities.
pub fn circom_parameters(n_inputs: usize) -> &'static PoseidonParameters<Fr> {
    static TABLE: OnceLock<Vec<PoseidonParameters<Fr>>> = OnceLock::new();
    assert!(
        (1..=MAX_INPUTS).contains(&n_inputs),
        "unsupported Poseidon arity {n_inputs}"
    );
    let table = TABLE.get_or_init(|| {
        (1..=MAX_INPUTS)
            .map(|n| {
                // Cannot fail: widths 2..=13 are exactly the ones light-poseidon ships.
                light_poseidon::parameters::bn254_x5::get_poseidon_parameters::<Fr>(n as u8 + 1)
                    .expect("width within light-poseidon's table")
            })
            .collect()
    });
    &table[n_inputs - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn poseidon_of_one_and_two_is_circomlibs_known_value() {
        // The value every circomlib port documents for Poseidon([1, 2]).
        let expected = Fr::from_str(
            "7853200120776062878684798364095072458815029376092732009249414926327459813530",
        )
        .expect("decimal");
        assert_eq!(hash([Fr::from(1u64), Fr::from(2u64)]), expected);
    }

    #[test]
    fn tags_are_the_numbers_of_the_spec() {
        let tags = [
            Tag::Id,
            Tag::Leaf,
            Tag::State,
            Tag::Receipt,
            Tag::Slope,
            Tag::Nullifier,
            Tag::Close,
            Tag::Note,
        ];
        for (i, tag) in tags.iter().enumerate() {
            assert_eq!(tag.to_field(), Fr::from(i as u64 + 1));
        }
    }
}
