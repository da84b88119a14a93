//! One test per rule of the close circuit (`docs/PROTOCOL.md §6`): each changes one wire
//! of an honest witness and checks that the rule it breaks is the one unsatisfied.

#![allow(clippy::unwrap_used)]

use crate::common::{Fixture, LIMITS, assert_breaks, broken_rule, minus, plus};
use ark_ff::{BigInteger, PrimeField};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem};
use zkcredits_circuits::CircuitError;
use zkcredits_circuits::close::CloseCircuit;
use zkcredits_protocol::Fr;
use zkcredits_protocol::close::{CloseError, CloseSplit};
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::eddsa::PrivateKey;
use zkcredits_protocol::merkle::Root;
use zkcredits_protocol::rln::Ticket;
use zkcredits_protocol::state::receipt_message;

const X_W: u64 = 0x1234_5678_9abc;

fn x_w() -> Fr {
    Fr::from(X_W)
}

/// A note of 20,000 after 3 requests refunded 250 each, with one penalty-free history.
fn used() -> Fixture {
    Fixture::new(20_000, 3, 250)
}

fn fresh() -> Fixture {
    Fixture::new(20_000, 0, 0)
}

fn close(f: &Fixture, m: bool) -> CloseCircuit {
    f.close_circuit(m, x_w()).expect("solvent close")
}

#[test]
fn honest_closes_with_m_0_and_1_satisfy_the_circuit_and_match_the_native_split() {
    for f in [fresh(), used()] {
        for m in [false, true] {
            let c = close(&f, m);
            let split = CloseSplit::new(f.deposit, &f.state, m, LIMITS).expect("split");
            assert_eq!(c.public.payout, split.payout);
            assert_eq!(c.public.burn, split.burn);
            let ticket = Ticket::new(f.secret.expose(), split.ticket);
            assert_eq!(c.public.nullifier, ticket.nullifier);
            assert_eq!(c.public.y_w, ticket.share(f.secret.expose(), x_w()).y);
            assert_eq!(c.public.close_nullifier, f.secret.close_nullifier());
            assert_eq!(broken_rule(c), None, "m = {m}");
        }
    }
}

#[test]
fn the_constraint_count_is_pinned() {
    let cs = ConstraintSystem::<Fr>::new_ref();
    CloseCircuit::blank()
        .generate_constraints(cs.clone())
        .expect("synthesis");
    // A change here is a decision: update docs/PERFORMANCE.md with it.
    assert_eq!(cs.num_constraints(), CLOSE_CONSTRAINTS);
    assert_eq!(cs.num_instance_variables(), 1 + 14);
}

const CLOSE_CONSTRAINTS: usize = 12_250;

#[test]
fn a_wrong_k_or_a_leaf_not_in_the_tree_is_refused() {
    let f = used();
    let mut c = close(&f, false);
    c.witness.k += Fr::from(1u64);
    assert_breaks(c, "membership");
    let mut c = close(&f, false);
    c.witness.path[2].sibling += Fr::from(1u64);
    assert_breaks(c, "membership");
    let mut c = close(&f, false);
    c.public.root = Root::from_field(c.public.root.field() + Fr::from(1u64));
    assert_breaks(c, "membership");
}

#[test]
fn a_wrong_public_deposit_or_epoch_is_refused() {
    let f = used();
    let mut c = close(&f, false);
    c.public.deposit = plus(c.public.deposit, 1);
    c.public.payout = plus(c.public.payout, 1);
    assert_breaks(c, "membership");
    let mut c = close(&f, false);
    c.public.expiry_epoch += 1;
    assert_breaks(c, "membership");
}

#[test]
fn a_signature_nonce_off_the_curve_is_refused() {
    let f = used();
    let mut c = close(&f, false);
    let r8 = c.witness.sig_r8;
    c.witness.sig_r8 =
        zkcredits_protocol::babyjubjub::Point::new_unchecked(r8.x, r8.y + Fr::from(1u64));
    assert_breaks(c, "r8_on_curve");
}

#[test]
fn a_forged_or_foreign_signature_is_refused() {
    let f = used();
    let mut c = close(&f, false);
    c.witness.sig_s += Fr::from(1u64);
    assert_breaks(c, "signature");
    // A higher refund than the gateway signed, which would raise U.
    let mut c = close(&f, false);
    c.witness.refund += Fr::from(1u64);
    c.witness.refunds_prev -= Fr::from(1u64);
    assert_breaks(c, "signature");
    let last = f.state.last.expect("a receipt");
    let other = PrivateKey::from_bytes([7u8; 32]).sign(receipt_message(
        last.commitment,
        last.receipt.refund,
        last.receipt.penalty,
    ));
    let mut c = close(&f, false);
    c.witness.sig_r8 = other.r8;
    c.witness.sig_s = Fr::from_le_bytes_mod_order(&other.s.into_bigint().to_bytes_le());
    assert_breaks(c, "signature");
}

