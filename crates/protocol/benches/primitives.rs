//! The protocol primitives on the gateway's admission path, each next to the outside
//! implementation it replaced:
//! - decoding a credential, and within it the G2 membership test of the proof's `B`
//!   point (arkworks' test against `g2_subgroup`'s);
//! - Poseidon with 4 and 5 inputs, the receipt message and the EdDSA challenge
//!   (`light-poseidon`'s textbook rounds against the optimised ones);
//! - a receipt signature.
//!
//! `cargo bench -p zkcredits-protocol --bench primitives`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use ark_bn254::{Fr, G1Affine, G2Affine};
use ark_ec::short_weierstrass::SWCurveConfig;
use ark_ec::{AffineRepr, CurveGroup};
use criterion::{Criterion, criterion_group, criterion_main};
use light_poseidon::{Poseidon, PoseidonHasher};
use std::hint::black_box;
use zkcredits_protocol::eddsa::PrivateKey;
use zkcredits_protocol::wire::{Credential, ProofPoints, WireFormat};
use zkcredits_protocol::{g2_subgroup, poseidon};

fn credential() -> Credential {
    let g1 = G1Affine::generator();
    Credential {
        key_id: 1,
        root: zkcredits_protocol::merkle::Root::from_field(Fr::from(11u64)),
        nullifier: zkcredits_protocol::rln::Nullifier::from_field(Fr::from(12u64)),
        y: Fr::from(13u64),
        next_commitment: Fr::from(14u64),
        proof: ProofPoints {
            a: (g1 * Fr::from(0x1234_5678u64)).into_affine(),
            b: (G2Affine::generator() * Fr::from(0x9abc_def0u64)).into_affine(),
            c: (g1 * Fr::from(0x0fed_cba9u64)).into_affine(),
        },
    }
}

fn decode(c: &mut Criterion) {
    let credential = credential();
    let bytes = credential.encode();
    let b = credential.proof.b;

    let mut group = c.benchmark_group("g2_membership");
    group.bench_function("arkworks_6x2", |bench| {
        bench
            .iter(|| ark_bn254::g2::Config::is_in_correct_subgroup_assuming_on_curve(black_box(&b)))
    });
    group.bench_function("eprint_2022_348", |bench| {
        bench.iter(|| g2_subgroup::contains(black_box(&b)))
    });
    group.finish();

    c.bench_function("credential_decode", |bench| {
        bench.iter(|| Credential::decode(black_box(&bytes)).expect("valid"))
    });
}

fn poseidon(c: &mut Criterion) {
    let inputs: Vec<Fr> = (1..=5u64)
        .map(|i| Fr::from(i) * Fr::from(u64::MAX))
        .collect();
    let mut group = c.benchmark_group("poseidon");
    for n in [4usize, 5] {
        let mut textbook = Poseidon::<Fr>::new_circom(n).expect("arity");
        group.bench_function(format!("light_poseidon_{n}"), |bench| {
            bench.iter(|| textbook.hash(black_box(&inputs[..n])).expect("arity"))
        });
    }
    let four: [Fr; 4] = inputs[..4].try_into().expect("four");
    let five: [Fr; 5] = inputs[..5].try_into().expect("five");
    group.bench_function("optimized_4", |bench| {
        bench.iter(|| poseidon::hash(black_box(four)))
    });
    group.bench_function("optimized_5", |bench| {
        bench.iter(|| poseidon::hash(black_box(five)))
    });
    group.finish();
}

fn receipt_signature(c: &mut Criterion) {
    let key = PrivateKey::from_bytes([7u8; 32]);
    let msg = Fr::from(0xdead_beefu64);
    c.bench_function("receipt_signature", |bench| {
        bench.iter(|| key.sign(black_box(msg)))
    });
}

criterion_group!(benches, decode, poseidon, receipt_signature);
criterion_main!(benches);
