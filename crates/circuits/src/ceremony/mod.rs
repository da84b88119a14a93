//! Keys from a multi-party trusted setup run with snarkjs (`docs/CEREMONY.md`).
//!
//! We do not run a ceremony of our own: the circuits go out in circom's `.r1cs` format
//! ([`r1cs::write_r1cs`]), a Powers of Tau and snarkjs' phase 2 make the final `.zkey`,
//! and [`import_zkey`] reads it back, checks that it is a key for exactly our circuit,
//! and turns it into the project's key files (`keys.rs`) with the transcript pinned in
//! the manifest. The prover uses snarkjs' QAP reduction (`qap.rs`), so the imported key
//! proves as fast as a development key.

pub mod r1cs;
pub mod zkey;

use std::collections::BTreeSet;

use ark_bn254::{Bn254, Fr, G1Affine, G2Affine};
use ark_ec::{AffineRepr, pairing::Pairing};
use ark_ff::{BigInteger, One, PrimeField, Zero};
use ark_groth16::ProvingKey;
use ark_poly::{EvaluationDomain, GeneralEvaluationDomain};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::statement::{CircuitShape, StatementKind};
use zkey::{Zkey, ZkeyError};

/// What the manifest records about the ceremony a key came from: enough for anyone to
/// check it against the published transcript (`docs/CEREMONY.md`, "Verifying a
/// deployment").
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CeremonyRecord {
    /// The tool that ran the phase 2.
    pub tool: String,
    /// The final `.zkey` file's name when it was imported.
    pub zkey_file: String,
    /// SHA-256 of the final `.zkey` file: the whole transcript of the phase 2.
    pub zkey_sha256: String,
    /// The circuit hash snarkjs printed at `groth16 setup` (BLAKE2b-512, hex).
    pub circuit_hash: String,
    /// Each contribution in order: its name and the hash snarkjs printed for it.
    pub contributions: Vec<ContributionRecord>,
}

/// One phase 2 contribution.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContributionRecord {
    /// The name the contributor gave.
    pub name: String,
    /// `contribution` or `beacon`.
    pub kind: String,
    /// The contribution hash (BLAKE2b-512, hex), as `snarkjs zkey verify` prints it.
    pub hash: String,
}

