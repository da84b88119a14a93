//! Encryption of what the client stores besides the wallet (journal secrets, proving
//! precomputations): XChaCha20-Poly1305 under keys derived from the wallet seed with
//! HKDF-SHA256, one key per purpose, a random 24-byte nonce per message, and the
//! record's position (table, note, index) as associated data so that a sealed value
//! cannot be moved to another row or file.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Nonce length of XChaCha20-Poly1305.
pub const NONCE_LEN: usize = 24;
/// Authentication tag length.
pub const TAG_LEN: usize = 16;

/// What a storage key is used for; each purpose gets an independent key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoragePurpose {
    /// Secret columns of the note journal.
    Journal,
    /// Per-note proving precomputations on disk.
    PrecomputeCache,
    /// Names of cache files (a keyed hash, so names do not reveal notes or roots).
    CacheNames,
    /// The blinding `rho_next` of each ticket's `T_next`, derived from (note, index) so
    /// that a journal that lost a ticket (a restored backup) can still open the receipt
    /// the gateway kept for it.
    TicketBlinding,
}

impl StoragePurpose {
    pub(crate) fn info(self) -> &'static [u8] {
        match self {
            Self::Journal => b"zkcredits/storage/journal/v1",
            Self::PrecomputeCache => b"zkcredits/storage/precompute/v1",
            Self::CacheNames => b"zkcredits/storage/cache-names/v1",
            Self::TicketBlinding => b"zkcredits/storage/ticket-blinding/v1",
        }
    }
}

/// A 256-bit storage key, wiped on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct StorageKey([u8; 32]);

/// Sealed data failed to open: wrong key, tampered or truncated.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[error(
    "sealed data does not open with this wallet's key (tampered, truncated or from another wallet)"
)]
pub struct SealError;

impl StorageKey {
    /// Wraps key bytes (derived by [`crate::wallet::Wallet::storage_key`]).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Encrypts `plaintext` bound to `aad`: `nonce || ciphertext || tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // Encryption into a Vec cannot fail for inputs below the cipher's 256 GiB limit.
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption of a small message");
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts what [`StorageKey::seal`] made with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError);
        }
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| SealError)
    }

    /// HMAC-SHA256 of `data` under this key, truncated to 128 bits, hex: a file name
    /// that reveals nothing about `data` to someone without the wallet.
    pub fn keyed_name(&self, data: &[u8]) -> String {
        let (mac, _) = hkdf::Hkdf::<sha2::Sha256>::extract(Some(&self.0), data);
        hex::encode(&mac[..16])
    }

    /// HMAC-SHA256 of `data` under this key as a field element (its first 31 bytes, so
    /// always below the modulus): a secret value that the wallet can derive again.
    pub fn keyed_field(&self, data: &[u8]) -> zkcredits_protocol::Fr {
        let (mac, _) = hkdf::Hkdf::<sha2::Sha256>::extract(Some(&self.0), data);
        let mut bytes = [0u8; 32];
        bytes[1..].copy_from_slice(&mac[..31]);
        zkcredits_protocol::field::from_be_bytes_canonical(&bytes)
            .expect("31 bytes are below the field modulus")
    }
}

impl std::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageKey(<secret>)")
    }
}

/// `rho_next` of ticket `index` of note `j`, the blinding of its `T_next`: a keyed hash
/// under the wallet's ticket-blinding key rather than a random value, so that a journal
/// that never recorded the ticket (put back from an old copy) can still open the
/// receipt the gateway kept for it. It is as hidden as a random value to anyone
/// without the wallet, and differs for every (note, index), so `T_next` stays fresh
/// per request.
pub(crate) fn rho_next(key: &StorageKey, j: u64, index: u64) -> zkcredits_protocol::Fr {
    let mut data = b"zkcredits/rho-next/v1".to_vec();
    data.extend_from_slice(&j.to_be_bytes());
    data.extend_from_slice(&index.to_be_bytes());
    key.keyed_field(&data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_aad() {
        let key = StorageKey::from_bytes([1; 32]);
        let sealed = key.seal(b"row 1", b"secret");
        assert_eq!(
            key.open(b"row 1", &sealed).expect("opens").as_slice(),
            b"secret"
        );
        assert_eq!(key.open(b"row 2", &sealed), Err(SealError));
        assert_eq!(
            StorageKey::from_bytes([2; 32]).open(b"row 1", &sealed),
            Err(SealError)
        );
        let mut tampered = sealed.clone();
        tampered[30] ^= 1;
        assert_eq!(key.open(b"row 1", &tampered), Err(SealError));
        assert_eq!(key.open(b"row 1", &sealed[..20]), Err(SealError));
    }
}
