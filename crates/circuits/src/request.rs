//! The request circuit (`docs/PROTOCOL.md §4`).
//!
//! Public inputs, in this order: `root, x, y, N, T_next, C_max, P_max, A.x, A.y`.
//! Each rule of the statement is synthesised inside a named namespace (`membership`,
//! `state`, `signature`, `ranges`, `solvency`, `nullifier`, `share`, `next_state`), so a
//! test that breaks one rule can check that exactly that rule is unsatisfied.

use ark_r1cs_std::fields::FieldVar;
use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::prelude::*;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use ark_relations::ns;
use zkcredits_protocol::Fr;
use zkcredits_protocol::babyjubjub::Point;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::eddsa::PublicKey;
use zkcredits_protocol::merkle::{MerklePath, Root};
use zkcredits_protocol::note::NoteSecret;
use zkcredits_protocol::poseidon::Tag;
use zkcredits_protocol::rln::{Nullifier, Ticket};
use zkcredits_protocol::state::{Limits, NoteState};

use crate::error::CircuitError;
use crate::gadgets::babyjubjub::PointVar;
use crate::gadgets::merkle::{self, LevelVar};
use crate::gadgets::poseidon::{hash, tag};
use crate::gadgets::{eddsa, range, witness, witness_bit};
use crate::last_receipt::LastReceiptWitness;

/// The number of tree levels the circuit proves: trees of up to 2^20 notes.
pub const TREE_LEVELS: usize = 20;

/// The request statement's public inputs (`docs/PROTOCOL.md §4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestPublicInputs {
    /// The tree root the note is proven under.
    pub root: Root,
    /// The request binding.
    pub x: Fr,
    /// The share `y = k + a x`.
    pub y: Fr,
    /// The ticket's nullifier `N`.
    pub nullifier: Nullifier,
    /// `T_next`, the commitment to the next state.
    pub next_commitment: Fr,
    /// The deployment's `C_max`.
    pub c_max: Credits,
    /// The deployment's `P_max`.
    pub p_max: Credits,
    /// The server key `A` that signs receipts.
    pub server_key: Point,
}

impl RequestPublicInputs {
    /// The field elements in the circuit's order.
    pub fn to_field_elements(&self) -> Vec<Fr> {
        vec![
            self.root.field(),
            self.x,
            self.y,
            self.nullifier.field(),
            self.next_commitment,
            self.c_max.to_field(),
            self.p_max.to_field(),
            self.server_key.x,
            self.server_key.y,
        ]
    }
}

/// One level of the membership path as the circuit takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PathLevel {
    /// The sibling, or zero where there is none.
    pub sibling: Fr,
    /// Whether the path's node is a right child.
    pub is_right: bool,
    /// Whether there is a sibling at this level.
    pub has_sibling: bool,
}

/// A native path as the circuit's fixed [`TREE_LEVELS`] levels: levels above the
/// tree's depth have no sibling.
///
/// # Panics
/// If the path has more than [`TREE_LEVELS`] levels (callers check first).
pub fn path_levels(path: &MerklePath) -> Vec<PathLevel> {
    assert!(
        path.siblings.len() <= TREE_LEVELS,
        "path deeper than the circuit"
    );
    let mut levels: Vec<PathLevel> = path
        .siblings
        .iter()
        .enumerate()
        .map(|(level, sibling)| PathLevel {
            sibling: sibling.unwrap_or_default(),
            is_right: sibling.is_some() && path.is_right(level),
            has_sibling: sibling.is_some(),
        })
        .collect();
    levels.resize(TREE_LEVELS, PathLevel::default());
    levels
}

/// The private witness. Fields are raw field elements so that soundness tests can put
/// any value in any wire; [`RequestCircuit::new`] fills them from typed values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestWitness {
    /// `k`
    pub k: Fr,
    /// `D`
    pub deposit: Fr,
    /// `E`
    pub expiry: Fr,
    /// The membership path, exactly [`TREE_LEVELS`] levels.
    pub path: Vec<PathLevel>,
    /// `i`
    pub index: Fr,
    /// `R_prev`
    pub refunds_prev: Fr,
    /// `P_prev`
    pub penalties_prev: Fr,
    /// `rho` of the last state.
    pub rho: Fr,
    /// `r` of the last receipt.
    pub refund: Fr,
    /// `p` of the last receipt.
    pub penalty: Fr,
    /// The last receipt's signature nonce `R8` (the identity when `i = 0`).
    pub sig_r8: Point,
    /// The last receipt's signature scalar `S`, as a field element (0 when `i = 0`).
    pub sig_s: Fr,
    /// `rho_next`
    pub rho_next: Fr,
}

/// The request circuit: public inputs and witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestCircuit {
    /// Public inputs.
    pub public: RequestPublicInputs,
    /// Private witness.
    pub witness: RequestWitness,
}

