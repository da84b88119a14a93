//! Versioned binary encodings of what crosses the wire (`docs/PROTOCOL.md §8`), carried
//! as unpadded base64url.
//!
//! Every decoder is strict: exact length (truncated and oversized inputs are errors, not
//! prefixes), a known version, canonical field elements, points on their curve and in
//! their subgroup, and canonical signature scalars. So each value has one encoding, and
//! decode-then-encode gives back the input.

use ark_bn254::{G1Affine, G2Affine};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Compress, Validate};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Fr;
use crate::credits::Credits;
use crate::eddsa::{Signature, SignatureError};
use crate::field;
use crate::g2_subgroup;
use crate::merkle::Root;
use crate::rln::Nullifier;
use crate::state::Receipt;

/// The credential and receipt format version this code speaks.
pub const VERSION: u8 = 1;

/// Errors decoding wire values; each names what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum WireError {
    /// The text is not unpadded base64url.
    #[error("not unpadded base64url")]
    Base64,
    /// The text is longer than any valid encoding; it was not decoded.
    #[error("{what} is too long: {actual} characters, at most {max}")]
    Oversized {
        /// What was being decoded.
        what: &'static str,
        /// The longest valid text.
        max: usize,
        /// The text's length.
        actual: usize,
    },
    /// Fewer bytes than the format needs.
    #[error("{what} is truncated: {actual} bytes, {expected} needed")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// The format's length.
        expected: usize,
        /// What arrived.
        actual: usize,
    },
    /// More bytes than the format has.
    #[error("{what} has {extra} trailing bytes")]
    TrailingBytes {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes follow the value.
        extra: usize,
    },
    /// A version this code does not speak.
    #[error("unsupported {what} version {version} (this software speaks version {VERSION})")]
    UnsupportedVersion {
        /// What was being decoded.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// A field element is not reduced modulo the field order.
    #[error("field `{0}` is not a canonical field element")]
    NonCanonicalField(&'static str),
    /// A proof point is malformed, off its curve or outside its subgroup.
    #[error("proof point `{0}` is not a valid compressed BN254 point")]
    InvalidProofPoint(&'static str),
    /// The receipt signature is malformed.
    #[error("invalid receipt signature: {0}")]
    InvalidSignature(#[from] SignatureError),
}

/// A fixed-length binary wire format with base64url text form.
pub trait WireFormat: Sized {
    /// What the value is called in errors.
    const NAME: &'static str;
    /// The exact encoded length in bytes.
    const LEN: usize;

    /// Appends the encoding to `out`.
    fn encode_into(&self, out: &mut Vec<u8>);

    /// Decodes exactly [`Self::LEN`] bytes (the length is checked by [`decode`](Self::decode)).
    fn decode_exact(bytes: &[u8]) -> Result<Self, WireError>;

    /// The binary encoding.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        self.encode_into(&mut out);
        debug_assert_eq!(out.len(), Self::LEN);
        out
    }

    /// Decodes the binary encoding, refusing short and long inputs.
    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        match bytes.len() {
            n if n < Self::LEN => Err(WireError::Truncated {
                what: Self::NAME,
                expected: Self::LEN,
                actual: n,
            }),
            n if n > Self::LEN => Err(WireError::TrailingBytes {
                what: Self::NAME,
                extra: n - Self::LEN,
            }),
            _ => Self::decode_exact(bytes),
        }
    }

    /// Unpadded base64url of the encoding.
    fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.encode())
    }

    /// Decodes unpadded base64url, refusing overlong text before decoding it.
    fn from_base64url(text: &str) -> Result<Self, WireError> {
        let max = Self::LEN.div_ceil(3) * 4;
        if text.len() > max {
            return Err(WireError::Oversized {
                what: Self::NAME,
                max,
                actual: text.len(),
            });
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| WireError::Base64)?;
        Self::decode(&bytes)
    }
}

/// The three points of a Groth16 proof, compressed (`A`: G1, `B`: G2, `C`: G1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProofPoints {
    /// `A`
    pub a: G1Affine,
    /// `B`
    pub b: G2Affine,
    /// `C`
    pub c: G1Affine,
}

/// The compressed size of a proof: 32 + 64 + 32 bytes.
pub const PROOF_LEN: usize = 128;

