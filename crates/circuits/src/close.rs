//! The close circuit (`docs/PROTOCOL.md §6`): withdraw what is left of a note and settle
//! with the provider.
//!
//! Public inputs, in this order:
//! `root, NC, N_j, x_w, y_w, D, E, U, B, m, C_max, P_max, A.x, A.y`.
//!
//! For a note with state `(n, R, P)` and the flag `m` (`m = 1`: the receipt of ticket `n`
//! never arrived), with `j = n + m`, the circuit proves, each rule in a named namespace:
//!
//! - `membership`: `H(LEAF, H(ID, k), D, E)` is a leaf under `root` (with the public
//!   `D, E`, so the pool learns the note's amount and epoch from the proof);
//! - `state` and `signature`: as in the request circuit, at index `n`;
//! - `ranges`: `n < 2^32`; `D, R, P < 2^64`;
//! - `flag`: `m` is 0 or 1;
//! - `close_nullifier`: `NC = H(CLOSE, k)`;
//! - `nullifier`: `a = H(SLOPE, k, j)`, `N_j = H(NULLIFIER, a)`;
//! - `share`: `y_w = k + a x_w`;
//! - `amounts`: `U = D + R - P - j C_max - m P_max` with `0 <= U < 2^64`, and
//!   `B = P + m P_max`.

use ark_r1cs_std::fields::FieldVar;
use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::prelude::*;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use ark_relations::ns;
use zkcredits_protocol::Fr;
use zkcredits_protocol::babyjubjub::Point;
use zkcredits_protocol::close::{CloseSplit, close_share};
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::eddsa::PublicKey;
use zkcredits_protocol::merkle::{MerklePath, Root};
use zkcredits_protocol::note::NoteSecret;
use zkcredits_protocol::poseidon::Tag;
use zkcredits_protocol::rln::Nullifier;
use zkcredits_protocol::state::{Limits, NoteState};

use crate::error::CircuitError;
use crate::gadgets::babyjubjub::PointVar;
use crate::gadgets::merkle::{self, LevelVar};
use crate::gadgets::poseidon::{hash, tag};
use crate::gadgets::{eddsa, range, witness, witness_bit};
use crate::last_receipt::LastReceiptWitness;
use crate::request::{PathLevel, TREE_LEVELS, WitnessLayout, path_levels};

/// The close statement's public inputs (`docs/PROTOCOL.md §6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClosePublicInputs {
    /// The committed tree root the note is proven under.
    pub root: Root,
    /// `NC = H(CLOSE, k)`: one close per note.
    pub close_nullifier: Fr,
    /// `N_j`, the nullifier of the ticket the close spends.
    pub nullifier: Nullifier,
    /// `x_w`, binding the payout address, the chain and the pool.
    pub x_w: Fr,
    /// `y_w = k + a x_w`.
    pub y_w: Fr,
    /// `D`, credit units deposited.
    pub deposit: Credits,
    /// `E`, the note's expiry epoch.
    pub expiry_epoch: u64,
    /// `U`, credit units to the payout address.
    pub payout: Credits,
    /// `B`, credit units burned.
    pub burn: Credits,
    /// `m`: 1 when the receipt of ticket `n` was lost, else 0 (a field element so that
    /// tests can try other values; the pool passes a bool).
    pub m: Fr,
    /// The deployment's `C_max`.
    pub c_max: Credits,
    /// The deployment's `P_max`.
    pub p_max: Credits,
    /// The server key `A` that signs receipts.
    pub server_key: Point,
}

impl ClosePublicInputs {
    /// Whether `m` is 1.
    pub fn lost_last_receipt(&self) -> bool {
        self.m == Fr::from(1u64)
    }

    /// The field elements in the circuit's order.
    pub fn to_field_elements(&self) -> Vec<Fr> {
        vec![
            self.root.field(),
            self.close_nullifier,
            self.nullifier.field(),
            self.x_w,
            self.y_w,
            self.deposit.to_field(),
            Fr::from(self.expiry_epoch),
            self.payout.to_field(),
            self.burn.to_field(),
            self.m,
            self.c_max.to_field(),
            self.p_max.to_field(),
            self.server_key.x,
            self.server_key.y,
        ]
    }
}

