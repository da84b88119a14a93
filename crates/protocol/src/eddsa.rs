//! EdDSA-Poseidon on BabyJubJub, in circomlib's flavour (`circomlibjs` `signPoseidon`,
//! `verifyPoseidon`; `@zk-kit/eddsa-poseidon`), so that receipts verify inside the
//! request circuit and agree with outside implementations.
//!
//! - Key: `h = BLAKE-512(private key)`; `s` = the first 32 bytes, pruned (low 3 bits
//!   cleared, bit 255 cleared, bit 254 set), read little-endian; `A = (s >> 3) * Base8`.
//! - Sign `msg`: `r = BLAKE-512(h[32..64] || msg as 32 LE bytes) mod l`, `R8 = r * Base8`,
//!   `hm = H(R8.x, R8.y, A.x, A.y, msg)`, `S = r + hm * s mod l`.
//! - Verify: `S < l` and `S * Base8 == R8 + hm * (8 * A)`.

use ark_ec::{AdditiveGroup, AffineRepr};
use ark_ff::{BigInteger, PrimeField};
use blake_hash::Digest;
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Fr;
use crate::babyjubjub::{self, Point, PointError, Scalar};
use crate::field;
use crate::fixed_base;
use crate::poseidon::hash;

/// A provider's receipt-signing key: 32 secret bytes, wiped on drop, never printed.
///
/// The public key is derived once, when the key is made: signing needs `A` for the
/// challenge, and deriving it costs a scalar multiplication, as much as the signature's
/// own nonce point.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey {
    secret: [u8; 32],
    #[zeroize(skip)]
    public: PublicKey,
}

/// A public key: a non-identity point of the prime-order subgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(Point);

/// A signature `(R8, S)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The nonce point.
    pub r8: Point,
    /// The response, reduced modulo `l`.
    pub s: Scalar,
}

/// Errors decoding keys and signatures.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum SignatureError {
    /// A point failed to decode.
    #[error(transparent)]
    Point(#[from] PointError),
    /// `S` is not below the subgroup order `l`.
    #[error("the signature scalar is not reduced modulo the subgroup order")]
    NonCanonicalScalar,
}

struct Expanded {
    scalar: [u8; 32],
    nonce_prefix: [u8; 32],
}

impl Drop for Expanded {
    fn drop(&mut self) {
        self.scalar.zeroize();
        self.nonce_prefix.zeroize();
    }
}

impl PrivateKey {
    /// Wraps 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let public = derive_public(&expand(&bytes));
        Self {
            secret: bytes,
            public,
        }
    }

    /// A fresh key from a cryptographic random source.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
        key
    }

    /// The secret bytes, for storing the key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.secret
    }

    /// `A = (s >> 3) * Base8`.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Signs a field element.
    pub fn sign(&self, msg: Fr) -> Signature {
        let expanded = expand(&self.secret);
        let a = self.public;
        let mut nonce_input = [0u8; 64];
        nonce_input[..32].copy_from_slice(&expanded.nonce_prefix);
        nonce_input[32..].copy_from_slice(&field::to_le_bytes(&msg));
        let mut nonce_digest = blake_hash::Blake512::digest(&nonce_input);
        nonce_input.zeroize();
        let r = Scalar::from_le_bytes_mod_order(&nonce_digest);
        nonce_digest.as_mut_slice().zeroize();
        let r8 = fixed_base::mul_base8(&r);
        let hm = challenge(&r8, &a.0, msg);
        let s = Scalar::from_le_bytes_mod_order(&expanded.scalar);
        Signature {
            r8,
            s: r + reduce(hm) * s,
        }
    }
}

fn derive_public(expanded: &Expanded) -> PublicKey {
    let shifted = <Fr as PrimeField>::BigInt::from_bits_le(&bits_le(&expanded.scalar)) >> 3;
    PublicKey(babyjubjub::mul_integer(&babyjubjub::base8(), shifted))
}

fn expand(secret: &[u8; 32]) -> Expanded {
    let mut digest = blake_hash::Blake512::digest(secret);
    let mut scalar = [0u8; 32];
    let mut nonce_prefix = [0u8; 32];
    scalar.copy_from_slice(&digest[..32]);
    nonce_prefix.copy_from_slice(&digest[32..]);
    digest.as_mut_slice().zeroize();
    scalar[0] &= 0xf8;
    scalar[31] &= 0x7f;
    scalar[31] |= 0x40;
    Expanded {
        scalar,
        nonce_prefix,
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey(public={:?})", self.public_key())
    }
}