impl ProofPoints {
    fn encode_into(&self, out: &mut Vec<u8>) {
        // Serialising a valid point into a Vec cannot fail.
        self.a
            .serialize_compressed(&mut *out)
            .expect("writing to a Vec");
        self.b
            .serialize_compressed(&mut *out)
            .expect("writing to a Vec");
        self.c
            .serialize_compressed(&mut *out)
            .expect("writing to a Vec");
    }

    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let a = G1Affine::deserialize_compressed(&bytes[..32])
            .map_err(|_| WireError::InvalidProofPoint("a"))?;
        // Decompression solves the curve equation for y, so the point is on the twist
        // (checked again, cheaply); membership of G2 is then the faster test of
        // `g2_subgroup` instead of arkworks' own.
        let b = G2Affine::deserialize_with_mode(&bytes[32..96], Compress::Yes, Validate::No)
            .ok()
            .filter(|b| b.is_on_curve() && g2_subgroup::contains(b))
            .ok_or(WireError::InvalidProofPoint("b"))?;
        let c = G1Affine::deserialize_compressed(&bytes[96..128])
            .map_err(|_| WireError::InvalidProofPoint("c"))?;
        let points = Self { a, b, c };
        // arkworks accepts a few spellings of the identity; keep exactly one.
        let mut again = Vec::with_capacity(PROOF_LEN);
        points.encode_into(&mut again);
        if again != bytes[..PROOF_LEN] {
            return Err(WireError::InvalidProofPoint("encoding"));
        }
        Ok(points)
    }
}

/// The credential of a paid request: `Authorization: ZkCredit <base64url>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credential {
    /// Which of the gateway's server keys signed the receipt this proof opens.
    pub key_id: u32,
    /// The tree root the membership proof is against.
    pub root: Root,
    /// `N`, the ticket's nullifier.
    pub nullifier: Nullifier,
    /// `y = k + a * x`, the share.
    pub y: Fr,
    /// `T_next`, the commitment to the state after this request.
    pub next_commitment: Fr,
    /// The Groth16 proof.
    pub proof: ProofPoints,
}

impl WireFormat for Credential {
    const NAME: &'static str = "credential";
    const LEN: usize = 1 + 4 + 4 * 32 + PROOF_LEN;

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&self.key_id.to_be_bytes());
        for x in [
            self.root.field(),
            self.nullifier.field(),
            self.y,
            self.next_commitment,
        ] {
            out.extend_from_slice(&field::to_be_bytes(&x));
        }
        self.proof.encode_into(out);
    }

    fn decode_exact(bytes: &[u8]) -> Result<Self, WireError> {
        check_version(Self::NAME, bytes[0])?;
        let key_id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let fields = &bytes[5..5 + 128];
        let read = |i: usize, name: &'static str| -> Result<Fr, WireError> {
            let mut buf = [0u8; 32];
            buf.copy_from_slice(&fields[i * 32..(i + 1) * 32]);
            field::from_be_bytes_canonical(&buf).ok_or(WireError::NonCanonicalField(name))
        };
        Ok(Self {
            key_id,
            root: Root::from_field(read(0, "root")?),
            nullifier: Nullifier::from_field(read(1, "nullifier")?),
            y: read(2, "y")?,
            next_commitment: read(3, "next_commitment")?,
            proof: ProofPoints::decode(&bytes[5 + 128..])?,
        })
    }
}

impl WireFormat for Receipt {
    const NAME: &'static str = "receipt";
    const LEN: usize = 1 + 8 + 8 + 64;

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&self.refund.get().to_be_bytes());
        out.extend_from_slice(&self.penalty.get().to_be_bytes());
        out.extend_from_slice(&self.signature.to_bytes());
    }

    fn decode_exact(bytes: &[u8]) -> Result<Self, WireError> {
        check_version(Self::NAME, bytes[0])?;
        let mut u = [0u8; 8];
        u.copy_from_slice(&bytes[1..9]);
        let refund = Credits::new(u64::from_be_bytes(u));
        u.copy_from_slice(&bytes[9..17]);
        let penalty = Credits::new(u64::from_be_bytes(u));
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&bytes[17..81]);
        Ok(Self {
            refund,
            penalty,
            signature: Signature::from_bytes(&sig)?,
        })
    }
}

