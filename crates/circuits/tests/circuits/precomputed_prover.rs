//! The per-note precomputed prover: its proofs are ordinary Groth16 proofs, blinding is
//! fresh, and a precomputation for another note, root or key is refused (and would give
//! a proof that does not verify).

use crate::common::{Fixture, other_prover, prover, rng, verifier};
use ark_serialize::CanonicalSerialize;
use proptest::prelude::*;
use zkcredits_circuits::CircuitError;
use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::note;

fn bytes(proof: &ark_groth16::Proof<ark_bn254::Bn254>) -> Vec<u8> {
    let mut out = Vec::new();
    proof.serialize_compressed(&mut out).expect("serialise");
    out
}

#[test]
fn precomputed_proofs_verify_and_share_no_bytes() {
    let mut f = Fixture::new(50_000, 2, 300);
    let pre = prover().precompute(f.circuit()).expect("precompute");
    let mut seen = Vec::new();
    for (i, later) in [0u64, 1, 4].into_iter().enumerate() {
        // Later requests of the same note under the same root reuse the precomputation.
        let g = Fixture::new(50_000, 2 + later, 300);
        f.state = g.state;
        f.x = Fr::from(100 + i as u64);
        let circuit = f.circuit();
        let public = circuit.public.to_field_elements();
        let proof = prover()
            .prove_precomputed(&pre, circuit, &mut rng(i as u8))
            .expect("prove");
        assert!(verifier().verify(&proof, &public));
        seen.push(bytes(&proof));
    }
    let same = seen[0].iter().zip(&seen[1]).filter(|(a, b)| a == b).count();
    assert!(same < 8, "{same} equal bytes between two proofs");
}

#[test]
fn a_precomputation_for_another_note_or_root_is_refused_and_would_not_verify() {
    let f = Fixture::new(50_000, 1, 300);
    let pre = prover().precompute(f.circuit()).expect("precompute");

    // Another root: one more deposit lands in the tree.
    let mut g = Fixture::new(50_000, 1, 300);
    g.tree
        .push(note::leaf(Fr::from(12345u64), Credits::new(777), 30))
        .expect("push");
    let circuit = g.circuit();
    let public = circuit.public.to_field_elements();
    assert!(matches!(
        prover().prove_precomputed(&pre, circuit.clone(), &mut rng(1)),
        Err(CircuitError::StalePrecomputation)
    ));
    let assignment = prover().assignment(circuit).expect("assignment");
    let proof = prover()
        .prove_with_fixed_part(Some(&pre), &assignment, &mut rng(2))
        .expect("arithmetic");
    assert!(!verifier().verify(&proof, &public));

    // Another note (another deposit amount, so another leaf).
    let h = Fixture::new(60_000, 1, 300);
    assert!(matches!(
        prover().prove_precomputed(&pre, h.circuit(), &mut rng(3)),
        Err(CircuitError::StalePrecomputation)
    ));
}

#[test]
fn a_precomputation_for_another_key_is_refused() {
    let f = Fixture::new(50_000, 0, 0);
    let other = other_prover();
    let pre = other.precompute(f.circuit()).expect("precompute");
    assert!(matches!(
        prover().prove_precomputed(&pre, f.circuit(), &mut rng(4)),
        Err(CircuitError::StalePrecomputation)
    ));
    let circuit = f.circuit();
    let public = circuit.public.to_field_elements();
    let assignment = prover().assignment(circuit).expect("assignment");
    let proof = prover()
        .prove_with_fixed_part(Some(&pre), &assignment, &mut rng(5))
        .expect("arithmetic");
    assert!(!verifier().verify(&proof, &public));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]
    #[test]
    fn plain_and_precomputed_provers_both_verify_for_random_notes_and_states(
        deposit in 20_000u64..1_000_000, requests in 0u64..4, refund in 0u64..1_000, x in any::<u64>(),
    ) {
        let mut f = Fixture::new(deposit, requests, refund);
        f.x = Fr::from(x);
        let circuit = f.circuit();
        let public = circuit.public.to_field_elements();
        let plain = prover().prove(circuit.clone(), &mut rng(6)).expect("plain");
        let pre = prover().precompute(circuit.clone()).expect("precompute");
        let fast = prover().prove_precomputed(&pre, circuit, &mut rng(7)).expect("fast");
        prop_assert!(verifier().verify(&plain, &public));
        prop_assert!(verifier().verify(&fast, &public));
    }
}
