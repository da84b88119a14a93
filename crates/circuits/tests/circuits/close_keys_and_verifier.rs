//! The close circuit's keys and its Solidity verifier: `setup_dev` makes both key sets
//! (the request keys unchanged), a close proof round-trips through prove and verify, and
//! the committed `contracts/src/CloseVerifier.sol` is exactly what the generator makes
//! from the development keys.
//!
//! To regenerate the committed verifier after a change to the close circuit or the
//! generator: `ZKCREDITS_WRITE_VERIFIER=1 cargo test -p zkcredits-circuits --test
//! circuits close_keys_and_verifier`, then `npm run build` in contracts/.

use std::path::Path;

use crate::common::{Fixture, plus};
use ark_std::rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use zkcredits_circuits::CircuitError;
use zkcredits_circuits::keys;
use zkcredits_circuits::prover::{CloseProver, RequestProver};
use zkcredits_circuits::solidity::close_verifier_source;
use zkcredits_circuits::verifier::Verifier;
use zkcredits_protocol::Fr;

fn key_dir() -> &'static Path {
    zkcredits_circuits::testing::dev_keys_dir()
}

#[test]
fn setup_makes_both_key_sets_and_the_request_keys_are_unchanged() {
    let request = keys::read_manifest(key_dir()).expect("request manifest");
    // The request proving key of DEV_SEED (since its H query is in snarkjs' QAP basis;
    // a change is a decision, like the constraint count). The verifying key is the same
    // in both bases.
    assert_eq!(
        request.proving_key.sha256,
        "12a33894062f3295503914efc108adc1e2278caf7116692cebb9334d9c252636"
    );
    assert_eq!(
        request.verifying_key.sha256,
        "cae6f15df097df515b60e231fbbe7182b78560d38d9ad14747fba8f98e0dda49"
    );
    let close = keys::read_manifest_for(
        zkcredits_circuits::statement::StatementKind::Close,
        key_dir(),
    )
    .expect("close manifest");
    assert_eq!(close.circuit, keys::CLOSE_CIRCUIT_ID);
    assert_eq!(close.constraints, 12_250);
    // Keys for one circuit are refused by the other's prover.
    let close_keys = keys::load_close_proving_key(key_dir()).expect("close keys");
    assert!(matches!(
        RequestProver::new(close_keys),
        Err(CircuitError::KeyFile { .. })
    ));
    let request_keys = keys::load_proving_key(key_dir()).expect("request keys");
    assert!(matches!(
        CloseProver::new(request_keys),
        Err(CircuitError::KeyFile { .. })
    ));
}

#[test]
fn a_close_proof_verifies_for_its_inputs_only() {
    let prover =
        CloseProver::new(keys::load_close_proving_key(key_dir()).expect("keys")).expect("prover");
    let verifier = Verifier::new(&keys::load_close_verifying_key(key_dir()).expect("vk"));
    let f = Fixture::new(20_000, 3, 250);
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    for m in [false, true] {
        let circuit = f.close_circuit(m, Fr::from(99u64)).expect("circuit");
        let inputs = circuit.public.to_field_elements();
        let proof = prover.prove(circuit, &mut rng).expect("prove");
        assert!(verifier.verify(&proof, &inputs));
        for i in 0..inputs.len() {
            let mut other = inputs.clone();
            other[i] += Fr::from(1u64);
            assert!(!verifier.verify(&proof, &other), "input {i}");
        }
    }
    // The prover refuses an unsatisfied witness instead of making a useless proof.
    let mut bad = f.close_circuit(false, Fr::from(99u64)).expect("circuit");
    bad.public.payout = plus(bad.public.payout, 1);
    assert!(matches!(
        prover.prove(bad, &mut rng),
        Err(CircuitError::Unsatisfied(_))
    ));
}

#[test]
fn the_committed_solidity_verifier_is_generated_from_the_dev_keys() {
    let vk = keys::load_close_verifying_key(key_dir()).expect("vk");
    let source = close_verifier_source(&vk);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts/src/CloseVerifier.sol");
    if std::env::var_os("ZKCREDITS_WRITE_VERIFIER").is_some() {
        std::fs::write(&path, &source).expect("write the verifier");
    }
    let committed = std::fs::read_to_string(&path).expect("contracts/src/CloseVerifier.sol");
    assert!(
        committed == source,
        "contracts/src/CloseVerifier.sol is stale: regenerate it (see this file's header)"
    );
    assert!(source.contains("uint256[14] calldata input"));
    assert!(source.contains("revert InvalidProof()"));
}
