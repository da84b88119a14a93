//! A reader for snarkjs' Groth16 `.zkey` files (the output of `snarkjs zkey contribute`,
//! `zkey beacon` and `groth16 setup`), written from snarkjs' file layout:
//!
//! - a binary container: magic `zkey`, version 1, a section count, then sections of
//!   `(type: u32, size: u64, bytes)`, all little-endian;
//! - section 1: the protocol (1 is Groth16); section 2: the field sizes and moduli,
//!   `nVars`, `nPublic`, the domain size, then `alpha_1, beta_1, beta_2, gamma_2,
//!   delta_1, delta_2`; 3: `IC` (`nPublic + 1` points); 4: the `A` and `B` coefficients
//!   snarkjs proves with; 5, 6, 7: the `A`, `B` in G1 and `B` in G2 queries (`nVars`
//!   each); 8: the `C` query of the private wires; 9: the `H` query (domain size);
//!   10: the phase 2 transcript (the circuit hash and every contribution).
//!
//! Base field elements are little-endian Montgomery form (snarkjs and arkworks both use
//! `R = 2^256`); the point at infinity is all zeros. Coefficients in section 4 carry an
//! extra factor `R`. Every point is checked to be on its curve and in its subgroup: the
//! file comes from a ceremony, not from us.

use std::collections::BTreeMap;

