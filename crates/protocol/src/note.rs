//! Wallet seeds, note secrets, note IDs and leaves (`docs/PROTOCOL.md §3`).

use ark_ff::PrimeField;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Fr;
use crate::credits::Credits;
use crate::field;
use crate::poseidon::{Tag, hash};

/// Domain separator for turning seed material into the field element `seed`.
const SEED_DOMAIN: &[u8] = b"zkcredits/wallet-seed/v1";

/// Errors from building a wallet seed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeedError {
    /// The phrase is not a valid BIP-39 mnemonic (unknown word, wrong length or checksum).
    #[error("invalid BIP-39 mnemonic: {0}; check the words and their order")]
    InvalidMnemonic(String),
}

/// The wallet's root secret, a field element from which every note secret is derived.
///
/// Never printed: `Debug` shows nothing secret. Wiped from memory on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct WalletSeed(Fr);

impl WalletSeed {
    /// Derives the seed from a BIP-39 mnemonic (English word list, empty passphrase).
    pub fn from_mnemonic(phrase: &str) -> Result<Self, SeedError> {
        let mnemonic = bip39::Mnemonic::parse_normalized(phrase)
            .map_err(|e| SeedError::InvalidMnemonic(e.to_string()))?;
        let mut bip39_seed = mnemonic.to_seed_normalized("");
        let seed = Self::from_entropy(&bip39_seed);
        bip39_seed.zeroize();
        Ok(seed)
    }

    /// Derives the seed from raw secret bytes (for example 32 random bytes).
    ///
    /// The bytes are expanded with SHA-512 and reduced modulo the field order: reducing
    /// 512 bits leaves a bias below 2^-250, where reducing 256 bits directly would not.
    pub fn from_entropy(entropy: &[u8]) -> Self {
        let mut digest = Sha512::new_with_prefix(SEED_DOMAIN);
        digest.update(entropy);
        let mut wide = digest.finalize();
        let seed = Fr::from_le_bytes_mod_order(&wide);
        wide.as_mut_slice().zeroize();
        Self(seed)
    }

    /// The secret of note number `j`: `k_j = H(NOTE, seed, j)`.
    pub fn note_secret(&self, j: u64) -> NoteSecret {
        NoteSecret(hash([Tag::Note.to_field(), self.0, Fr::from(j)]))
    }
}

impl std::fmt::Debug for WalletSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WalletSeed(<secret>)")
    }
}

/// A note secret `k`, uniform in F. Whoever knows it can spend and slash the note.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct NoteSecret(Fr);

impl NoteSecret {
    /// Wraps a field element as a note secret (for recovered keys and tests).
    pub fn from_field(k: Fr) -> Self {
        Self(k)
    }

    /// The secret as a field element, for hashing and proving.
    pub fn expose(&self) -> Fr {
        self.0
    }

    /// The note's public identity `ID = H(ID, k)`.
    pub fn id(&self) -> Fr {
        note_id(self.0)
    }

    /// The note's close nullifier `NC = H(CLOSE, k)`: one close per note.
    pub fn close_nullifier(&self) -> Fr {
        hash([Tag::Close.to_field(), self.0])
    }
}

impl PartialEq for NoteSecret {
    fn eq(&self, other: &Self) -> bool {
        field::to_be_bytes(&self.0)
            .ct_eq(&field::to_be_bytes(&other.0))
            .into()
    }
}
impl Eq for NoteSecret {}

impl std::fmt::Debug for NoteSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSecret(id={})", field::to_hex(&self.id()))
    }
}

/// `ID = H(ID, k)`.
pub fn note_id(k: Fr) -> Fr {
    hash([Tag::Id.to_field(), k])
}

/// `leaf = H(LEAF, ID, D, E)`: what the pool appends to its tree for a deposit of `D`
/// credit units expiring at epoch `E` (`docs/PROTOCOL.md §3`).
pub fn leaf(id: Fr, deposit: Credits, expiry_epoch: u64) -> Fr {
    hash([
        Tag::Leaf.to_field(),
        id,
        deposit.to_field(),
        Fr::from(expiry_epoch),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHRASE: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

    #[test]
    fn a_mnemonic_gives_the_same_notes_every_time() {
        let a = WalletSeed::from_mnemonic(PHRASE).expect("valid");
        let b = WalletSeed::from_mnemonic(PHRASE).expect("valid");
        assert_eq!(a.note_secret(3), b.note_secret(3));
        assert_ne!(a.note_secret(3), a.note_secret(4));
    }

    #[test]
    fn a_bad_checksum_is_refused() {
        let bad = PHRASE.replace("about", "abandon");
        assert!(matches!(
            WalletSeed::from_mnemonic(&bad),
            Err(SeedError::InvalidMnemonic(_))
        ));
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let seed = WalletSeed::from_entropy(&[7u8; 32]);
        let k = seed.note_secret(0);
        let shown = format!("{seed:?} {k:?}");
        assert!(!shown.contains(&field::to_hex(&k.expose())));
        assert!(shown.contains(&field::to_hex(&k.id())));
    }
}
