//! Our circuits in circom's binary `.r1cs` format (version 1), the input of snarkjs'
//! `groth16 setup`.
//!
//! Wire `i` is index `i` of the prover's full assignment: the constant 1, the public
//! inputs in order, then the witness, so a key made for the file is a key for our
//! prover. Circom's layout puts public outputs before public inputs; we declare every
//! public value an input. Coefficients are little-endian in standard (not Montgomery)
//! form; zero coefficients are left out.

use std::io::{self, Write};

use ark_bn254::Fr;
use ark_ff::{BigInteger, PrimeField, Zero};

use crate::statement::CircuitShape;

/// The file's magic bytes.
pub const MAGIC: &[u8; 4] = b"r1cs";
/// Bytes of a field element.
const N8: usize = 32;

const HEADER_SECTION: u32 = 1;
const CONSTRAINTS_SECTION: u32 = 2;
const WIRE_TO_LABEL_SECTION: u32 = 3;

/// Writes `shape` as a circom `.r1cs` file.
pub fn write_r1cs(shape: &CircuitShape, out: &mut impl Write) -> io::Result<()> {
    let wires = shape.num_instance + shape.num_witness;
    let [a, b, c] = shape.matrices.as_slice() else {
        return Err(io::Error::other("an R1CS has three matrices"));
    };
    let as_u32 = |n: usize, what: &str| {
        u32::try_from(n).map_err(|_| io::Error::other(format!("too many {what} for .r1cs")))
    };

    out.write_all(MAGIC)?;
    out.write_all(&1u32.to_le_bytes())?; // version
    out.write_all(&3u32.to_le_bytes())?; // sections

    let mut header = Vec::with_capacity(64);
    header.extend_from_slice(&(N8 as u32).to_le_bytes());
    header.extend_from_slice(&Fr::MODULUS.to_bytes_le());
    header.extend_from_slice(&as_u32(wires, "wires")?.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes()); // public outputs
    header.extend_from_slice(&as_u32(shape.num_instance - 1, "public inputs")?.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes()); // private inputs: all witness is internal
    header.extend_from_slice(&(wires as u64).to_le_bytes()); // labels
    header.extend_from_slice(&as_u32(shape.num_constraints, "constraints")?.to_le_bytes());
    section(out, HEADER_SECTION, &header)?;

    let mut constraints = Vec::new();
    for row in 0..shape.num_constraints {
        for matrix in [a, b, c] {
            let terms: Vec<_> = matrix[row].iter().filter(|(v, _)| !v.is_zero()).collect();
            constraints.extend_from_slice(&as_u32(terms.len(), "terms")?.to_le_bytes());
            for (coeff, wire) in terms {
                constraints.extend_from_slice(&as_u32(*wire, "wires")?.to_le_bytes());
                constraints.extend_from_slice(&coeff.into_bigint().to_bytes_le());
            }
        }
    }
    section(out, CONSTRAINTS_SECTION, &constraints)?;

    let labels: Vec<u8> = (0..wires as u64).flat_map(u64::to_le_bytes).collect();
    section(out, WIRE_TO_LABEL_SECTION, &labels)
}

fn section(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&(body.len() as u64).to_le_bytes())?;
    out.write_all(body)
}
