//! The BN254 scalar field `F` of `docs/PROTOCOL.md §2` and its canonical byte encoding.

use ark_ff::{BigInteger, PrimeField};

/// An element of the BN254 scalar field: every hash, secret and public input lives here.
pub type Fr = ark_bn254::Fr;

/// Encodes a field element as 32 bytes, big-endian (the order the EVM and the wire use).
pub fn to_be_bytes(x: &Fr) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&x.into_bigint().to_bytes_be());
    out
}

/// Decodes 32 big-endian bytes, refusing any value that is not reduced modulo the field
/// order: each field element has exactly one encoding, so nothing can be replayed under
/// a second spelling.
pub fn from_be_bytes_canonical(bytes: &[u8; 32]) -> Option<Fr> {
    let x = Fr::from_be_bytes_mod_order(bytes);
    (to_be_bytes(&x) == *bytes).then_some(x)
}

/// Encodes a field element as 32 bytes, little-endian (circomlib's packing order).
pub fn to_le_bytes(x: &Fr) -> [u8; 32] {
    let mut out = to_be_bytes(x);
    out.reverse();
    out
}

/// Decodes 32 little-endian bytes, refusing non-reduced values.
pub fn from_le_bytes_canonical(bytes: &[u8; 32]) -> Option<Fr> {
    let mut be = *bytes;
    be.reverse();
    from_be_bytes_canonical(&be)
}

/// Lowercase hex with a `0x` prefix, big-endian: how field elements are shown to people
/// and to Solidity tooling.
pub fn to_hex(x: &Fr) -> String {
    let bytes = to_be_bytes(x);
    let mut s = String::with_capacity(66);
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parses the one text form of a field element that names something (a nullifier, a
/// tree root): `0x` and exactly 64 hex digits (either case), canonical. Nothing else, so
/// that one value has one spelling in a URL or a log.
pub fn from_strict_hex(text: &str) -> Option<Fr> {
    let digits = text.strip_prefix("0x")?;
    if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    from_hex(digits)
}

/// Parses `0x`-prefixed (or bare) big-endian hex of at most 32 bytes, canonical only.
pub fn from_hex(s: &str) -> Option<Fr> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.is_empty() || s.len() > 64 || !s.is_ascii() {
        return None;
    }
    let padded = format!("{s:0>64}");
    let mut bytes = [0u8; 32];
    for (i, chunk) in padded.as_bytes().chunks(2).enumerate() {
        let hi = (chunk[0] as char).to_digit(16)?;
        let lo = (chunk[1] as char).to_digit(16)?;
        bytes[i] = (hi * 16 + lo) as u8;
    }
    from_be_bytes_canonical(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_modulus_itself_is_not_a_canonical_encoding() {
        let p = Fr::MODULUS.to_bytes_be();
        let bytes: [u8; 32] = p.try_into().expect("32 bytes");
        assert_eq!(from_be_bytes_canonical(&bytes), None);
        assert_eq!(from_be_bytes_canonical(&[0xff; 32]), None);
    }

    proptest! {
        #[test]
        fn encodings_round_trip(limbs in any::<[u64; 4]>()) {
            let x = Fr::from_le_bytes_mod_order(
                &limbs.iter().flat_map(|l| l.to_le_bytes()).collect::<Vec<_>>(),
            );
            prop_assert_eq!(from_be_bytes_canonical(&to_be_bytes(&x)), Some(x));
            prop_assert_eq!(from_le_bytes_canonical(&to_le_bytes(&x)), Some(x));
            prop_assert_eq!(from_hex(&to_hex(&x)), Some(x));
        }
    }
}
