//! Poseidon's permutation in the optimised form of its paper (Grassi, Khovratovich,
//! Rechberger, Roy, Schofnegger, "Poseidon", appendix B): the same function as the
//! textbook rounds, with far fewer multiplications in the partial rounds.
//!
//! A partial round adds `t` constants, raises `state[0]` to the fifth power and
//! multiplies the state by the dense `t x t` MDS matrix `M`: `t^2` products, and
//! circomlib's widths have 56 to 64 such rounds. Two rewrites, both exact:
//!
//! 1. **Constants.** The S-box of a partial round touches only `state[0]`, so the other
//!    constants of round `i` can be added after it instead; through the linear layer
//!    they become `M * (0, c_i[1..])`, added to round `i+1`'s constants. Carried
//!    forward, every partial round adds one constant, and the carry lands in the first
//!    full round after them, which adds a full vector anyway.
//! 2. **Matrices.** With `M = [[m00, r^T], [m10, B]]` and `B` invertible (every square
//!    submatrix of an MDS matrix is),
//!    `M = diag(1, B) * [[m00, r^T], [B^-1 m10, I]]`. The right factor is sparse
//!    (`2t - 1` products). The left one leaves `state[0]` alone, so it commutes with
//!    the next round's constant and S-box and merges into that round's matrix, which
//!    is factored the same way. Only the last round's `diag(1, B)` is applied in full.
//!
//! For `t = 6` that is about 1,300 products per hash instead of about 2,800, and no
//! allocation. The tests compare every width against `light-poseidon`'s textbook
//! rounds.

use ark_ff::{Field, Zero};
use light_poseidon::PoseidonParameters;

use crate::Fr;

/// The widest state circomlib's parameters cover (12 inputs plus the capacity element).
pub(super) const MAX_WIDTH: usize = 13;

/// One partial round's sparse matrix `[[row], [column, I]]`.
#[derive(Clone, Debug)]
struct Sparse {
    /// The first row, `t` entries.
    row: Vec<Fr>,
    /// The first column below the diagonal, `t - 1` entries.
    column: Vec<Fr>,
}

/// The rounds of one width, rewritten.
#[derive(Clone, Debug)]
pub(super) struct Optimized {
    width: usize,
    /// The dense MDS matrix, row-major, for the full rounds.
    mds: Vec<Fr>,
    /// Constants of the full rounds before the partial ones, `width` per round.
    first_constants: Vec<Fr>,
    /// One constant per partial round.
    partial_constants: Vec<Fr>,
    partial_matrices: Vec<Sparse>,
    /// The `diag(1, B)` left over from the last partial round: `B`, row-major.
    tail: Vec<Fr>,
    /// Constants of the full rounds after the partial ones, the carry included.
    last_constants: Vec<Fr>,
}

impl Optimized {
    /// Rewrites the textbook parameters (round constants, MDS matrix, round counts).
    ///
    /// # Panics
    /// If the parameters are inconsistent or a submatrix of the MDS matrix is
    /// singular; neither happens for circomlib's parameter sets.
    pub(super) fn new(params: &PoseidonParameters<Fr>) -> Self {
        let t = params.width;
        assert!((2..=MAX_WIDTH).contains(&t) && params.alpha == 5);
        assert_eq!(params.full_rounds % 2, 0);
        let half = params.full_rounds / 2;
        let partial = params.partial_rounds;
        assert_eq!(params.ark.len(), t * (params.full_rounds + partial));
        let mds: Vec<Fr> = params.mds.iter().flatten().copied().collect();
        assert_eq!(mds.len(), t * t);
        let constants = |round: usize| &params.ark[round * t..(round + 1) * t];

        // 1. Carry each partial round's constants, but the first, into the next round.
        let mut carry = vec![Fr::zero(); t];
        let mut partial_constants = Vec::with_capacity(partial);
        for round in half..half + partial {
            let mut effective: Vec<Fr> = constants(round)
                .iter()
                .zip(&carry)
                .map(|(c, k)| *c + k)
                .collect();
            partial_constants.push(effective[0]);
            effective[0] = Fr::zero();
            carry = mat_vec(&mds, &effective);
        }
        let mut last_constants = params.ark[(half + partial) * t..].to_vec();
        for (c, k) in last_constants.iter_mut().zip(&carry) {
            *c += k;
        }

        // 2. Factor each round's matrix, M times the factor deferred from the round
        //    before, into diag(1, B) (deferred again) and a sparse matrix.
        let n = t - 1;
        let m00 = mds[0];
        let top: Vec<Fr> = mds[1..t].to_vec();
        let left: Vec<Fr> = (1..t).map(|i| mds[i * t]).collect();
        let lower: Vec<Fr> = (1..t)
            .flat_map(|i| mds[i * t + 1..(i + 1) * t].to_vec())
            .collect();
        let mut deferred = identity(n);
        let mut partial_matrices = Vec::with_capacity(partial);
        for _ in 0..partial {
            let mut row = vec![m00];
            row.extend(vec_mat(&top, &deferred, n));
            let b = mat_mul(&lower, &deferred, n);
            let column = solve(&b, &left, n);
            partial_matrices.push(Sparse { row, column });
            deferred = b;
        }

        Self {
            width: t,
            mds,
            first_constants: params.ark[..half * t].to_vec(),
            partial_constants,
            partial_matrices,
            tail: deferred,
            last_constants,
        }
    }