/// The private witness, as raw field elements so that soundness tests can put any value
/// in any wire. The public `D`, `E`, `U`, `B` and `m` are public inputs only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseWitness {
    /// `k`
    pub k: Fr,
    /// The membership path, exactly [`TREE_LEVELS`] levels.
    pub path: Vec<PathLevel>,
    /// `n`, the state's next ticket index.
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
    /// The last receipt's signature nonce `R8` (the identity when `n = 0`).
    pub sig_r8: Point,
    /// The last receipt's signature scalar `S` (0 when `n = 0`).
    pub sig_s: Fr,
}

/// The close circuit: public inputs and witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseCircuit {
    /// Public inputs.
    pub public: ClosePublicInputs,
    /// Private witness.
    pub witness: CloseWitness,
}

/// What the client knows when it closes a note.
#[derive(Clone, Copy, Debug)]
pub struct CloseInputs<'a> {
    /// The note's secret.
    pub secret: &'a NoteSecret,
    /// `D`, credit units deposited.
    pub deposit: Credits,
    /// `E`, the note's expiry epoch.
    pub expiry_epoch: u64,
    /// The note's path in the tree whose root is `root`.
    pub path: &'a MerklePath,
    /// A root the pool committed, that the path leads to.
    pub root: Root,
    /// The note's current state.
    pub state: &'a NoteState,
    /// `m`: the receipt of ticket `n` never arrived.
    pub lost_last_receipt: bool,
    /// `x_w` (`protocol::request::withdrawal_x` of the chain, the pool, the payout and the
    /// relay fee with its recipient).
    pub x_w: Fr,
    /// The deployment's limits.
    pub limits: Limits,
    /// The gateway's receipt key.
    pub server_key: PublicKey,
}

impl CloseCircuit {
    /// Builds the circuit for a close, computing the public inputs natively. Refuses an
    /// overdrawn state or a path too deep before any proving work.
    pub fn new(inputs: CloseInputs<'_>) -> Result<Self, CircuitError> {
        let split = CloseSplit::new(
            inputs.deposit,
            inputs.state,
            inputs.lost_last_receipt,
            inputs.limits,
        )?;
        let mut circuit = Self::new_unchecked(inputs)?;
        circuit.public.payout = split.payout;
        circuit.public.burn = split.burn;
        Ok(circuit)
    }

    /// Like [`CloseCircuit::new`] but without the amount checks: `U` is computed with
    /// wrapping arithmetic (a negative `U` becomes a huge one), so that tests can build the
    /// witness of a false statement and watch the circuit refuse it.
    #[doc(hidden)]
    pub fn new_unchecked(inputs: CloseInputs<'_>) -> Result<Self, CircuitError> {
        let k = inputs.secret.expose();
        let state = inputs.state;
        if inputs.path.siblings.len() > TREE_LEVELS {
            return Err(CircuitError::TreeTooDeep {
                depth: inputs.path.siblings.len(),
                max: TREE_LEVELS,
            });
        }
        let m = u64::from(inputs.lost_last_receipt);
        let ticket = state.index + m;
        let (nullifier, y_w) = close_share(k, ticket, inputs.x_w);
        let limits = inputs.limits;
        // Wrapping on purpose (see above), so on the plain numbers: Credits has no
        // arithmetic that wraps.
        let payout = inputs
            .deposit
            .get()
            .wrapping_add(state.refunds.get())
            .wrapping_sub(state.penalties.get())
            .wrapping_sub(ticket.wrapping_mul(limits.c_max.get()))
            .wrapping_sub(m.wrapping_mul(limits.p_max.get()));
        let burn = state
            .penalties
            .get()
            .wrapping_add(m.wrapping_mul(limits.p_max.get()));
        let (refunds_prev, penalties_prev) = state.previous_totals();
        let last = LastReceiptWitness::of(state);
        Ok(Self {
            public: ClosePublicInputs {
                root: inputs.root,
                close_nullifier: inputs.secret.close_nullifier(),
                nullifier,
                x_w: inputs.x_w,
                y_w,
                deposit: inputs.deposit,
                expiry_epoch: inputs.expiry_epoch,
                payout: Credits::new(payout),
                burn: Credits::new(burn),
                m: Fr::from(m),
                c_max: limits.c_max,
                p_max: limits.p_max,
                server_key: inputs.server_key.point(),
            },
            witness: CloseWitness {
                k,
                path: path_levels(inputs.path),
                index: Fr::from(state.index),
                refunds_prev: refunds_prev.to_field(),
                penalties_prev: penalties_prev.to_field(),
                rho: last.rho,
                refund: last.refund,
                penalty: last.penalty,
                sig_r8: last.sig_r8,
                sig_s: last.sig_s,
            },
        })
    }

