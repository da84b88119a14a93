//! Multiples of elements fixed by the verifying key, from precomputed tables: points of
//! G1 (`IC_j`) and the pairing value `e(alpha, beta)`.

use std::ops::AddAssign;

use ark_bn254::{Bn254, Fr, G1Affine, G1Projective};
use ark_ec::CurveGroup;
use ark_ec::pairing::PairingOutput;
use ark_ff::{AdditiveGroup, BigInteger, PrimeField};

/// `windows[w][d] = d * 256^w * g` for one fixed element `g`: a multiplication is then
/// one addition per non-zero byte of the scalar (32 at most) instead of a double-and-add
/// over 254 bits. `E` is how an entry is stored.
///
/// Only for public scalars: which entries are read depends on the scalar.
#[derive(Clone, Debug)]
struct ByteWindows<E> {
    windows: Vec<Vec<E>>,
}

impl<E> ByteWindows<E> {
    /// Builds the table of `base`, storing each window's entries as `store` makes them.
    fn new<G: AdditiveGroup>(base: G, store: impl Fn(&[G]) -> Vec<E>) -> Self {
        let mut windows = Vec::with_capacity(32);
        let mut window_base = base;
        for _ in 0..32 {
            let mut entries = Vec::with_capacity(256);
            let mut entry = G::ZERO;
            for _ in 0..256 {
                entries.push(entry);
                entry += window_base;
            }
            windows.push(store(&entries));
            window_base = entry;
        }
        Self { windows }
    }

    fn mul<G>(&self, scalar: &Fr) -> G
    where
        G: AdditiveGroup + for<'a> AddAssign<&'a E>,
    {
        let bytes = scalar.into_bigint().to_bytes_le();
        let mut acc = G::ZERO;
        for (window, byte) in self.windows.iter().zip(bytes) {
            if byte != 0 {
                acc += &window[byte as usize];
            }
        }
        acc
    }
}

/// Multiples of a fixed point of G1, stored affine so that each step is a mixed
/// addition. 8,192 points (512 KiB) per table.
#[derive(Clone, Debug)]
pub(super) struct FixedBaseTable(ByteWindows<G1Affine>);

impl FixedBaseTable {
    pub(super) fn new(base: G1Affine) -> Self {
        Self(ByteWindows::new(
            G1Projective::from(base),
            G1Projective::normalize_batch,
        ))
    }

    /// `scalar * P`.
    pub(super) fn mul(&self, scalar: &Fr) -> G1Projective {
        self.0.mul(scalar)
    }
}

/// Powers of a fixed element of the pairing's target group (written additively, as
/// arkworks does: `+` is a multiplication in `Fq12`). `s * g` then costs 32
/// multiplications in `Fq12` where one more Miller-loop pair would cost 88 line
/// evaluations. 8,192 elements (3 MiB).
#[derive(Clone, Debug)]
pub(super) struct TargetTable(ByteWindows<PairingOutput<Bn254>>);

impl TargetTable {
    pub(super) fn new(base: PairingOutput<Bn254>) -> Self {
        Self(ByteWindows::new(base, <[_]>::to_vec))
    }

    /// `scalar * g`, that is `g^scalar` in `Fq12`.
    pub(super) fn mul(&self, scalar: &Fr) -> PairingOutput<Bn254> {
        self.0.mul(scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::AffineRepr;
    use ark_ff::Zero;
    use ark_std::UniformRand;
    use proptest::prelude::*;
    use rand::SeedableRng;

    #[test]
    fn a_table_multiplies_as_double_and_add_does() {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([5; 32]);
        let base = G1Projective::rand(&mut rng).into_affine();
        let table = FixedBaseTable::new(base);
        let edges = [
            Fr::zero(),
            Fr::from(1u64),
            Fr::from(255u64),
            Fr::from(256u64),
            -Fr::from(1u64),
        ];
        for s in edges.into_iter().chain((0..16).map(|_| Fr::rand(&mut rng))) {
            assert_eq!(table.mul(&s), base * s, "scalar {s}");
        }
    }

    #[test]
    fn a_target_table_exponentiates_as_arkworks_does() {
        use ark_bn254::G2Affine;
        use ark_ec::pairing::Pairing;
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([6; 32]);
        let g = Bn254::pairing(G1Affine::generator(), G2Affine::generator());
        let table = TargetTable::new(g);
        let edges = [
            Fr::zero(),
            Fr::from(1u64),
            Fr::from(256u64),
            -Fr::from(1u64),
        ];
        for s in edges.into_iter().chain((0..6).map(|_| Fr::rand(&mut rng))) {
            assert_eq!(table.mul(&s), g * s, "scalar {s}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn any_scalar(seed in any::<[u8; 32]>()) {
            let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
            let base = G1Affine::generator();
            let s = Fr::rand(&mut rng);
            prop_assert_eq!(table().mul(&s), base * s);
        }
    }

    fn table() -> &'static FixedBaseTable {
        static TABLE: std::sync::OnceLock<FixedBaseTable> = std::sync::OnceLock::new();
        TABLE.get_or_init(|| FixedBaseTable::new(G1Affine::generator()))
    }
}