impl PublicKey {
    /// The point `A`.
    pub fn point(&self) -> Point {
        self.0
    }

    /// Builds a public key from coordinates, requiring a subgroup point.
    pub fn from_coordinates(x: Fr, y: Fr) -> Result<Self, PointError> {
        Self::from_bytes(&babyjubjub::pack(&babyjubjub::from_coordinates(x, y)?))
    }

    /// circomlib's packed form.
    pub fn to_bytes(&self) -> [u8; 32] {
        babyjubjub::pack(&self.0)
    }

    /// Decodes a packed public key: on the curve, in the subgroup, not the identity.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, PointError> {
        babyjubjub::unpack_subgroup(bytes).map(PublicKey)
    }

    /// Verifies `sig` on `msg`: `S * Base8 == R8 + hm * (8 * A)`.
    pub fn verify(&self, msg: Fr, sig: &Signature) -> bool {
        if !sig.r8.is_on_curve() {
            return false;
        }
        let hm = challenge(&sig.r8, &self.0, msg);
        let left = babyjubjub::base8() * sig.s;
        let eight_a = self.0.into_group().double().double().double();
        // Reducing hm modulo l is exact here: every PublicKey is a subgroup point.
        let right = eight_a * reduce(hm) + sig.r8;
        left == right
    }
}

impl Signature {
    /// circomlibjs' `packSignature`: packed `R8` then `S` as 32 little-endian bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&babyjubjub::pack(&self.r8));
        let s = self.s.into_bigint().to_bytes_le();
        out[32..].copy_from_slice(&s);
        out
    }

    /// Decodes a packed signature: `R8` on the curve, `S < l`.
    pub fn from_bytes(bytes: &[u8; 64]) -> Result<Self, SignatureError> {
        let mut r8 = [0u8; 32];
        r8.copy_from_slice(&bytes[..32]);
        let r8 = babyjubjub::unpack(&r8)?;
        let s = Scalar::from_le_bytes_mod_order(&bytes[32..]);
        if s.into_bigint().to_bytes_le() != bytes[32..] {
            return Err(SignatureError::NonCanonicalScalar);
        }
        Ok(Self { r8, s })
    }
}

/// `hm = H(R8.x, R8.y, A.x, A.y, msg)`.
pub fn challenge(r8: &Point, a: &Point, msg: Fr) -> Fr {
    hash([r8.x, r8.y, a.x, a.y, msg])
}

/// `hm` as an integer reduced modulo `l` (for `S = r + hm * s`).
fn reduce(hm: Fr) -> Scalar {
    Scalar::from_le_bytes_mod_order(&hm.into_bigint().to_bytes_le())
}

fn bits_le(bytes: &[u8; 32]) -> Vec<bool> {
    bytes
        .iter()
        .flat_map(|b| (0..8).map(move |i| (b >> i) & 1 == 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_message_does_not() {
        let key = PrivateKey::from_bytes([3u8; 32]);
        let public = key.public_key();
        let sig = key.sign(Fr::from(42u64));
        assert!(public.verify(Fr::from(42u64), &sig));
        assert!(!public.verify(Fr::from(43u64), &sig));
        let other = PrivateKey::from_bytes([4u8; 32]).public_key();
        assert!(!other.verify(Fr::from(42u64), &sig));
    }

    #[test]
    fn signatures_and_keys_round_trip_through_bytes() {
        let key = PrivateKey::from_bytes([9u8; 32]);
        let sig = key.sign(Fr::from(7u64));
        assert_eq!(Signature::from_bytes(&sig.to_bytes()), Ok(sig));
        let public = key.public_key();
        assert_eq!(PublicKey::from_bytes(&public.to_bytes()), Ok(public));
    }

    #[test]
    fn a_non_canonical_s_is_refused() {
        let key = PrivateKey::from_bytes([9u8; 32]);
        let mut bytes = key.sign(Fr::from(7u64)).to_bytes();
        bytes[32..].copy_from_slice(&[0xff; 32]);
        assert_eq!(
            Signature::from_bytes(&bytes),
            Err(SignatureError::NonCanonicalScalar)
        );
    }
}
