//! Per-note precomputation for the prover (the client's fast path).
//!
//! About half of a request's witness (`k, D, E`, the Merkle path and every value of the
//! membership proof) is the same for every request of a note under one root. Their share
//! of four of the prover's five multi-scalar multiplications (A, B in G1 and G2, and
//! the witness part of C) is computed once per (note, root) as a [`NotePrecomputation`]
//! and added to each proof; only the per-request values, the quotient `h` and fresh
//! blinding `r, s` are computed per proof. The result is an ordinary Groth16 proof,
//! as zero-knowledge and unlinkable as any other (the blinding is fresh every time).
//!
//! A precomputation is derived from secrets: keep it like the note secret. It carries a
//! hash of the fixed values it was made from; a proof made with a precomputation for
//! another note, root or key is refused before any work ([`CircuitError::StalePrecomputation`]).

use ark_bn254::{Bn254, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{CurveGroup, VariableBaseMSM};
use ark_ff::{PrimeField, UniformRand, Zero};
use ark_groth16::Proof;
use ark_groth16::r1cs_to_qap::R1CSToQAP;
use ark_poly::GeneralEvaluationDomain;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Compress, Validate};
use ark_std::rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::error::CircuitError;
use crate::prover::{Prover, ProverCore, RequestProver};
use crate::qap::SnarkjsReduction;
use crate::request::RequestCircuit;
use crate::statement::Statement;

/// The fixed part of a note's proofs under one root and one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotePrecomputation {
    a: G1Projective,
    b_g1: G1Projective,
    b_g2: G2Projective,
    l: G1Projective,
    /// SHA-256 of the fixed witness values and the verifying key: what this was made for.
    fingerprint: [u8; 32],
}

impl NotePrecomputation {
    /// No precomputed part: the plain prover.
    fn none() -> Self {
        Self {
            a: G1Projective::zero(),
            b_g1: G1Projective::zero(),
            b_g2: G2Projective::zero(),
            l: G1Projective::zero(),
            fingerprint: [0; 32],
        }
    }

    /// What this precomputation was made for (a hash; reveals nothing about the note).
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The length of [`NotePrecomputation::to_bytes`]: three uncompressed G1 points, one
    /// uncompressed G2 point and the fingerprint.
    pub const ENCODED_LEN: usize = 3 * 64 + 128 + 32;

    /// Encodes the precomputation for a cache. The bytes are as secret as the note:
    /// store them encrypted.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::ENCODED_LEN);
        // Serialising into a Vec cannot fail.
        for p in [self.a, self.b_g1, self.l] {
            p.into_affine()
                .serialize_uncompressed(&mut out)
                .expect("writing to a Vec");
        }
        self.b_g2
            .into_affine()
            .serialize_uncompressed(&mut out)
            .expect("writing to a Vec");
        out.extend_from_slice(&self.fingerprint);
        out
    }

    /// Decodes [`NotePrecomputation::to_bytes`], checking that every point is on its
    /// curve and in its subgroup. Whether it fits a note, root and key is checked when
    /// it is used ([`RequestProver::prove_precomputed`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CircuitError> {
        let bad = |what: &str| CircuitError::KeyFile {
            path: "precomputation".into(),
            reason: format!("{what} does not decode"),
        };
        if bytes.len() != Self::ENCODED_LEN {
            return Err(bad("length"));
        }
        let g1 = |at: usize, what: &str| {
            G1Affine::deserialize_with_mode(&bytes[at..at + 64], Compress::No, Validate::Yes)
                .map(G1Projective::from)
                .map_err(|_| bad(what))
        };
        let b_g2 = G2Affine::deserialize_with_mode(&bytes[192..320], Compress::No, Validate::Yes)
            .map(G2Projective::from)
            .map_err(|_| bad("b_g2"))?;
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(&bytes[320..]);
        Ok(Self {
            a: g1(0, "a")?,
            b_g1: g1(64, "b_g1")?,
            l: g1(128, "l")?,
            b_g2,
            fingerprint,
        })
    }
}