#[test]
fn a_fresh_note_claiming_refunds_is_refused() {
    for tamper in 0..4 {
        let mut c = close(&fresh(), false);
        match tamper {
            0 => c.witness.refunds_prev = Fr::from(5u64),
            1 => c.witness.penalties_prev = Fr::from(5u64),
            2 => c.witness.refund = Fr::from(5u64),
            _ => c.witness.penalty = Fr::from(5u64),
        }
        assert_breaks(c, "state");
    }
}

#[test]
fn an_index_beyond_32_bits_is_refused() {
    let mut c = close(&fresh(), false);
    c.witness.index = Fr::from(1u64 << 32);
    // No receipt exists for such an index, so the signature rule may object first.
    assert!(broken_rule(c).is_some());
}

#[test]
fn a_flag_other_than_0_or_1_is_refused() {
    let f = used();
    let mut c = close(&f, true);
    // m = 2 with every amount recomputed for it: only the flag rule is left to object.
    c.public.m = Fr::from(2u64);
    let j = f.state.index + 2;
    let ticket = Ticket::new(f.secret.expose(), j);
    c.public.nullifier = ticket.nullifier;
    c.public.y_w = ticket.share(f.secret.expose(), x_w()).y;
    c.public.payout = Credits::new(
        f.deposit.get() + f.state.refunds.get() - j * LIMITS.c_max.get() - 2 * LIMITS.p_max.get(),
    );
    c.public.burn = Credits::new(2 * LIMITS.p_max.get());
    assert_breaks(c, "flag");
}

#[test]
fn a_wrong_close_nullifier_is_refused() {
    let mut c = close(&used(), false);
    c.public.close_nullifier += Fr::from(1u64);
    assert_breaks(c, "close_nullifier");
}

#[test]
fn a_close_on_another_ticket_is_refused() {
    let f = used();
    // The nullifier of the last used ticket (n - 1): a close that would not be caught.
    let mut c = close(&f, false);
    c.public.nullifier = Ticket::new(f.secret.expose(), f.state.index - 1).nullifier;
    assert_breaks(c, "nullifier");
    // m = 1 must spend ticket n + 1, not n.
    let mut c = close(&f, true);
    c.public.nullifier = Ticket::new(f.secret.expose(), f.state.index).nullifier;
    assert_breaks(c, "nullifier");
}

#[test]
fn a_wrong_share_or_another_payout_binding_is_refused() {
    let mut c = close(&used(), false);
    c.public.y_w += Fr::from(1u64);
    assert_breaks(c, "share");
    // The proof for one payout address cannot be used with another x_w.
    let mut c = close(&used(), false);
    c.public.x_w += Fr::from(1u64);
    assert_breaks(c, "share");
}

#[test]
fn amounts_hold_to_the_unit() {
    let f = used();
    for m in [false, true] {
        let mut c = close(&f, m);
        c.public.payout = plus(c.public.payout, 1);
        assert_breaks(c, "amounts");
        // Moving a unit between the payout and the burn keeps the sum, not the statement.
        let mut c = close(&f, m);
        c.public.burn = plus(c.public.burn, 1);
        c.public.payout = minus(c.public.payout, 1);
        assert_breaks(c, "amounts");
    }
    // Skipping the P_max reserve of a lost receipt.
    let mut c = close(&f, true);
    c.public.payout = plus(c.public.payout, LIMITS.p_max.get());
    c.public.burn = minus(c.public.burn, LIMITS.p_max.get());
    assert_breaks(c, "amounts");
}

#[test]
fn an_overdrawn_note_cannot_close() {
    // After 3 requests refunded 250: D + R - j C_max = D + 750 - 3000; D = 2250 leaves 0.
    let exact = Fixture::new(2_250, 3, 250);
    let c = close(&exact, false);
    assert_eq!(c.public.payout, Credits::ZERO);
    assert_eq!(broken_rule(c), None);
    // With m = 1 it owes another C_max + P_max: refused natively, and by the circuit.
    assert!(matches!(
        exact.close_circuit(true, x_w()),
        Err(CircuitError::Close(CloseError::Overdrawn))
    ));
    assert_breaks(
        exact.close_circuit_unchecked(true, x_w()).expect("circuit"),
        "amounts",
    );
}