/// Why a `.zkey` cannot be imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CeremonyError {
    /// The file is not a valid Groth16 zkey over BN254.
    #[error(transparent)]
    Zkey(#[from] ZkeyError),
    /// The key was made for another circuit (or another version of ours).
    #[error("the key is not for {circuit}: {reason}")]
    OtherCircuit {
        /// Our circuit's id.
        circuit: &'static str,
        /// The first difference found.
        reason: String,
    },
    /// The key is degenerate or internally inconsistent.
    #[error("the key is malformed: {0}")]
    Malformed(String),
    /// The circuit could not be synthesised.
    #[error(transparent)]
    Circuit(#[from] crate::CircuitError),
}

/// A ceremony key read and checked against statement `C`.
#[derive(Clone, Debug)]
pub struct ImportedKey {
    /// The proving key, in arkworks' layout.
    pub proving_key: ProvingKey<Bn254>,
    /// The transcript to pin in the manifest.
    pub ceremony: CeremonyRecord,
}

/// Reads a final `.zkey` for statement `kind` and checks it is a key for exactly that
/// circuit: the sizes, every `A` and `B` coefficient of the QAP (the `C` query is
/// covered by the proof the caller makes with the key before trusting it), and the
/// consistency of the key's G1 and G2 elements.
pub fn import_zkey(
    kind: StatementKind,
    bytes: &[u8],
    file_name: &str,
) -> Result<ImportedKey, CeremonyError> {
    let zkey = Zkey::read(bytes)?;
    let shape = kind.shape()?;
    check_shape(kind, &zkey, &shape)?;
    check_consistency(&zkey.proving_key)?;
    let ceremony = CeremonyRecord {
        tool: "snarkjs groth16 phase 2".into(),
        zkey_file: file_name.into(),
        zkey_sha256: hex::encode(Sha256::digest(bytes)),
        circuit_hash: hex::encode(&zkey.circuit_hash),
        contributions: zkey
            .contributions
            .iter()
            .map(|c| ContributionRecord {
                name: c.name.clone().unwrap_or_default(),
                kind: if c.kind == 1 {
                    "beacon"
                } else {
                    "contribution"
                }
                .into(),
                hash: hex::encode(&c.hash),
            })
            .collect(),
    };
    Ok(ImportedKey {
        proving_key: zkey.proving_key,
        ceremony,
    })
}

fn check_shape(
    kind: StatementKind,
    zkey: &Zkey,
    shape: &CircuitShape,
) -> Result<(), CeremonyError> {
    let other = |reason: String| CeremonyError::OtherCircuit {
        circuit: kind.circuit_id(),
        reason,
    };
    let vars = shape.num_instance + shape.num_witness;
    if zkey.num_vars != vars || zkey.num_public + 1 != shape.num_instance {
        return Err(other(format!(
            "it has {} wires and {} public inputs, the circuit {} and {}",
            zkey.num_vars,
            zkey.num_public,
            vars,
            shape.num_instance - 1
        )));
    }
    let domain = GeneralEvaluationDomain::<Fr>::new(shape.num_constraints + shape.num_instance)
        .map(|d| d.size())
        .unwrap_or_default();
    if zkey.domain_size != domain {
        return Err(other(format!(
            "its domain has {} points, the circuit's {domain}",
            zkey.domain_size
        )));
    }
    let expected = expected_coefficients(shape);
    let found: BTreeSet<_> = zkey
        .coefficients
        .iter()
        .filter(|(_, _, _, v)| !v.is_zero())
        .map(|(m, c, w, v)| (*m, *c, *w, v.into_bigint().to_bytes_le()))
        .collect();
    if found.len() != zkey.coefficients.iter().filter(|c| !c.3.is_zero()).count() {
        return Err(other("it lists a coefficient twice".into()));
    }
    if let Some(missing) = expected.difference(&found).next() {
        return Err(other(format!(
            "the {} coefficient of wire {} in constraint {} differs",
            if missing.0 == 0 { "A" } else { "B" },
            missing.2,
            missing.1
        )));
    }
    if let Some(extra) = found.difference(&expected).next() {
        return Err(other(format!(
            "it has an {} coefficient for wire {} in constraint {} that the circuit lacks",
            if extra.0 == 0 { "A" } else { "B" },
            extra.2,
            extra.1
        )));
    }
    if zkey.proving_key.h_query.len() != domain
        || zkey.proving_key.l_query.len() != shape.num_witness
    {
        return Err(other("its H or C query has the wrong length".into()));
    }
    Ok(())
}

type Coefficient = (u32, u32, u32, Vec<u8>);

/// The `A` and `B` coefficients snarkjs derives from our `.r1cs`, plus the rows it adds
/// for the instance variables (constraint `num_constraints + j`, wire `j`, in `A`).
fn expected_coefficients(shape: &CircuitShape) -> BTreeSet<Coefficient> {
    let mut out = BTreeSet::new();
    for (m, matrix) in shape.matrices.iter().take(2).enumerate() {
        for (row, terms) in matrix.iter().enumerate() {
            for (coeff, wire) in terms.iter().filter(|(v, _)| !v.is_zero()) {
                out.insert((
                    m as u32,
                    row as u32,
                    *wire as u32,
                    coeff.into_bigint().to_bytes_le(),
                ));
            }
        }
    }
    for j in 0..shape.num_instance {
        out.insert((
            0,
            (shape.num_constraints + j) as u32,
            j as u32,
            Fr::one().into_bigint().to_bytes_le(),
        ));
    }
    out
}

/// The key's G1 and G2 copies of `beta` and `delta` are the same scalars, and none of
/// `alpha, beta, gamma, delta` is the identity (a zero `delta` would let anyone prove).
fn check_consistency(pk: &ProvingKey<Bn254>) -> Result<(), CeremonyError> {
    let vk = &pk.vk;
    if vk.alpha_g1.is_zero()
        || vk.beta_g2.is_zero()
        || vk.gamma_g2.is_zero()
        || vk.delta_g2.is_zero()
        || pk.delta_g1.is_zero()
    {
        return Err(CeremonyError::Malformed(
            "alpha, beta, gamma or delta is the identity".into(),
        ));
    }
    let same = |p1: G1Affine, p2: G2Affine| {
        Bn254::pairing(p1, G2Affine::generator()) == Bn254::pairing(G1Affine::generator(), p2)
    };
    if !same(pk.beta_g1, vk.beta_g2) {
        return Err(CeremonyError::Malformed("beta_1 and beta_2 differ".into()));
    }
    if !same(pk.delta_g1, vk.delta_g2) {
        return Err(CeremonyError::Malformed(
            "delta_1 and delta_2 differ".into(),
        ));
    }
    Ok(())
}
