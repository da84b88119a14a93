//! The full round trip with real keys: setup, load, prove, verify, batch verify.

use crate::common::{Fixture, prover, rng};
use ark_ec::{AffineRepr, CurveGroup};
use ark_serialize::CanonicalSerialize;
use zkcredits_circuits::CircuitError;
use zkcredits_circuits::keys;
use zkcredits_circuits::prover;
use zkcredits_circuits::request::RequestCircuit;
use zkcredits_circuits::verifier::Verifier;
use zkcredits_protocol::Fr;
use zkcredits_protocol::wire::{Credential, WireFormat};

fn key_dir() -> &'static std::path::Path {
    zkcredits_circuits::testing::dev_keys_dir()
}

#[test]
fn a_proof_verifies_and_fails_with_any_other_public_input() {
    let circuit = Fixture::new(20_000, 2, 100).circuit();
    let public = circuit.public.to_field_elements();
    let proof = prover().prove(circuit, &mut rng(1)).expect("prove");
    let verifier = Verifier::new(&keys::load_verifying_key(key_dir()).expect("vk"));
    assert!(verifier.verify(&proof, &public));
    for i in 0..public.len() {
        let mut tampered = public.clone();
        tampered[i] += Fr::from(1u64);
        assert!(
            !verifier.verify(&proof, &tampered),
            "public input {i} changed"
        );
    }
    assert!(!verifier.verify(&proof, &public[..8]));
}

#[test]
fn a_proof_survives_the_wire_and_two_proofs_of_one_statement_share_no_bytes() {
    let f = Fixture::new(20_000, 0, 0);
    let first = prover().prove(f.circuit(), &mut rng(2)).expect("prove");
    let second = prover().prove(f.circuit(), &mut rng(3)).expect("prove");
    let mut a = Vec::new();
    let mut b = Vec::new();
    first.serialize_compressed(&mut a).expect("ser");
    second.serialize_compressed(&mut b).expect("ser");
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert!(same < 8, "{same} equal bytes between two fresh proofs");

    let public = f.circuit().public;
    let credential = Credential {
        key_id: 0,
        root: public.root,
        nullifier: public.nullifier,
        y: public.y,
        next_commitment: public.next_commitment,
        proof: prover::to_points(&first),
    };
    let decoded = Credential::from_base64url(&credential.to_base64url()).expect("decode");
    let verifier = Verifier::new(&keys::load_verifying_key(key_dir()).expect("vk"));
    assert!(verifier.verify(
        &prover::from_points(&decoded.proof),
        &public.to_field_elements()
    ));
}

#[test]
fn an_unsatisfiable_witness_is_refused_before_proving() {
    let mut circuit: RequestCircuit = Fixture::new(20_000, 1, 0).circuit();
    circuit.witness.k += Fr::from(1u64);
    assert!(matches!(
        prover().prove(circuit, &mut rng(4)),
        Err(CircuitError::Unsatisfied(_))
    ));
}

#[test]
fn a_batch_of_64_verifies_and_one_bad_proof_fails_the_batch() {
    // 16 real proofs of distinct statements (four note states, distinct requests), then
    // each re-randomised three times (Groth16's `A/r1, r1 B + r1 r2 delta, C + r2 A`):
    // 64 distinct valid proofs for a quarter of the proving time. Proof i is of
    // statement i % 16.
    let fixtures: Vec<Fixture> = (0..4).map(|n| Fixture::new(20_000, n, 10)).collect();
    let vk = keys::load_verifying_key(key_dir()).expect("vk");
    let mut statements = Vec::new();
    for i in 0..16u64 {
        let mut f = Fixture::new(20_000, 0, 0);
        f.state = fixtures[(i % 4) as usize].state;
        f.x = Fr::from(i + 1);
        let circuit = f.circuit();
        let public = circuit.public.to_field_elements();
        let proof = prover()
            .prove(circuit, &mut rng(10 + i as u8))
            .expect("prove");
        statements.push((proof, public));
    }
    let mut proofs = Vec::new();
    let mut inputs = Vec::new();
    let mut rerandomise = rng(77);
    for i in 0..64usize {
        let (proof, public) = &statements[i % 16];
        proofs.push(if i < 16 {
            proof.clone()
        } else {
            ark_groth16::Groth16::<ark_bn254::Bn254>::rerandomize_proof(
                &vk,
                proof,
                &mut rerandomise,
            )
        });
        inputs.push(public.clone());
    }
    let distinct: std::collections::HashSet<_> = proofs.iter().map(|p| format!("{p:?}")).collect();
    assert_eq!(distinct.len(), 64, "every proof in the batch is distinct");
    let verifier = Verifier::new(&keys::load_verifying_key(key_dir()).expect("vk"));
    let batch: Vec<_> = proofs
        .iter()
        .zip(&inputs)
        .map(|(p, x)| (p, x.as_slice()))
        .collect();
    assert!(verifier.verify_batch(&batch, &mut rng(99)));

    // One proof paired with another's inputs: the batch fails.
    let mut bad = batch.clone();
    bad[17].1 = inputs[18].as_slice();
    assert!(!verifier.verify_batch(&bad, &mut rng(98)));
    assert!(verifier.verify_batch(&bad[..17], &mut rng(97)));
    // One tampered proof: the batch fails.
    let mut tampered = proofs[40].clone();
    tampered.c = proofs[41].c;
    let mut bad = batch.clone();
    bad[40].0 = &tampered;
    assert!(!verifier.verify_batch(&bad, &mut rng(96)));
}