use ark_bn254::{Bn254, Fq, Fq2, Fr, G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_ff::{BigInt, BigInteger, PrimeField};
use ark_groth16::{ProvingKey, VerifyingKey};
use blake2::{Blake2b512, Digest};
use rayon::prelude::*;

/// Why a `.zkey` file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZkeyError {
    /// The file ends inside a header or section.
    #[error("the file is truncated ({0})")]
    Truncated(&'static str),
    /// Not a zkey file, or a version this reader does not know.
    #[error("not a snarkjs .zkey file (version 1): {0}")]
    NotZkey(&'static str),
    /// A zkey for another protocol (PLONK, FFLONK).
    #[error("the key is for protocol {0}, not Groth16 (1)")]
    NotGroth16(u32),
    /// A zkey over another curve.
    #[error("the key is not over BN254 (bn128): {0}")]
    WrongCurve(&'static str),
    /// A section is missing, repeated, or of the wrong length.
    #[error("section {section}: {reason}")]
    Section {
        /// The section type.
        section: u32,
        /// What is wrong.
        reason: String,
    },
    /// A point is not on its curve or not in its subgroup.
    #[error("{what} is not a valid point (not on the curve or not in the subgroup)")]
    BadPoint {
        /// Which point.
        what: String,
    },
}

/// One contribution to the phase 2, as snarkjs records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contribution {
    /// The name the contributor gave (`--name`), if any.
    pub name: Option<String>,
    /// The contribution hash snarkjs prints (`zkey contribute`, `zkey verify`): BLAKE2b-512
    /// of the contribution's public key (`deltaAfter`, `g1_s`, `g1_sx`, `g2_spx`, each
    /// uncompressed big-endian) and its transcript hash.
    pub hash: Vec<u8>,
    /// 0 for a contribution, 1 for a beacon.
    pub kind: u32,
}

/// A `.zkey` file's key and transcript.
#[derive(Clone, Debug)]
pub struct Zkey {
    /// The proving key (with its verifying key), in arkworks' layout.
    pub proving_key: ProvingKey<Bn254>,
    /// `nVars`: wires of the circuit, the constant 1 included.
    pub num_vars: usize,
    /// `nPublic`: public inputs (the constant 1 not included).
    pub num_public: usize,
    /// The QAP domain size.
    pub domain_size: usize,
    /// Section 4: `(matrix, constraint, wire, coefficient)`, matrix 0 for `A` and 1 for
    /// `B`, including the rows snarkjs adds for the public inputs.
    pub coefficients: Vec<(u32, u32, u32, Fr)>,
    /// The circuit hash snarkjs computed at `groth16 setup` (64 bytes, BLAKE2b).
    pub circuit_hash: Vec<u8>,
    /// The phase 2 contributions in order.
    pub contributions: Vec<Contribution>,
}

const MAGIC: &[u8; 4] = b"zkey";
const G1_LEN: usize = 64;
const G2_LEN: usize = 128;

impl Zkey {
    /// Reads and checks a `.zkey` file's bytes.
    pub fn read(bytes: &[u8]) -> Result<Self, ZkeyError> {
        let sections = sections(bytes)?;
        let section = |id: u32| {
            sections.get(&id).copied().ok_or(ZkeyError::Section {
                section: id,
                reason: "missing".into(),
            })
        };

        let mut header = Cursor::new(section(1)?, 1);
        let protocol = header.u32()?;
        if protocol != 1 {
            return Err(ZkeyError::NotGroth16(protocol));
        }

        let mut groth = Cursor::new(section(2)?, 2);
        if groth.u32()? != 32 || groth.take(32)? != Fq::MODULUS.to_bytes_le().as_slice() {
            return Err(ZkeyError::WrongCurve("base field"));
        }
        if groth.u32()? != 32 || groth.take(32)? != Fr::MODULUS.to_bytes_le().as_slice() {
            return Err(ZkeyError::WrongCurve("scalar field"));
        }
        let num_vars = groth.u32()? as usize;
        let num_public = groth.u32()? as usize;
        let domain_size = groth.u32()? as usize;
        if num_public >= num_vars || !domain_size.is_power_of_two() {
            return Err(ZkeyError::Section {
                section: 2,
                reason: format!(
                    "inconsistent sizes: {num_vars} wires, {num_public} public, domain {domain_size}"
                ),
            });
        }
        let alpha_g1 = g1(groth.take(G1_LEN)?, "alpha_1")?;
        let beta_g1 = g1(groth.take(G1_LEN)?, "beta_1")?;
        let beta_g2 = g2(groth.take(G2_LEN)?, "beta_2")?;
        let gamma_g2 = g2(groth.take(G2_LEN)?, "gamma_2")?;
        let delta_g1 = g1(groth.take(G1_LEN)?, "delta_1")?;
        let delta_g2 = g2(groth.take(G2_LEN)?, "delta_2")?;

        let ic = g1_vector(section(3)?, 3, num_public + 1, "IC")?;
        let coefficients = read_coefficients(section(4)?)?;
        let a_query = g1_vector(section(5)?, 5, num_vars, "A")?;
        let b_g1_query = g1_vector(section(6)?, 6, num_vars, "B1")?;
        let b_g2_query = g2_vector(section(7)?, 7, num_vars, "B2")?;
        let l_query = g1_vector(section(8)?, 8, num_vars - num_public - 1, "C")?;
        let h_query = g1_vector(section(9)?, 9, domain_size, "H")?;
        let (circuit_hash, contributions) = read_transcript(section(10)?)?;

        let vk = VerifyingKey {
            alpha_g1,
            beta_g2,
            gamma_g2,
            delta_g2,
            gamma_abc_g1: ic,
        };
        Ok(Self {
            proving_key: ProvingKey {
                vk,
                beta_g1,
                delta_g1,
                a_query,
                b_g1_query,
                b_g2_query,
                h_query,
                l_query,
            },
            num_vars,
            num_public,
            domain_size,
            coefficients,
            circuit_hash,
            contributions,
        })
    }
}

/// The sections of a binary container, by type.
fn sections(bytes: &[u8]) -> Result<BTreeMap<u32, &[u8]>, ZkeyError> {
    if bytes.len() < 12 || &bytes[..4] != MAGIC {
        return Err(ZkeyError::NotZkey("magic bytes"));
    }
    let mut at = Cursor::new(&bytes[4..], 0);
    if at.u32()? != 1 {
        return Err(ZkeyError::NotZkey("version"));
    }
    let count = at.u32()?;
    let mut sections = BTreeMap::new();
    for _ in 0..count {
        let kind = at.u32()?;
        let len = usize::try_from(at.u64()?).map_err(|_| ZkeyError::Truncated("section"))?;
        let body = at.take(len)?;
        if sections.insert(kind, body).is_some() {
            return Err(ZkeyError::Section {
                section: kind,
                reason: "appears twice".into(),
            });
        }
    }
    Ok(sections)
}

fn read_coefficients(body: &[u8]) -> Result<Vec<(u32, u32, u32, Fr)>, ZkeyError> {
    let mut at = Cursor::new(body, 4);
    let count = at.u32()? as usize;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (matrix, constraint, wire) = (at.u32()?, at.u32()?, at.u32()?);
        // Stored as coefficient * R^2 in Montgomery form, that is coefficient * R.
        let stored =
            bigint(at.take(32)?)
                .filter(|v| *v < Fr::MODULUS)
                .ok_or(ZkeyError::Section {
                    section: 4,
                    reason: "a coefficient is not below the modulus".into(),
                })?;
        let once = Fr::new_unchecked(stored).into_bigint();
        out.push((matrix, constraint, wire, Fr::new_unchecked(once)));
    }
    at.finish()?;
    Ok(out)
}

fn read_transcript(body: &[u8]) -> Result<(Vec<u8>, Vec<Contribution>), ZkeyError> {
    let mut at = Cursor::new(body, 10);
    let circuit_hash = at.take(64)?.to_vec();
    let count = at.u32()?;
    let mut contributions = Vec::new();
    for i in 0..count {
        // deltaAfter and the proof of knowledge of the contribution's delta.
        let what = format!("contribution {i}");
        let delta_after = g1(at.take(G1_LEN)?, &what)?;
        let g1_s = g1(at.take(G1_LEN)?, &what)?;
        let g1_sx = g1(at.take(G1_LEN)?, &what)?;
        let g2_spx = g2(at.take(G2_LEN)?, &what)?;
        let transcript = at.take(64)?;
        let mut hasher = Blake2b512::new();
        for p in [delta_after, g1_s, g1_sx] {
            hasher.update(g1_uncompressed(&p));
        }
        hasher.update(g2_uncompressed(&g2_spx));
        hasher.update(transcript);
        let hash = hasher.finalize().to_vec();
        let kind = at.u32()?;
        let params_len = at.u32()? as usize;
        let mut params = Cursor::new(at.take(params_len)?, 10);
        let mut name = None;
        while !params.is_empty() {
            match params.take(1)?[0] {
                1 => {
                    let len = params.take(1)?[0] as usize;
                    name = Some(String::from_utf8_lossy(params.take(len)?).into_owned());
                }
                2 => {
                    params.take(1)?; // the beacon's iteration exponent
                }
                3 => {
                    let len = params.take(1)?[0] as usize;
                    params.take(len)?; // the beacon hash
                }
                other => {
                    return Err(ZkeyError::Section {
                        section: 10,
                        reason: format!("unknown contribution parameter {other}"),
                    });
                }
            }
        }
        contributions.push(Contribution { name, hash, kind });
    }
    at.finish()?;
    Ok((circuit_hash, contributions))
}

/// A G1 point as snarkjs hashes it (`toRprUncompressed`): `x || y`, big-endian.
fn g1_uncompressed(p: &G1Affine) -> Vec<u8> {
    let mut out = Vec::with_capacity(G1_LEN);
    for c in [p.x, p.y] {
        out.extend_from_slice(&c.into_bigint().to_bytes_be());
    }
    out
}

/// A G2 point as snarkjs hashes it: `x || y`, each `c1 || c0`, big-endian.
fn g2_uncompressed(p: &G2Affine) -> Vec<u8> {
    let mut out = Vec::with_capacity(G2_LEN);
    for c in [p.x.c1, p.x.c0, p.y.c1, p.y.c0] {
        out.extend_from_slice(&c.into_bigint().to_bytes_be());
    }
    out
}

fn bigint(bytes: &[u8]) -> Option<BigInt<4>> {
    let mut limbs = [0u64; 4];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
        *limb = u64::from_le_bytes(chunk.try_into().ok()?);
    }
    Some(BigInt::new(limbs))
}

