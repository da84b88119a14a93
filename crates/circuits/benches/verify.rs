//! Groth16 verification as the gateway runs it: one proof alone, and batches of the
//! sizes its verifier threads collect under load (a batch pays one final
//! exponentiation and three fixed Miller-loop pairs, so small batches cost more per
//! proof than large ones).
//!
//! Each runs on one thread, as a gateway verifier thread does.
//!
//! `cargo bench -p zkcredits-circuits --bench verify`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use ark_bn254::{Bn254, G1Projective, G2Projective};
use ark_ec::CurveGroup;
use ark_ec::pairing::Pairing;
use ark_groth16::Proof;
use ark_std::UniformRand;
use ark_std::rand::SeedableRng;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use std::hint::black_box;
use zkcredits_circuits::keys;
use zkcredits_circuits::prover::RequestProver;
use zkcredits_circuits::sample::SampleNote;
use zkcredits_circuits::verifier::Verifier;
use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;

/// Distinct real proofs; batches repeat them (the cost does not depend on which).
const PROOFS: usize = 8;

/// A proof with its public inputs.
type Statement = (Proof<Bn254>, Vec<Fr>);

fn proofs() -> (Verifier, Vec<Statement>) {
    let dir = zkcredits_circuits::testing::dev_keys_dir();
    let keys = keys::load_proving_key(dir).expect("load");
    let verifier = Verifier::new(keys.verifying_key());
    let prover = RequestProver::new(keys).expect("prover");
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let mut note = SampleNote::new(16, Credits::new(1_000_000), 3, Credits::new(250));
    let proofs = (0..PROOFS as u64)
        .map(|i| {
            note.x = Fr::from(i + 1);
            let circuit = note.circuit().expect("circuit");
            let public = circuit.public.to_field_elements();
            (prover.prove(circuit, &mut rng).expect("prove"), public)
        })
        .collect();
    (verifier, proofs)
}

fn verify(c: &mut Criterion) {
    let (verifier, proofs) = proofs();
    // As in the gateway: each verifier thread runs arkworks in a rayon pool of one thread.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let mut group = c.benchmark_group("verify");
    group.sample_size(20);
    let (proof, public) = &proofs[0];
    group.throughput(Throughput::Elements(1));
    group.bench_function("single", |b| {
        pool.install(|| b.iter(|| assert!(verifier.verify(black_box(proof), black_box(public)))))
    });
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    for size in [2usize, 8, 32, 64] {
        let batch: Vec<(&Proof<Bn254>, &[Fr])> = proofs
            .iter()
            .cycle()
            .take(size)
            .map(|(p, x)| (p, x.as_slice()))
            .collect();
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::new("batch", size), &batch, |b, batch| {
            pool.install(|| b.iter(|| assert!(verifier.verify_batch(black_box(batch), &mut rng))))
        });
    }
    group.finish();
}

/// The pieces a batch is made of, as arkworks computes them: what one more proof adds
/// (preparing its `B`, one more Miller-loop pair) and what every batch pays once (the
/// final exponentiation).
fn parts(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let p = G1Projective::rand(&mut rng).into_affine();
    let q = G2Projective::rand(&mut rng).into_affine();
    let prepared: <Bn254 as Pairing>::G2Prepared = q.into();
    let mut group = c.benchmark_group("pairing_parts");
    group.sample_size(20);
    group.bench_function("g2_prepare", |b| {
        b.iter(|| <Bn254 as Pairing>::G2Prepared::from(black_box(q)))
    });
    group.bench_function("miller_loop_one_pair", |b| {
        b.iter(|| Bn254::multi_miller_loop([black_box(p)], [prepared.clone()]))
    });
    let f = Bn254::multi_miller_loop([p], [prepared.clone()]);
    group.bench_function("final_exponentiation", |b| {
        b.iter(|| Bn254::final_exponentiation(black_box(f)))
    });
    group.finish();
}

criterion_group!(benches, verify, parts);
criterion_main!(benches);