/// Two forged proofs whose errors cancel in an unweighted product: `A + D` and `A - D`
/// with one `B`, so `e(A + D, B) e(A - D, B) = e(A, B)^2`. Only distinct random weights
/// per proof catch them; both batch orders and both forgeries alone are refused.
#[test]
fn forgeries_that_cancel_in_an_unweighted_batch_are_refused() {
    let circuit = Fixture::new(20_000, 1, 10).circuit();
    let public = circuit.public.to_field_elements();
    let proof = prover().prove(circuit, &mut rng(30)).expect("prove");
    let verifier = Verifier::new(&keys::load_verifying_key(key_dir()).expect("vk"));
    let shift = (ark_bn254::G1Affine::generator() * Fr::from(12_345u64)).into_affine();
    let mut plus = proof.clone();
    plus.a = (proof.a + shift).into_affine();
    let mut minus = proof.clone();
    minus.a = (proof.a - shift).into_affine();
    assert!(verifier.verify_batch(&[(&proof, &public), (&proof, &public)], &mut rng(31)));
    for seed in 32..36 {
        assert!(!verifier.verify_batch(&[(&plus, &public), (&minus, &public)], &mut rng(seed)));
        assert!(!verifier.verify_batch(&[(&minus, &public), (&plus, &public)], &mut rng(seed)));
    }
    assert!(!verifier.verify(&plus, &public));
    assert!(!verifier.verify(&minus, &public));
}

#[test]
fn a_damaged_or_foreign_key_file_is_refused() {
    let dir = std::env::temp_dir().join(format!("zkcredits-keys-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for name in ["keys.json", "request.pk", "request.vk"] {
        std::fs::copy(key_dir().join(name), dir.join(name)).expect("copy");
    }
    let mut pk = std::fs::read(dir.join("request.pk")).expect("read");
    let last = pk.len() - 1;
    pk[last] ^= 1;
    std::fs::write(dir.join("request.pk"), pk).expect("write");
    assert!(matches!(
        keys::load_proving_key(&dir),
        Err(CircuitError::KeyFile { .. })
    ));
    let manifest = std::fs::read_to_string(dir.join("keys.json")).expect("read");
    std::fs::write(
        dir.join("keys.json"),
        manifest.replace("request/v1", "request/v0"),
    )
    .expect("write");
    assert!(matches!(
        keys::read_manifest(&dir),
        Err(CircuitError::KeyFile { .. })
    ));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn the_development_keys_are_the_pinned_ones_and_known_whatever_the_manifest_says() {
    let request = keys::load_proving_key(key_dir()).expect("request keys");
    let close = keys::load_close_proving_key(key_dir()).expect("close keys");
    let hashes =
        [&request, &close].map(|k| hex::encode(keys::verifying_key_hash(k.verifying_key())));
    assert_eq!(
        hashes,
        keys::DEV_VERIFYING_KEY_HASHES,
        "the development keys changed (a circuit change?): pin the new hashes"
    );
    assert!(request.is_development() && close.is_development());
    // A manifest that claims a ceremony does not make the public seed's keys safe.
    let mut disguised = request.clone();
    disguised.manifest.ceremony = Some(zkcredits_circuits::ceremony::CeremonyRecord {
        tool: "snarkjs groth16 phase 2".into(),
        zkey_file: "request_final.zkey".into(),
        zkey_sha256: "00".repeat(32),
        circuit_hash: "00".repeat(64),
        contributions: vec![],
    });
    assert!(disguised.is_development());
}