fn fq(bytes: &[u8]) -> Option<Fq> {
    let value = bigint(bytes)?;
    (value < Fq::MODULUS).then(|| Fq::new_unchecked(value))
}

fn bad(what: &str) -> ZkeyError {
    ZkeyError::BadPoint { what: what.into() }
}

fn g1(bytes: &[u8], what: &str) -> Result<G1Affine, ZkeyError> {
    if bytes.iter().all(|b| *b == 0) {
        return Ok(G1Affine::zero());
    }
    let (x, y) = (fq(&bytes[..32]), fq(&bytes[32..64]));
    let (Some(x), Some(y)) = (x, y) else {
        return Err(bad(what));
    };
    let p = G1Affine::new_unchecked(x, y);
    if p.is_on_curve() && p.is_in_correct_subgroup_assuming_on_curve() {
        Ok(p)
    } else {
        Err(bad(what))
    }
}

fn g2(bytes: &[u8], what: &str) -> Result<G2Affine, ZkeyError> {
    if bytes.iter().all(|b| *b == 0) {
        return Ok(G2Affine::zero());
    }
    let coords: Option<Vec<Fq>> = bytes.chunks_exact(32).map(fq).collect();
    let Some([x0, x1, y0, y1]) = coords.and_then(|c| <[Fq; 4]>::try_from(c).ok()) else {
        return Err(bad(what));
    };
    let p = G2Affine::new_unchecked(Fq2::new(x0, x1), Fq2::new(y0, y1));
    if p.is_on_curve() && p.is_in_correct_subgroup_assuming_on_curve() {
        Ok(p)
    } else {
        Err(bad(what))
    }
}