    /// A circuit of the right shape with placeholder values, for key generation and for
    /// extracting the constraint matrices.
    pub fn blank() -> Self {
        let zero = Fr::from(0u64);
        Self {
            public: ClosePublicInputs {
                root: Root::default(),
                close_nullifier: zero,
                nullifier: Nullifier::from_field(zero),
                x_w: zero,
                y_w: zero,
                deposit: Credits::ZERO,
                expiry_epoch: 0,
                payout: Credits::ZERO,
                burn: Credits::ZERO,
                m: zero,
                c_max: Credits::ZERO,
                p_max: Credits::ZERO,
                server_key: zkcredits_protocol::babyjubjub::base8(),
            },
            witness: CloseWitness {
                k: zero,
                path: vec![PathLevel::default(); TREE_LEVELS],
                index: zero,
                refunds_prev: zero,
                penalties_prev: zero,
                rho: zero,
                refund: zero,
                penalty: zero,
                sig_r8: Point::zero(),
                sig_s: zero,
            },
        }
    }

    /// Synthesises the circuit and reports the witness layout (`k` and the path are the
    /// values fixed by the note and the root).
    pub fn synthesize(self, cs: ConstraintSystemRef<Fr>) -> Result<WitnessLayout, SynthesisError> {
        let p = self.public;
        let w = self.witness;
        if w.path.len() != TREE_LEVELS {
            return Err(SynthesisError::Unsatisfiable);
        }
        let input = |v: Fr| FpVar::new_input(cs.clone(), || Ok(v));
        let root = input(p.root.field())?;
        let close_nullifier = input(p.close_nullifier)?;
        let nullifier = input(p.nullifier.field())?;
        let x_w = input(p.x_w)?;
        let y_w = input(p.y_w)?;
        let deposit = input(p.deposit.to_field())?;
        let expiry = input(Fr::from(p.expiry_epoch))?;
        let payout = input(p.payout.to_field())?;
        let burn = input(p.burn.to_field())?;
        let lost = input(p.m)?;
        let c_max = input(p.c_max.to_field())?;
        let p_max = input(p.p_max.to_field())?;
        let server_key = PointVar {
            x: input(p.server_key.x)?,
            y: input(p.server_key.y)?,
        };

        let fixed_start = cs.num_witness_variables();
        let k = witness(&cs, || Ok(w.k))?;

        // Membership: H(LEAF, H(ID, k), D, E) is a leaf under root.
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

        // State at index n, exactly as in the request circuit.
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

        // Ranges: n < 2^32; D, R, P < 2^64.
        {
            let _ns = ns!(cs, "ranges");
            range::enforce_bits(&index, 32)?;
            for v in [&deposit, &refunds, &penalties] {
                range::enforce_bits(v, 64)?;
            }
        }

        // m is a bit.
        {
            let _ns = ns!(cs, "flag");
            lost.mul_equals(&(&lost - Fr::from(1u64)), &FpVar::zero())?;
        }

        // NC = H(CLOSE, k).
        {
            let _ns = ns!(cs, "close_nullifier");
            hash([&tag(Tag::Close), &k])?.enforce_equal(&close_nullifier)?;
        }

        // a = H(SLOPE, k, j), N_j = H(NULLIFIER, a) with j = n + m.
        let ticket = &index + &lost;
        let slope = {
            let _ns = ns!(cs, "nullifier");
            let slope = hash([&tag(Tag::Slope), &k, &ticket])?;
            hash([&tag(Tag::Nullifier), &slope])?.enforce_equal(&nullifier)?;
            slope
        };
        {
            let _ns = ns!(cs, "share");
            slope.mul_equals(&x_w, &(&y_w - &k))?;
        }

        // U = D + R - P - j C_max - m P_max, not negative; B = P + m P_max. Every term is
        // below 2^97, so a negative U wraps to a value far above 2^64.
        {
            let _ns = ns!(cs, "amounts");
            let reserve = &lost * &p_max;
            let spent = &ticket * &c_max;
            (&deposit + &refunds - &penalties - spent - &reserve).enforce_equal(&payout)?;
            range::enforce_bits(&payout, 64)?;
            (&penalties + &reserve).enforce_equal(&burn)?;
        }
        Ok(WitnessLayout { note_fixed })
    }
}

impl ConstraintSynthesizer<Fr> for CloseCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        self.synthesize(cs).map(|_| ())
    }
}