impl RequestProver {
    /// Computes the fixed part for the note and root of `circuit`.
    pub fn precompute(&self, circuit: RequestCircuit) -> Result<NotePrecomputation, CircuitError> {
        let assignment = self.assignment(circuit)?;
        let fixed = self.fixed_range();
        let pk = self.proving_key();
        let scalars: Vec<_> = assignment[fixed.clone()]
            .iter()
            .map(|v| v.into_bigint())
            .collect();
        let witness_fixed = (fixed.start - self.num_instance())..(fixed.end - self.num_instance());
        let precomputation = NotePrecomputation {
            a: G1Projective::msm_bigint(&pk.a_query[fixed.clone()], &scalars),
            b_g1: G1Projective::msm_bigint(&pk.b_g1_query[fixed.clone()], &scalars),
            b_g2: G2Projective::msm_bigint(&pk.b_g2_query[fixed.clone()], &scalars),
            l: G1Projective::msm_bigint(&pk.l_query[witness_fixed], &scalars),
            fingerprint: self.core().note_fingerprint(&assignment),
        };
        Ok(precomputation)
    }

    /// Proves `circuit` using `pre` for the fixed part. Refuses a precomputation made
    /// for another note, root or key.
    pub fn prove_precomputed<R: RngCore + CryptoRng>(
        &self,
        pre: &NotePrecomputation,
        circuit: RequestCircuit,
        rng: &mut R,
    ) -> Result<Proof<Bn254>, CircuitError> {
        self.prove_precomputed_blinded(pre, circuit, Blinding::draw(rng))
    }

    fn prove_precomputed_blinded(
        &self,
        pre: &NotePrecomputation,
        circuit: RequestCircuit,
        blinding: Blinding,
    ) -> Result<Proof<Bn254>, CircuitError> {
        let assignment = self.assignment(circuit)?;
        if self.core().note_fingerprint(&assignment) != pre.fingerprint {
            return Err(CircuitError::StalePrecomputation);
        }
        Ok(self.core().prove(Some(pre), &assignment, blinding)?)
    }
}

impl<C: Statement> Prover<C> {
    /// The Groth16 proof arithmetic for a checked assignment, with the fixed part taken
    /// from `pre` when given (and computed here when not). No fingerprint check: tests
    /// use it to show that a mismatched precomputation yields a proof that does not
    /// verify; everything else goes through [`RequestProver::prove`] or
    /// [`RequestProver::prove_precomputed`].
    #[doc(hidden)]
    pub fn prove_with_fixed_part<R: RngCore + CryptoRng>(
        &self,
        pre: Option<&NotePrecomputation>,
        assignment: &[Fr],
        rng: &mut R,
    ) -> Result<Proof<Bn254>, ark_relations::gr1cs::SynthesisError> {
        self.core().prove(pre, assignment, Blinding::draw(rng))
    }
}

impl ProverCore {
    /// The Groth16 proof of a checked assignment, with the fixed part taken from `pre`
    /// when given (and computed here when not).
    pub(crate) fn prove(
        &self,
        pre: Option<&NotePrecomputation>,
        assignment: &[Fr],
        blinding: Blinding,
    ) -> Result<Proof<Bn254>, ark_relations::gr1cs::SynthesisError> {
        let mut h = to_bigints(&self.quotient(assignment)?);
        let parts = self.proof_parts(pre, assignment, &h, &blinding);
        h.zeroize();
        Ok(Proof {
            a: parts.a.into_affine(),
            b: parts.b_g2.into_affine(),
            c: parts.c.into_affine(),
        })
    }

    /// The scalars of the `h` MSM for a checked assignment: the values of `A B - C` on
    /// the odd coset, as snarkjs computes them (`qap.rs`).
    pub(crate) fn quotient(
        &self,
        assignment: &[Fr],
    ) -> Result<Vec<Fr>, ark_relations::gr1cs::SynthesisError> {
        SnarkjsReduction::witness_map_from_matrices::<Fr, GeneralEvaluationDomain<Fr>>(
            &self.matrices,
            self.num_instance,
            self.num_constraints,
            assignment,
        )
    }