/// What the client knows when it makes a request.
#[derive(Clone, Copy, Debug)]
pub struct RequestInputs<'a> {
    /// The note's secret.
    pub secret: &'a NoteSecret,
    /// `D`, credit units deposited.
    pub deposit: Credits,
    /// `E`, the note's expiry epoch.
    pub expiry_epoch: u64,
    /// The note's path in the tree whose root is `root`.
    pub path: &'a MerklePath,
    /// The root the path leads to.
    pub root: Root,
    /// The note's current state.
    pub state: &'a NoteState,
    /// The request binding.
    pub x: Fr,
    /// Fresh randomness for `T_next`.
    pub rho_next: Fr,
    /// The deployment's limits.
    pub limits: Limits,
    /// The gateway's receipt key.
    pub server_key: PublicKey,
}

impl RequestCircuit {
    /// Builds the circuit for a request, computing the public inputs natively. Refuses
    /// what could not be proven (a path too deep, an insolvent note) with a clear error
    /// before any proving work.
    pub fn new(inputs: RequestInputs<'_>) -> Result<Self, CircuitError> {
        if !inputs.state.can_pay(inputs.deposit, inputs.limits) {
            return Err(CircuitError::Insolvent);
        }
        Self::new_unchecked(inputs)
    }

    /// Like [`RequestCircuit::new`] but without the solvency check, so that tests can
    /// build the witness of a false statement and watch the circuit refuse it.
    #[doc(hidden)]
    pub fn new_unchecked(inputs: RequestInputs<'_>) -> Result<Self, CircuitError> {
        let k = inputs.secret.expose();
        let state = inputs.state;
        if inputs.path.siblings.len() > TREE_LEVELS {
            return Err(CircuitError::TreeTooDeep {
                depth: inputs.path.siblings.len(),
                max: TREE_LEVELS,
            });
        }
        let ticket = Ticket::new(k, state.index);
        let share = ticket.share(k, inputs.x);
        let next_commitment = state.next_commitment(k, inputs.rho_next)?;
        let path = path_levels(inputs.path);
        let (refunds_prev, penalties_prev) = state.previous_totals();
        let last = LastReceiptWitness::of(state);
        Ok(Self {
            public: RequestPublicInputs {
                root: inputs.root,
                x: inputs.x,
                y: share.y,
                nullifier: ticket.nullifier,
                next_commitment,
                c_max: inputs.limits.c_max,
                p_max: inputs.limits.p_max,
                server_key: inputs.server_key.point(),
            },
            witness: RequestWitness {
                k,
                deposit: inputs.deposit.to_field(),
                expiry: Fr::from(inputs.expiry_epoch),
                path,
                index: Fr::from(state.index),
                refunds_prev: refunds_prev.to_field(),
                penalties_prev: penalties_prev.to_field(),
                rho: last.rho,
                refund: last.refund,
                penalty: last.penalty,
                sig_r8: last.sig_r8,
                sig_s: last.sig_s,
                rho_next: inputs.rho_next,
            },
        })
    }

    /// A circuit of the right shape with placeholder values, for key generation and for
    /// extracting the constraint matrices.
    pub fn blank() -> Self {
        Self {
            public: RequestPublicInputs {
                root: Root::default(),
                x: Fr::from(0u64),
                y: Fr::from(0u64),
                nullifier: Nullifier::from_field(Fr::from(0u64)),
                next_commitment: Fr::from(0u64),
                c_max: Credits::ZERO,
                p_max: Credits::ZERO,
                server_key: zkcredits_protocol::babyjubjub::base8(),
            },
            witness: RequestWitness {
                k: Fr::from(0u64),
                deposit: Fr::from(0u64),
                expiry: Fr::from(0u64),
                path: vec![PathLevel::default(); TREE_LEVELS],
                index: Fr::from(0u64),
                refunds_prev: Fr::from(0u64),
                penalties_prev: Fr::from(0u64),
                rho: Fr::from(0u64),
                refund: Fr::from(0u64),
                penalty: Fr::from(0u64),
                sig_r8: Point::zero(),
                sig_s: Fr::from(0u64),
                rho_next: Fr::from(0u64),
            },
        }
    }
}

/// Where the per-note witness sits in the assignment: what a prover may precompute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessLayout {
    /// Witness-variable indices (counted from the first witness variable) of the values
    /// fixed by the note and the root alone: `k, D, E`, the path and every value of the
    /// membership proof. They are the same for every request of a note under one root.
    pub note_fixed: std::ops::Range<usize>,
}

