//! One test per rule of the request circuit (`docs/PROTOCOL.md §4`): each changes one
//! wire of an honest witness and checks that the rule it breaks is the one unsatisfied.

use crate::common::{Fixture, LIMITS, assert_breaks, broken_rule};
use ark_ff::{BigInteger, PrimeField};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem};
use zkcredits_circuits::request::RequestCircuit;
use zkcredits_protocol::Fr;
use zkcredits_protocol::eddsa::PrivateKey;
use zkcredits_protocol::merkle::Root;
use zkcredits_protocol::rln::Nullifier;
use zkcredits_protocol::state::receipt_message;

fn fresh() -> Fixture {
    Fixture::new(20_000, 0, 0)
}

fn used() -> Fixture {
    Fixture::new(20_000, 3, 250)
}

#[test]
fn honest_first_and_later_requests_satisfy_the_circuit() {
    assert_eq!(broken_rule(fresh().circuit()), None);
    assert_eq!(broken_rule(used().circuit()), None);
}

#[test]
fn the_constraint_count_is_pinned() {
    let cs = ConstraintSystem::<Fr>::new_ref();
    RequestCircuit::blank()
        .generate_constraints(cs.clone())
        .expect("synthesis");
    // A change here is a decision: update docs/PERFORMANCE.md with it.
    assert_eq!(cs.num_constraints(), 12_361);
    assert_eq!(cs.num_instance_variables(), 1 + 9);
}

#[test]
fn a_wrong_k_is_refused() {
    let mut c = used().circuit();
    c.witness.k += Fr::from(1u64);
    assert_breaks(c, "membership");
}

#[test]
fn a_leaf_not_in_the_tree_is_refused() {
    let mut c = fresh().circuit();
    c.witness.path[1].sibling += Fr::from(1u64);
    assert_breaks(c, "membership");
    let mut c = fresh().circuit();
    c.public.root = Root::from_field(c.public.root.field() + Fr::from(1u64));
    assert_breaks(c, "membership");
}

#[test]
fn a_wrong_deposit_is_refused() {
    let mut c = fresh().circuit();
    c.witness.deposit += Fr::from(1u64);
    assert_breaks(c, "membership");
}

#[test]
fn solvency_holds_to_the_unit() {
    // After 3 requests with 250 refunded each: spend = 4 * 1000 + 0 + 5000 = 9000,
    // D + R = D + 750, so D = 8250 is exactly enough and 8249 is one unit short.
    assert_eq!(broken_rule(Fixture::new(8_250, 3, 250).circuit()), None);
    let short = Fixture::new(8_249, 3, 250);
    assert!(short.circuit_unchecked().witness.deposit == Fr::from(8_249u64));
    assert_breaks(short.circuit_unchecked(), "solvency");
}

#[test]
fn a_note_without_the_p_max_reserve_is_refused() {
    // Enough for the charge, not for the charge plus the penalty reserve.
    let f = Fixture::new(LIMITS.c_max.get() + LIMITS.p_max.get() - 1, 0, 0);
    assert_breaks(f.circuit_unchecked(), "solvency");
    let f = Fixture::new(LIMITS.c_max.get(), 0, 0);
    assert_breaks(f.circuit_unchecked(), "solvency");
}

#[test]
fn a_wrong_nullifier_is_refused() {
    let mut c = used().circuit();
    c.public.nullifier = Nullifier::from_field(c.public.nullifier.field() + Fr::from(1u64));
    assert_breaks(c, "nullifier");
}

#[test]
fn a_wrong_share_is_refused() {
    let mut c = used().circuit();
    c.public.y += Fr::from(1u64);
    assert_breaks(c, "share");
    let mut c = used().circuit();
    c.public.x += Fr::from(1u64);
    assert_breaks(c, "share");
}

#[test]
fn a_forged_signature_is_refused() {
    let mut c = used().circuit();
    c.witness.sig_s += Fr::from(1u64);
    assert_breaks(c, "signature");
    // A higher refund than the gateway signed.
    let mut c = used().circuit();
    c.witness.refund += Fr::from(1u64);
    c.witness.refunds_prev -= Fr::from(1u64);
    assert_breaks(c, "signature");
}

#[test]
fn a_signature_nonce_off_the_curve_is_refused() {
    let mut c = used().circuit();
    let r8 = c.witness.sig_r8;
    c.witness.sig_r8 =
        zkcredits_protocol::babyjubjub::Point::new_unchecked(r8.x, r8.y + Fr::from(1u64));
    assert_breaks(c, "r8_on_curve");
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let f = used();
    let mut c = f.circuit();
    let last = f.state.last.expect("a receipt");
    let other = PrivateKey::from_bytes([7u8; 32]);
    let sig = other.sign(receipt_message(
        last.commitment,
        last.receipt.refund,
        last.receipt.penalty,
    ));
    c.witness.sig_r8 = sig.r8;
    c.witness.sig_s = Fr::from_le_bytes_mod_order(&sig.s.into_bigint().to_bytes_le());
    assert_breaks(c, "signature");
}

#[test]
fn a_first_request_with_refunds_or_penalties_is_refused() {
    for tamper in 0..4 {
        let mut c = fresh().circuit();
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
fn a_wrong_next_commitment_is_refused() {
    let mut c = used().circuit();
    c.public.next_commitment += Fr::from(1u64);
    assert_breaks(c, "next_state");
    let mut c = used().circuit();
    c.witness.rho_next += Fr::from(1u64);
    assert_breaks(c, "next_state");
}

#[test]
fn an_index_beyond_32_bits_is_refused() {
    let mut c = fresh().circuit();
    c.witness.index = Fr::from(1u64 << 32);
    assert!(broken_rule(c).is_some());
}
