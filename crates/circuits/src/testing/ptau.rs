//! A prepared Powers of Tau file (`.ptau`, snarkjs' layout, version 1) made from KNOWN
//! `tau, alpha, beta`: the phase 1 of the CLI's ceremony test. It lives here, not in that
//! test, because this crate is built at opt-level 3 in the dev profile: its batch
//! multiplications and group FFTs are generic, instantiated where they are called, and
//! took minutes in an unoptimised test crate. Worthless for security, which
//! is the point: the test is about the phase 2 and the import, and snarkjs'
//! `powersoftau prepare phase2` takes nine CPU minutes for 2^14 on this machine, so CI
//! cannot run it. A real ceremony starts from the Perpetual Powers of Tau, whose files
//! come prepared (`docs/CEREMONY.md`).
//!
//! Layout, as snarkjs writes it: a binary container (`ptau`, version 1, sections of
//! `(type u32, size u64, bytes)`); section 1 the header (field size, base field modulus,
//! power, ceremony power); 2 `tau^i G1` for `i < 2^(p+1) - 1`; 3 `tau^i G2`, 4
//! `alpha tau^i G1`, 5 `beta tau^i G1` for `i < 2^p`; 6 `beta G2`; 7 the contributions
//! (none); 12 to 15 the same four in Lagrange form, for every domain size `2^l` with
//! `l <= p`, and for section 12 also `l = p + 1`, where snarkjs interpolates the
//! `2^(p+1) - 1` powers it has with a zero in the last place. Points are uncompressed
//! affine, little-endian Montgomery coordinates, the identity all zeros.

use std::io::{self, Write};

use ark_bn254::{Fq, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::scalar_mul::BatchMulPreprocessing;
use ark_ec::{AffineRepr, PrimeGroup};
use ark_ff::{BigInteger, Field, PrimeField};
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};

/// Writes a prepared `.ptau` of `2^power` for the secret `(tau, alpha, beta)`.
///
/// `out` is a trait object, not a type parameter: a generic function would be compiled,
/// with every multiplication and FFT in it, in the unoptimised test crate that calls it.
pub fn write_prepared_ptau(
    out: &mut dyn Write,
    power: u32,
    tau: Fr,
    alpha: Fr,
    beta: Fr,
) -> io::Result<()> {
    let n = 1usize << power;
    let powers: Vec<Fr> = std::iter::successors(Some(Fr::from(1u64)), |p| Some(*p * tau))
        .take(2 * n - 1)
        .collect();
    let g1 = BatchMulPreprocessing::new(G1Projective::generator(), 4 * n);
    let g2 = BatchMulPreprocessing::new(G2Projective::generator(), 2 * n);
    let scaled = |by: Fr, v: &[Fr]| v.iter().map(|s| by * s).collect::<Vec<_>>();

    // Lagrange coefficients for every level; the last level as snarkjs computes it.
    let mut lagrange = Vec::new();
    for l in 0..=power + 1 {
        let m = 1usize << l;
        let domain = Radix2EvaluationDomain::<Fr>::new(m).expect("a power of two below 2^28");
        let mut coefficients = domain.evaluate_all_lagrange_coefficients(tau);
        if l == power + 1 {
            // snarkjs interpolates (tau^0, ..., tau^(m-2), 0): coefficient j loses
            // tau^(m-1) w^j / m (w^(-j(m-1)) = w^j).
            let correction = powers[m - 2] * tau * Fr::from(m as u64).inverse().expect("m > 0");
            let w = domain.group_gen();
            let mut wj = Fr::from(1u64);
            for c in &mut coefficients {
                *c -= correction * wj;
                wj *= w;
            }
        }
        lagrange.push(coefficients);
    }
    let lagrange_upto = |last: u32| {
        lagrange[..=last as usize]
            .iter()
            .flatten()
            .copied()
            .collect::<Vec<_>>()
    };

    out.write_all(b"ptau")?;
    out.write_all(&1u32.to_le_bytes())?;
    out.write_all(&11u32.to_le_bytes())?;

    let mut header = Vec::new();
    header.extend_from_slice(&32u32.to_le_bytes());
    header.extend_from_slice(&Fq::MODULUS.to_bytes_le());
    header.extend_from_slice(&power.to_le_bytes());
    header.extend_from_slice(&power.to_le_bytes());
    section(out, 1, &header)?;

    section(out, 2, &g1_bytes(&g1.batch_mul(&powers)))?;
    section(out, 3, &g2_bytes(&g2.batch_mul(&powers[..n])))?;
    section(
        out,
        4,
        &g1_bytes(&g1.batch_mul(&scaled(alpha, &powers[..n]))),
    )?;
    section(
        out,
        5,
        &g1_bytes(&g1.batch_mul(&scaled(beta, &powers[..n]))),
    )?;
    section(out, 6, &g2_bytes(&g2.batch_mul(&[beta])))?;
    section(out, 7, &0u32.to_le_bytes())?;
    section(out, 12, &g1_bytes(&g1.batch_mul(&lagrange_upto(power + 1))))?;
    let upto = lagrange_upto(power);
    section(out, 13, &g2_bytes(&g2.batch_mul(&upto)))?;
    section(out, 14, &g1_bytes(&g1.batch_mul(&scaled(alpha, &upto))))?;
    section(out, 15, &g1_bytes(&g1.batch_mul(&scaled(beta, &upto))))?;
    Ok(())
}

fn section(out: &mut dyn Write, kind: u32, body: &[u8]) -> io::Result<()> {
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&(body.len() as u64).to_le_bytes())?;
    out.write_all(body)
}

fn fq_bytes(out: &mut Vec<u8>, x: &Fq) {
    // The Montgomery form arkworks keeps internally is the one snarkjs stores.
    out.extend_from_slice(&x.0.to_bytes_le());
}

fn g1_bytes(points: &[G1Affine]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * 64);
    for p in points {
        match p.xy() {
            Some((x, y)) => {
                fq_bytes(&mut out, &x);
                fq_bytes(&mut out, &y);
            }
            None => out.extend_from_slice(&[0; 64]),
        }
    }
    out
}

fn g2_bytes(points: &[G2Affine]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * 128);
    for p in points {
        match p.xy() {
            Some((x, y)) => {
                for c in [x.c0, x.c1, y.c0, y.c1] {
                    fq_bytes(&mut out, &c);
                }
            }
            None => out.extend_from_slice(&[0; 128]),
        }
    }
    out
}
