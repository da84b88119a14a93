//! The per-ticket precomputation: a finished proof is byte for byte the plain prover's
//! proof with the same blinding, it verifies alone and in a batch, a precomputation for
//! another ticket, state, root or key is refused (and would not verify), and its bytes
//! round-trip, with what finishing the same bytes twice means.

use crate::common::{Fixture, other_prover, prover, rng, verifier};
use ark_bn254::Bn254;
use ark_groth16::Proof;
use ark_serialize::CanonicalSerialize;
use ark_std::UniformRand;
use ark_std::rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use zkcredits_circuits::CircuitError;
use zkcredits_circuits::precompute::NotePrecomputation;
use zkcredits_circuits::ticket::{TicketPrecomputation, TicketProof};
use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::note;
use zkcredits_protocol::rln::{self, Share};

fn bytes(proof: &Proof<Bn254>) -> Vec<u8> {
    let mut out = Vec::new();
    proof.serialize_compressed(&mut out).expect("serialise");
    out
}

fn note_pre(f: &Fixture) -> NotePrecomputation {
    prover()
        .precompute(f.circuit())
        .expect("note precomputation")
}

/// Precomputes `f`'s next ticket with blinding from `rng(seed)`.
fn ticket(f: &Fixture, seed: u8) -> TicketPrecomputation {
    prover()
        .precompute_ticket(&note_pre(f), f.circuit(), &mut rng(seed))
        .expect("ticket precomputation")
}

/// Finishes `pre` for `f`'s request with binding `x`.
fn finish(pre: TicketPrecomputation, f: &Fixture, x: Fr) -> Result<TicketProof, CircuitError> {
    let mut f = Fixture(f.0.clone());
    f.x = x;
    let path = f.path();
    prover().finish_ticket(pre, f.inputs(&path))
}

#[test]
fn finished_proofs_are_the_plain_provers_proofs_and_verify_alone_and_in_a_batch() {
    let mut xs = ChaCha20Rng::from_seed([40; 32]);
    let mut batch = Vec::new();
    // A first ticket and a later one; the circuit handed to the precomputation carries
    // some x of its own, which must not matter.
    for (seed, requests, circuit_x) in [(1u8, 0u64, 0u64), (2, 3, 0xabcdef), (3, 3, 5)] {
        let mut f = Fixture::new(80_000, requests, 250);
        f.x = Fr::from(circuit_x);
        let pre = ticket(&f, seed);
        for x in [Fr::rand(&mut xs), Fr::rand(&mut xs), Fr::from(0u64)] {
            f.x = x;
            let plain = prover().prove(f.circuit(), &mut rng(seed)).expect("plain");
            // One blinding per proof: the same bytes stand in for a fresh precomputation
            // with the same (r, s) for each x.
            let pre = TicketPrecomputation::from_bytes(&pre.to_bytes()).expect("decode");
            let finished = finish(pre, &f, x).expect("finish");
            assert_eq!(finished.public, f.circuit().public);
            assert_eq!(
                bytes(&finished.proof),
                bytes(&plain),
                "ticket {requests}, x {x}: the finished proof must be the plain prover's"
            );
            let public = finished.public.to_field_elements();
            assert!(verifier().verify(&finished.proof, &public));
            batch.push((finished.proof, public));
        }
    }
    let items: Vec<_> = batch.iter().map(|(p, x)| (p, x.as_slice())).collect();
    assert!(verifier().verify_batch(&items, &mut rng(9)));
    // The same batch with one proof under another request's binding fails.
    let mut wrong = batch[1].1.clone();
    wrong[1] += Fr::from(1u64);
    let mut items = items;
    items[1].1 = &wrong;
    assert!(!verifier().verify_batch(&items, &mut rng(9)));
}

