//! Multiples of elements fixed by the verifying key, from precomputed tables: points of
//! G1 (`IC_j`) and the pairing value `e(alpha, beta)`.

use ark_bn254::{Bn254, Fr, G1Affine, G1Projective};
use ark_ec::pairing::PairingOutput;
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::{BigInteger, PrimeField, Zero};

/// `windows[w][d] = d * 256^w * P` for one fixed point `P`: a multiplication is then one
/// mixed addition per non-zero byte of the scalar (32 at most) instead of a
/// double-and-add over 254 bits. 8,192 points (512 KiB) per table.
///
/// Only for public scalars: which entries are read depends on the scalar.
#[derive(Clone, Debug)]
pub(super) struct FixedBaseTable {
    windows: Vec<Vec<G1Affine>>,
}

impl FixedBaseTable {
    pub(super) fn new(base: G1Affine) -> Self {
        let mut windows = Vec::with_capacity(32);
        let mut window_base = base.into_group();
        for _ in 0..32 {
            let mut entries = Vec::with_capacity(256);
            let mut entry = G1Projective::zero();
            for _ in 0..256 {
                entries.push(entry);
                entry += window_base;
            }
            windows.push(G1Projective::normalize_batch(&entries));
            window_base = entry;
        }
        Self { windows }
    }

    /// `scalar * P`.
    pub(super) fn mul(&self, scalar: &Fr) -> G1Projective {
        let bytes = scalar.into_bigint().to_bytes_le();
        let mut acc = G1Projective::zero();
        for (window, byte) in self.windows.iter().zip(bytes) {
            if byte != 0 {
                acc += window[byte as usize];
            }
        }
        acc
    }
}

/// The same byte windows for one fixed element `g` of the pairing's target group
/// (written additively, as arkworks does: `+` is a multiplication in `Fq12`). `s * g`
/// then costs 32 multiplications in `Fq12` where one more Miller-loop pair would cost 88
/// line evaluations. 8,192 elements (3 MiB).
#[derive(Clone, Debug)]
pub(super) struct TargetTable {
    windows: Vec<Vec<PairingOutput<Bn254>>>,
}

impl TargetTable {
    pub(super) fn new(base: PairingOutput<Bn254>) -> Self {
        let mut windows = Vec::with_capacity(32);
        let mut window_base = base;
        for _ in 0..32 {
            let mut entries = Vec::with_capacity(256);
            let mut entry = PairingOutput::zero();
            for _ in 0..256 {
                entries.push(entry);
                entry += window_base;
            }
            windows.push(entries);
            window_base = entry;
        }
        Self { windows }
    }

    /// `scalar * g`, that is `g^scalar` in `Fq12`.
    pub(super) fn mul(&self, scalar: &Fr) -> PairingOutput<Bn254> {
        let bytes = scalar.into_bigint().to_bytes_le();
        let mut acc = PairingOutput::zero();
        for (window, byte) in self.windows.iter().zip(bytes) {
            if byte != 0 {
                acc += window[byte as usize];
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