impl RequestCircuit {
    /// Synthesises the circuit and reports the witness layout.
    pub fn synthesize(self, cs: ConstraintSystemRef<Fr>) -> Result<WitnessLayout, SynthesisError> {
        let p = self.public;
        let w = self.witness;
        if w.path.len() != TREE_LEVELS {
            return Err(SynthesisError::Unsatisfiable);
        }
        let input = |v: Fr| FpVar::new_input(cs.clone(), || Ok(v));
        let root = input(p.root.field())?;
        let x = input(p.x)?;
        let y = input(p.y)?;
        let nullifier = input(p.nullifier.field())?;
        let next_commitment = input(p.next_commitment)?;
        let c_max = input(p.c_max.to_field())?;
        let p_max = input(p.p_max.to_field())?;
        let server_key = PointVar {
            x: input(p.server_key.x)?,
            y: input(p.server_key.y)?,
        };

        // Values fixed by the note and the root come first and stay contiguous, so a
        // prover can precompute their share of the proof (see `WitnessLayout`).
        let fixed_start = cs.num_witness_variables();
        let k = witness(&cs, || Ok(w.k))?;
        let deposit = witness(&cs, || Ok(w.deposit))?;
        let expiry = witness(&cs, || Ok(w.expiry))?;

        // 1. Membership: H(LEAF, H(ID, k), D, E) is a leaf under root.
        {
            let _ns = ns!(cs, "membership");
            let levels = w
                .path
                .iter()
                .map(|level| {
                    Ok(LevelVar {
                        sibling: witness(&cs, || Ok(level.sibling))?,
                        is_right: witness_bit(&cs, || Ok(level.is_right))?,
                        has_sibling: witness_bit(&cs, || Ok(level.has_sibling))?,
                    })
                })
                .collect::<Result<Vec<_>, SynthesisError>>()?;
            let id = hash([&tag(Tag::Id), &k])?;
            let leaf = hash([&tag(Tag::Leaf), &id, &deposit, &expiry])?;
            merkle::root(&leaf, &levels)?.enforce_equal(&root)?;
        }

        let note_fixed = fixed_start..cs.num_witness_variables();

        let index = witness(&cs, || Ok(w.index))?;
        let refunds_prev = witness(&cs, || Ok(w.refunds_prev))?;
        let penalties_prev = witness(&cs, || Ok(w.penalties_prev))?;
        let rho = witness(&cs, || Ok(w.rho))?;
        let refund = witness(&cs, || Ok(w.refund))?;
        let penalty = witness(&cs, || Ok(w.penalty))?;
        let sig_r8 = PointVar {
            x: witness(&cs, || Ok(w.sig_r8.x))?,
            y: witness(&cs, || Ok(w.sig_r8.y))?,
        };
        let sig_s = witness(&cs, || Ok(w.sig_s))?;
        let rho_next = witness(&cs, || Ok(w.rho_next))?;

        // 2. State: R = R_prev + r, P = P_prev + p; at i = 0 everything is zero and no
        //    signature is checked; otherwise the last receipt is signed by the server key.
        let refunds = &refunds_prev + &refund;
        let penalties = &penalties_prev + &penalty;
        let first = {
            let _ns = ns!(cs, "state");
            let first = index.is_zero()?;
            for v in [&refunds_prev, &penalties_prev, &refund, &penalty] {
                v.conditional_enforce_equal(&FpVar::zero(), &first)?;
            }
            first
        };
        {
            let _ns = ns!(cs, "signature");
            let commitment = hash([
                &tag(Tag::State),
                &k,
                &index,
                &refunds_prev,
                &penalties_prev,
                &rho,
            ])?;
            let message = hash([&tag(Tag::Receipt), &commitment, &refund, &penalty])?;
            eddsa::verify(&!&first, &server_key, &sig_r8, &sig_s, &message)?;
        }

        // 3. Ranges: i < 2^32; D, R, P < 2^64.
        {
            let _ns = ns!(cs, "ranges");
            range::enforce_bits(&index, 32)?;
            for v in [&deposit, &refunds, &penalties] {
                range::enforce_bits(v, 64)?;
            }
        }

        // 4. Solvency: (i + 1) C_max + P + P_max <= D + R. Every term is below 2^97, so
        //    the slack is below 2^65 exactly when it is not negative.
        {
            let _ns = ns!(cs, "solvency");
            let spend = (&index + Fr::from(1u64)) * &c_max + &penalties + &p_max;
            let slack = &deposit + &refunds - spend;
            range::enforce_bits(&slack, 65)?;
        }

        // 5. RLN: a = H(SLOPE, k, i), N = H(NULLIFIER, a), y = k + a x.
        let slope = {
            let _ns = ns!(cs, "nullifier");
            let slope = hash([&tag(Tag::Slope), &k, &index])?;
            hash([&tag(Tag::Nullifier), &slope])?.enforce_equal(&nullifier)?;
            slope
        };
        {
            let _ns = ns!(cs, "share");
            slope.mul_equals(&x, &(&y - &k))?;
        }

        // 6. Next state: T_next = H(STATE, k, i + 1, R, P, rho_next).
        {
            let _ns = ns!(cs, "next_state");
            let next_index = &index + Fr::from(1u64);
            hash([
                &tag(Tag::State),
                &k,
                &next_index,
                &refunds,
                &penalties,
                &rho_next,
            ])?
            .enforce_equal(&next_commitment)?;
        }
        Ok(WitnessLayout { note_fixed })
    }
}

impl ConstraintSynthesizer<Fr> for RequestCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        self.synthesize(cs).map(|_| ())
    }
}