    /// Permutes `state` (exactly `width` elements) and returns its first element, the
    /// hash. The last round computes only that element.
    pub(super) fn hash(&self, state: &mut [Fr]) -> Fr {
        let t = self.width;
        debug_assert_eq!(state.len(), t);
        let mut scratch = [Fr::zero(); MAX_WIDTH];
        let scratch = &mut scratch[..t];

        for constants in self.first_constants.chunks_exact(t) {
            full_round(state, constants, &self.mds, scratch);
        }
        for (constant, sparse) in self.partial_constants.iter().zip(&self.partial_matrices) {
            state[0] += constant;
            state[0] = sbox(state[0]);
            let x0 = state[0];
            state[0] = dot(&sparse.row, state);
            for (x, w) in state[1..].iter_mut().zip(&sparse.column) {
                *x += *w * x0;
            }
        }
        for (i, out) in scratch[..t - 1].iter_mut().enumerate() {
            *out = dot(&self.tail[i * (t - 1)..(i + 1) * (t - 1)], &state[1..]);
        }
        state[1..].copy_from_slice(&scratch[..t - 1]);

        let rounds = self.last_constants.len() / t;
        for constants in self.last_constants.chunks_exact(t).take(rounds - 1) {
            full_round(state, constants, &self.mds, scratch);
        }
        for (x, c) in state
            .iter_mut()
            .zip(&self.last_constants[(rounds - 1) * t..])
        {
            *x = sbox(*x + c);
        }
        dot(&self.mds[..t], state)
    }
}

fn full_round(state: &mut [Fr], constants: &[Fr], mds: &[Fr], scratch: &mut [Fr]) {
    let t = state.len();
    for (x, c) in state.iter_mut().zip(constants) {
        *x = sbox(*x + c);
    }
    for (i, out) in scratch.iter_mut().enumerate() {
        *out = dot(&mds[i * t..(i + 1) * t], state);
    }
    state.copy_from_slice(scratch);
}

#[inline(always)]
fn sbox(x: Fr) -> Fr {
    let x2 = x.square();
    x2.square() * x
}

#[inline(always)]
fn dot(a: &[Fr], b: &[Fr]) -> Fr {
    a.iter().zip(b).fold(Fr::zero(), |acc, (x, y)| acc + *x * y)
}

/// `M v` for a square row-major `M`.
fn mat_vec(m: &[Fr], v: &[Fr]) -> Vec<Fr> {
    m.chunks_exact(v.len()).map(|row| dot(row, v)).collect()
}

/// `v^T M` for an `n x n` row-major `M`.
fn vec_mat(v: &[Fr], m: &[Fr], n: usize) -> Vec<Fr> {
    (0..n)
        .map(|j| (0..n).fold(Fr::zero(), |acc, k| acc + v[k] * m[k * n + j]))
        .collect()
}

fn mat_mul(a: &[Fr], b: &[Fr], n: usize) -> Vec<Fr> {
    let mut out = vec![Fr::zero(); n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..n).fold(Fr::zero(), |acc, k| acc + a[i * n + k] * b[k * n + j]);
        }
    }
    out
}

fn identity(n: usize) -> Vec<Fr> {
    let mut m = vec![Fr::zero(); n * n];
    for i in 0..n {
        m[i * n + i] = Fr::ONE;
    }
    m
}

/// The `x` with `M x = v`, by Gauss-Jordan elimination.
///
/// # Panics
/// If `M` is singular.
fn solve(m: &[Fr], v: &[Fr], n: usize) -> Vec<Fr> {
    let mut rows: Vec<Vec<Fr>> = (0..n)
        .map(|i| {
            let mut row = m[i * n..(i + 1) * n].to_vec();
            row.push(v[i]);
            row
        })
        .collect();
    for col in 0..n {
        let pivot = (col..n)
            .find(|&r| !rows[r][col].is_zero())
            .expect("a submatrix of an MDS matrix is invertible");
        rows.swap(col, pivot);
        let inverse = rows[col][col].inverse().expect("pivot is non-zero");
        for x in rows[col].iter_mut() {
            *x *= inverse;
        }
        let pivot_row = rows[col].clone();
        for (r, row) in rows.iter_mut().enumerate() {
            if r != col && !row[col].is_zero() {
                let factor = row[col];
                for (x, p) in row.iter_mut().zip(&pivot_row) {
                    *x -= factor * p;
                }
            }
        }
    }
    rows.into_iter().map(|row| row[n]).collect()
}

#[cfg(test)]
mod tests {
    use ark_ff::UniformRand;
    use light_poseidon::{Poseidon, PoseidonHasher};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;
    use crate::poseidon::circom_parameters;

    fn textbook(inputs: &[Fr]) -> Fr {
        Poseidon::<Fr>::new_circom(inputs.len())
            .expect("arity in the table")
            .hash(inputs)
            .expect("arity matches")
    }

    fn optimized(inputs: &[Fr]) -> Fr {
        let rounds = Optimized::new(circom_parameters(inputs.len()));
        let mut state = vec![Fr::zero()];
        state.extend_from_slice(inputs);
        rounds.hash(&mut state)
    }

    #[test]
    fn every_width_matches_the_textbook_rounds() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        for n in 1..MAX_WIDTH {
            for _ in 0..4 {
                let inputs: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
                assert_eq!(optimized(&inputs), textbook(&inputs), "{n} inputs");
            }
            let zeros = vec![Fr::zero(); n];
            assert_eq!(optimized(&zeros), textbook(&zeros), "{n} zeros");
        }
    }

    #[test]
    fn solve_inverts_a_matrix_product() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let n = 5;
        let m: Vec<Fr> = (0..n * n).map(|_| Fr::rand(&mut rng)).collect();
        let x: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
        assert_eq!(solve(&m, &mat_vec(&m, &x), n), x);
    }

    proptest! {
        #[test]
        fn arity_five_matches_on_any_input(seed in any::<u64>()) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let inputs: Vec<Fr> = (0..5).map(|_| Fr::rand(&mut rng)).collect();
            prop_assert_eq!(optimized(&inputs), textbook(&inputs));
        }
    }
}