fn g1_vector(
    body: &[u8],
    section: u32,
    count: usize,
    what: &str,
) -> Result<Vec<G1Affine>, ZkeyError> {
    points(body, section, count, G1_LEN, |b, i| {
        g1(b, &format!("{what}[{i}]"))
    })
}

fn g2_vector(
    body: &[u8],
    section: u32,
    count: usize,
    what: &str,
) -> Result<Vec<G2Affine>, ZkeyError> {
    points(body, section, count, G2_LEN, |b, i| {
        g2(b, &format!("{what}[{i}]"))
    })
}

fn points<P: Send>(
    body: &[u8],
    section: u32,
    count: usize,
    len: usize,
    decode: impl Fn(&[u8], usize) -> Result<P, ZkeyError> + Sync,
) -> Result<Vec<P>, ZkeyError> {
    if body.len() != count * len {
        return Err(ZkeyError::Section {
            section,
            reason: format!("{} bytes, expected {count} points of {len}", body.len()),
        });
    }
    body.par_chunks_exact(len)
        .enumerate()
        .map(|(i, b)| decode(b, i))
        .collect()
}

/// A little-endian reader over one section.
struct Cursor<'a> {
    bytes: &'a [u8],
    section: u32,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], section: u32) -> Self {
        Self { bytes, section }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ZkeyError> {
        if self.bytes.len() < n {
            return Err(ZkeyError::Truncated(match self.section {
                0 => "container",
                1 | 2 => "header",
                4 => "coefficients",
                10 => "contributions",
                _ => "points",
            }));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, ZkeyError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, ZkeyError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn finish(self) -> Result<(), ZkeyError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(ZkeyError::Section {
                section: self.section,
                reason: format!("{} bytes left over", self.bytes.len()),
            })
        }
    }
}
