//! Where a verification's time goes. `cargo run --release --features profiling --example verify_phases -- KEYDIR`.

use std::time::Instant;

use ark_bn254::{Bn254, G1Projective};
use ark_ec::pairing::Pairing;
use ark_ec::{AffineRepr, CurveGroup};
use ark_std::rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use zkcredits_circuits::keys;
use zkcredits_circuits::prover::RequestProver;
use zkcredits_circuits::sample::SampleNote;
use zkcredits_protocol::credits::Credits;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: verify_phases KEYDIR")?;
    let keys = keys::load_proving_key(std::path::Path::new(&dir))?;
    let vk = keys.proving_key.vk.clone();
    let prover = RequestProver::new(keys)?;
    let note = SampleNote::new(1_000, Credits::new(1_000_000), 3, Credits::new(250));
    let circuit = note.circuit()?;
    let public = circuit.public.to_field_elements();
    let proof = prover.prove(circuit, &mut ChaCha20Rng::from_seed([1; 32]))?;
    let pvk = ark_groth16::prepare_verifying_key(&vk);
    let n = 200;
    let t = Instant::now();
    let mut acc = G1Projective::default();
    for _ in 0..n {
        acc = vk.gamma_abc_g1[1..]
            .iter()
            .zip(&public)
            .fold(vk.gamma_abc_g1[0].into_group(), |a, (b, x)| a + *b * x);
    }
    println!("inputs (GLV): {:?}", t.elapsed() / n);
    let t = Instant::now();
    let mut ml = None;
    for _ in 0..n {
        ml = Some(Bn254::multi_miller_loop(
            [proof.a, acc.into_affine(), proof.c],
            [
                <Bn254 as Pairing>::G2Prepared::from(proof.b),
                pvk.gamma_g2_neg_pc.clone(),
                pvk.delta_g2_neg_pc.clone(),
            ],
        ));
    }
    println!("miller loops (incl. preparing B): {:?}", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        let _ = Bn254::final_exponentiation(ml.ok_or("ml")?);
    }
    println!("final exponentiation: {:?}", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        let _ = <Bn254 as Pairing>::G2Prepared::from(proof.b);
    }
    println!("preparing B alone: {:?}", t.elapsed() / n);
    Ok(())
}