    /// The Groth16 proof arithmetic for a checked assignment, its quotient `h` and the
    /// blinding `r, s`, with the fixed part taken from `pre` when given (and computed
    /// here when not). The ticket precomputation (`ticket.rs`) runs its `x = 0` proof
    /// through here, so both provers share one code path.
    pub(crate) fn proof_parts(
        &self,
        pre: Option<&NotePrecomputation>,
        assignment: &[Fr],
        h: &[<Fr as PrimeField>::BigInt],
        blinding: &Blinding,
    ) -> ProofParts {
        let pk = &self.keys.proving_key;
        let Blinding { r, s } = blinding;
        let (fixed, pre) = match pre {
            Some(pre) => (self.fixed.clone(), pre.clone()),
            None => (0..0, NotePrecomputation::none()),
        };
        let num_instance = self.num_instance;
        // The per-request scalars: everything outside the fixed range (the fixed values
        // are zeroed here; their share comes from the precomputation).
        let mut variable: Vec<_> = assignment.iter().map(|v| v.into_bigint()).collect();
        for v in &mut variable[fixed.clone()] {
            *v = Default::default();
        }
        let z = &variable[1..];
        let witness = &variable[num_instance..];
        // The five MSMs are independent and each is too small to keep both cores busy
        // on its own, so they run side by side.
        let ((a_msm, b_g1_msm), (b_g2_msm, (l_msm, h_msm))) = rayon::join(
            || {
                rayon::join(
                    || G1Projective::msm_bigint(&pk.a_query[1..], z),
                    || G1Projective::msm_bigint(&pk.b_g1_query[1..], z),
                )
            },
            || {
                rayon::join(
                    || G2Projective::msm_bigint(&pk.b_g2_query[1..], z),
                    || {
                        rayon::join(
                            || G1Projective::msm_bigint(&pk.l_query, witness),
                            || G1Projective::msm_bigint(&pk.h_query, h),
                        )
                    },
                )
            },
        );
        let a = pk.vk.alpha_g1 + pre.a + a_msm + pk.a_query[0] + pk.delta_g1 * r;
        let b_g1 = pk.beta_g1 + pre.b_g1 + b_g1_msm + pk.b_g1_query[0] + pk.delta_g1 * s;
        let b_g2 = pk.vk.beta_g2 + pre.b_g2 + b_g2_msm + pk.b_g2_query[0] + pk.vk.delta_g2 * s;
        let c = pre.l + l_msm + h_msm + a * s + b_g1 * r - pk.delta_g1 * (*r * s);
        // The per-request scalars include the note secret: wipe them.
        variable.iter_mut().for_each(|v| *v = Default::default());
        ProofParts { a, b_g2, c }
    }

    /// SHA-256 of the verifying key and the note-fixed values of `assignment`.
    pub(crate) fn note_fingerprint(&self, assignment: &[Fr]) -> [u8; 32] {
        let mut hasher = Sha256::new_with_prefix(b"zkcredits/precompute/v1");
        hasher.update(self.vk_hash);
        for v in &assignment[self.fixed.clone()] {
            hasher.update(zkcredits_protocol::field::to_be_bytes(v));
        }
        hasher.finalize().into()
    }
}

/// A proof before it is made affine.
pub(crate) struct ProofParts {
    pub(crate) a: G1Projective,
    pub(crate) b_g2: G2Projective,
    pub(crate) c: G1Projective,
}

/// Field elements as MSM scalars.
pub(crate) fn to_bigints(values: &[Fr]) -> Vec<<Fr as PrimeField>::BigInt> {
    values.iter().map(|v| v.into_bigint()).collect()
}

/// Groth16's blinding `(r, s)`: fresh for every proof, so two proofs of one statement
/// share nothing; wiped when dropped.
pub(crate) struct Blinding {
    pub(crate) r: Fr,
    pub(crate) s: Fr,
}

impl Blinding {
    /// Draws `r`, then `s`, from `rng`: every prover draws in this order, so two provers
    /// given equally seeded generators blind alike (the tests compare the ticket
    /// precomputation's proofs with the plain prover's byte for byte that way).
    pub(crate) fn draw<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let r = Fr::rand(rng);
        let s = Fr::rand(rng);
        Self { r, s }
    }
}

impl Drop for Blinding {
    fn drop(&mut self) {
        self.r.zeroize();
        self.s.zeroize();
    }
}

impl Drop for NotePrecomputation {
    fn drop(&mut self) {
        self.a = G1Projective::zero();
        self.b_g1 = G1Projective::zero();
        self.b_g2 = G2Projective::zero();
        self.l = G1Projective::zero();
        self.fingerprint.zeroize();
    }
}