fn check_version(what: &'static str, version: u8) -> Result<(), WireError> {
    if version == VERSION {
        Ok(())
    } else {
        Err(WireError::UnsupportedVersion { what, version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eddsa::PrivateKey;
    use ark_ec::{AffineRepr, CurveGroup};
    use ark_ff::{BigInteger, PrimeField};
    use proptest::prelude::*;

    fn credential() -> Credential {
        let g1 = G1Affine::generator();
        let g2 = G2Affine::generator();
        Credential {
            key_id: 7,
            root: Root::from_field(Fr::from(1u64)),
            nullifier: Nullifier::from_field(Fr::from(2u64)),
            y: -Fr::from(3u64),
            next_commitment: Fr::from(4u64),
            proof: ProofPoints {
                a: (g1 * Fr::from(5u64)).into_affine(),
                b: (g2 * Fr::from(6u64)).into_affine(),
                c: g1,
            },
        }
    }

    fn receipt() -> Receipt {
        Receipt {
            refund: Credits::new(12),
            penalty: Credits::new(3),
            signature: PrivateKey::from_bytes([1; 32]).sign(Fr::from(99u64)),
        }
    }

    #[test]
    fn credentials_and_receipts_round_trip() {
        let c = credential();
        assert_eq!(Credential::from_base64url(&c.to_base64url()), Ok(c));
        let r = receipt();
        assert_eq!(Receipt::from_base64url(&r.to_base64url()), Ok(r));
    }

    #[test]
    fn truncated_and_long_inputs_are_refused() {
        let bytes = credential().encode();
        assert!(matches!(
            Credential::decode(&bytes[..bytes.len() - 1]),
            Err(WireError::Truncated { .. })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            Credential::decode(&long),
            Err(WireError::TrailingBytes {
                what: "credential",
                extra: 1
            })
        );
        let text = "A".repeat(1000);
        assert!(matches!(
            Credential::from_base64url(&text),
            Err(WireError::Oversized { .. })
        ));
        assert_eq!(Credential::from_base64url("a+b/"), Err(WireError::Base64));
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let mut bytes = receipt().encode();
        bytes[0] = 2;
        assert_eq!(
            Receipt::decode(&bytes),
            Err(WireError::UnsupportedVersion {
                what: "receipt",
                version: 2
            })
        );
    }

    #[test]
    fn a_non_canonical_field_element_is_refused() {
        let mut bytes = credential().encode();
        let p = Fr::MODULUS.to_bytes_be();
        bytes[5 + 32..5 + 64].copy_from_slice(&p);
        assert_eq!(
            Credential::decode(&bytes),
            Err(WireError::NonCanonicalField("nullifier"))
        );
    }

    #[test]
    fn an_off_curve_proof_point_is_refused() {
        let mut bytes = credential().encode();
        // Flip bits of A's x coordinate until it leaves the curve.
        let start = 5 + 128;
        let mut refused = false;
        for bit in 0..8 {
            let mut tampered = bytes.clone();
            tampered[start] ^= 1 << bit;
            if Credential::decode(&tampered) == Err(WireError::InvalidProofPoint("a")) {
                refused = true;
                break;
            }
        }
        assert!(refused);
        bytes[start + 32] ^= 0x01;
        assert!(Credential::decode(&bytes).is_err());
    }

    /// A `B` on the twist curve but outside G2 (a random twist point almost surely is)
    /// decodes as a point yet must be refused: it could smuggle a small-order part
    /// into the pairing.
    #[test]
    fn a_b_point_outside_g2_is_refused() {
        use rand::SeedableRng;
        let outside = g2_subgroup::any_twist_point(&mut rand_chacha::ChaCha20Rng::seed_from_u64(7));
        assert!(outside.is_on_curve() && !g2_subgroup::contains(&outside));
        let mut bytes = credential().encode();
        let start = 5 + 128 + 32;
        outside
            .serialize_compressed(&mut bytes[start..start + 64])
            .expect("64 bytes");
        assert_eq!(
            Credential::decode(&bytes),
            Err(WireError::InvalidProofPoint("b"))
        );
    }

    #[test]
    fn an_off_curve_signature_point_is_refused() {
        let mut bytes = receipt().encode();
        let mut refused = false;
        for candidate in 2u8..100 {
            bytes[17..49].copy_from_slice(&[0; 32]);
            bytes[17] = candidate;
            if matches!(
                Receipt::decode(&bytes),
                Err(WireError::InvalidSignature(SignatureError::Point(
                    crate::babyjubjub::PointError::NotOnCurve
                )))
            ) {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_what_decodes_re_encodes_identically(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            if let Ok(c) = Credential::decode(&bytes) {
                prop_assert_eq!(c.encode(), bytes.clone());
            }
            if let Ok(r) = Receipt::decode(&bytes) {
                prop_assert_eq!(r.encode(), bytes);
            }
        }

        #[test]
        fn single_byte_changes_never_panic(pos in 0usize..261, value in any::<u8>()) {
            let mut bytes = credential().encode();
            bytes[pos] = value;
            if let Ok(c) = Credential::decode(&bytes) {
                prop_assert_eq!(c.encode(), bytes);
            }
        }
    }
}