#[test]
fn a_ticket_precomputation_for_another_ticket_state_root_or_key_is_refused() {
    let f = Fixture::new(50_000, 2, 300);
    let encoded = ticket(&f, 11).to_bytes();
    let fresh = || TicketPrecomputation::from_bytes(&encoded).expect("decode");
    let x = Fr::from(4242u64);
    assert!(finish(fresh(), &f, x).is_ok());

    let refused = |g: &Fixture, what: &str| {
        assert!(
            matches!(
                finish(fresh(), g, x),
                Err(CircuitError::StaleTicketPrecomputation)
            ),
            "{what}: must be refused"
        );
        // And it would not verify there: the check is what stands between a stale
        // precomputation and a proof the gateway rejects.
        let mut g = Fixture(g.0.clone());
        g.x = x;
        let public = g.circuit().public.to_field_elements();
        assert!(
            !verifier().verify(&fresh().finish_unchecked(x), &public),
            "{what}: must not verify"
        );
    };

    // The next ticket of the note.
    refused(&Fixture::new(50_000, 3, 300), "another ticket");
    // The same ticket index reached with other refunds, or another rho_next.
    refused(&Fixture::new(50_000, 2, 400), "another state");
    let mut g = Fixture::new(50_000, 2, 300);
    g.rho_next = Fr::from(78u64);
    refused(&g, "another rho_next");
    // Another root: one more deposit lands in the tree.
    let mut g = Fixture::new(50_000, 2, 300);
    g.tree
        .push(note::leaf(Fr::from(12345u64), Credits::new(777), 30))
        .expect("push");
    refused(&g, "another root");
    // Another note.
    refused(&Fixture::new(60_000, 2, 300), "another note");

    // Another key: precomputed with other keys, finished with these.
    let other = other_prover();
    let pre = other
        .precompute_ticket(
            &other.precompute(f.circuit()).expect("note"),
            f.circuit(),
            &mut rng(12),
        )
        .expect("ticket");
    assert!(matches!(
        finish(pre, &f, x),
        Err(CircuitError::StaleTicketPrecomputation)
    ));
    // And a note precomputation for another root is refused when precomputing.
    let mut g = Fixture::new(50_000, 2, 300);
    g.tree
        .push(note::leaf(Fr::from(12345u64), Credits::new(777), 30))
        .expect("push");
    assert!(matches!(
        prover().precompute_ticket(&note_pre(&f), g.circuit(), &mut rng(13)),
        Err(CircuitError::StalePrecomputation)
    ));
}

#[test]
fn cached_bytes_round_trip_and_finishing_them_twice_is_a_replay_or_a_double_spend() {
    let f = Fixture::new(50_000, 1, 300);
    let pre = ticket(&f, 21);
    let fingerprint = pre.fingerprint();
    let encoded = pre.to_bytes();
    assert_eq!(encoded.len(), TicketPrecomputation::ENCODED_LEN);
    let (x1, x2) = (Fr::from(1001u64), Fr::from(2002u64));
    let first = finish(pre, &f, x1).expect("finish");

    // The cache must hand a ticket's bytes out once (see `TicketPrecomputation`): the
    // same bytes finish again, to the identical proof for the same x...
    let again = TicketPrecomputation::from_bytes(&encoded).expect("decode");
    assert_eq!(again.fingerprint(), fingerprint);
    assert_eq!(finish(again, &f, x1).expect("finish"), first);
    // ...and, for another x, to a second spend of the ticket: the same nullifier, and
    // two shares that give away the note key.
    let second = finish(
        TicketPrecomputation::from_bytes(&encoded).expect("decode"),
        &f,
        x2,
    )
    .expect("finish");
    assert_eq!(second.public.nullifier, first.public.nullifier);
    let share = |p: &TicketProof| Share {
        x: p.public.x,
        y: p.public.y,
    };
    let recovered = rln::recover(share(&first), share(&second)).expect("two shares");
    assert_eq!(recovered.k, f.secret.expose());

    // Damaged bytes are refused.
    assert!(TicketPrecomputation::from_bytes(&encoded[1..]).is_err());
    let mut version = encoded.to_vec();
    version[0] = 2;
    assert!(TicketPrecomputation::from_bytes(&version).is_err());
    let mut point = encoded.to_vec();
    point[1 + 64 + 5] ^= 1;
    assert!(TicketPrecomputation::from_bytes(&point).is_err());
    // A damaged fingerprint decodes, and is refused when finishing.
    let mut print = encoded.to_vec();
    *print.last_mut().expect("bytes") ^= 1;
    let damaged = TicketPrecomputation::from_bytes(&print).expect("decodes");
    assert!(matches!(
        finish(damaged, &f, x1),
        Err(CircuitError::StaleTicketPrecomputation)
    ));
}

#[test]
fn the_assignment_moves_with_x_only_at_x_and_y() {
    // The condition the derivation rests on, seen on the witness the prover computes
    // (the matrices side is checked by `precompute_ticket` itself).
    let mut f = Fixture::new(50_000, 2, 300);
    let at = |f: &Fixture| prover().assignment(f.circuit()).expect("assignment");
    f.x = Fr::from(3u64);
    let first = at(&f);
    f.x = Fr::from(1u64 << 40);
    let second = at(&f);
    let moved: Vec<usize> = (0..first.len())
        .filter(|&i| first[i] != second[i])
        .collect();
    assert_eq!(moved, [2, 3], "only x and y (after 1 and root) may move");
}
