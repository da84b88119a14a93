//! Where a request proof's time goes: witness synthesis, the satisfaction check, and
//! the Groth16 prover. `cargo run --release --features profiling --example prove_phases -- KEYDIR`.

use std::time::Instant;

use ark_bn254::{Bn254, Fr};
use ark_ff::UniformRand;
use ark_groth16::Groth16;
use ark_std::rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use zkcredits_circuits::keys;
use zkcredits_circuits::prover::RequestProver;
use zkcredits_circuits::qap::SnarkjsReduction;
use zkcredits_circuits::sample::SampleNote;
use zkcredits_protocol::credits::Credits;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: prove_phases KEYDIR")?;
    let keys = keys::load_proving_key(std::path::Path::new(&dir))?;
    let prover = RequestProver::new(keys.clone())?;
    let note = SampleNote::new(1_000, Credits::new(1_000_000), 3, Credits::new(250));
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    for _ in 0..3 {
        let t = Instant::now();
        let circuit = note.circuit()?;
        let built = t.elapsed();
        let t = Instant::now();
        let assignment = prover.assignment(circuit.clone())?;
        let synth = t.elapsed();
        let t = Instant::now();
        let _ = prover.prove(circuit.clone(), &mut rng)?;
        let full = t.elapsed();
        let t = Instant::now();
        let _ = Groth16::<Bn254, SnarkjsReduction>::create_random_proof_with_reduction(
            circuit,
            &keys.proving_key,
            &mut rng,
        )?;
        let stock = t.elapsed();
        println!(
            "native inputs {built:?}, witness+check {synth:?} ({} values), our prove {full:?}, stock arkworks prove {stock:?}",
            assignment.len()
        );
        let _ = Fr::rand(&mut rng);
    }
    Ok(())
}
