//! The wallet: a BIP-39 mnemonic (from which every note secret and every storage key is
//! derived) and, optionally, the Ethereum key that pays for deposits, encrypted at rest.
//!
//! File format, version 1 (all integers big-endian):
//!
//! ```text
//! header  "ZKCW" | version u8 = 1 | kdf u8 = 1 (argon2id v0x13)
//!         | m_cost KiB u32 | t_cost u32 | p_cost u32 | salt [16] | nonce [24]
//! body    XChaCha20-Poly1305(key = argon2id(passphrase, salt), nonce,
//!                            aad = header, plaintext = payload)
//! trailer SHA-256(header | body)
//! payload version u8 = 1 | mnemonic length u16 | mnemonic (UTF-8)
//!         | has Ethereum key u8 | Ethereum key [32] (when present)
//! ```
//!
//! The trailer is a plain checksum: it tells a damaged file (`CorruptWallet`) from a
//! wrong passphrase (`WrongPassphrase`, the AEAD refuses an intact file) without running
//! the KDF on garbage. The header is bound to the ciphertext as associated data, so the
//! KDF parameters cannot be weakened without the passphrase. The file is written
//! atomically with mode 0600; decrypted secrets live in zeroizing buffers.

use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;
use zkcredits_chain::alloy::signers::local::PrivateKeySigner;
use zkcredits_protocol::note::WalletSeed;

use crate::seal::{StorageKey, StoragePurpose};

const MAGIC: &[u8; 4] = b"ZKCW";
const FILE_VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
const PAYLOAD_VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 4 + 1 + 1 + 4 + 4 + 4 + SALT_LEN + NONCE_LEN;
const TRAILER_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// The passphrase environment variable.
pub const PASSPHRASE_ENV: &str = "ZKCREDITS_PASSPHRASE";

/// Errors opening, creating or saving a wallet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// The file is intact but the passphrase does not open it.
    #[error("wrong passphrase for {0}; check ZKCREDITS_PASSPHRASE or retype it")]
    WrongPassphrase(PathBuf),
    /// The file is damaged (truncated, a changed byte, unknown format).
    #[error(
        "the wallet file {path} is corrupt ({detail}); restore it from a backup or re-create it from the mnemonic with `zkcredits wallet init --mnemonic-stdin`"
    )]
    CorruptWallet {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// There is no wallet file.
    #[error("no wallet at {0}; create one with `zkcredits wallet init`")]
    NoWallet(PathBuf),
    /// `init` refuses to overwrite a wallet.
    #[error("a wallet already exists at {0}; move it away first (it may hold funds)")]
    AlreadyExists(PathBuf),
    /// The mnemonic is not valid BIP-39.
    #[error("invalid BIP-39 mnemonic: {0}; check the words and their order")]
    InvalidMnemonic(#[source] bip39::Error),
    /// The Ethereum key is not a valid secp256k1 secret key.
    #[error("invalid Ethereum private key: {0}; give 32 bytes of hex")]
    InvalidEthKey(#[source] EthKeyError),
    /// No passphrase was given and none could be read.
    #[error("no passphrase: set ZKCREDITS_PASSPHRASE or run in a terminal ({0})")]
    NoPassphrase(#[source] std::io::Error),
    /// The passphrase typed to confirm a new wallet's is another.
    #[error("no passphrase: the two entries differ; run again and type the same passphrase twice")]
    PassphraseMismatch,
    /// File system error.
    #[error("i/o on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Why an Ethereum private key is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EthKeyError {
    /// Not 32 bytes of hex.
    #[error(transparent)]
    NotHex(hex::FromHexError),
    /// 32 bytes, but not a secp256k1 secret key (zero, or not below the group order).
    #[error("not a secp256k1 secret key ({0})")]
    NotAScalar(#[source] zkcredits_chain::alloy::signers::k256::ecdsa::Error),
}

impl WalletError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::WrongPassphrase(_) => "wrong_passphrase",
            Self::CorruptWallet { .. } => "corrupt_wallet",
            Self::NoWallet(_) => "no_wallet",
            Self::AlreadyExists(_) => "wallet_exists",
            Self::InvalidMnemonic(_) => "invalid_mnemonic",
            Self::InvalidEthKey(_) => "invalid_eth_key",
            Self::NoPassphrase(_) | Self::PassphraseMismatch => "no_passphrase",
            Self::Io { .. } => "wallet_io",
        }
    }
}

/// Argon2id cost parameters, stored in the file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane (OWASP's argon2id guidance): about half a second here.
    fn default() -> Self {
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters for tests only: never for a wallet holding funds.
    pub const INSECURE_TEST: Self = Self {
        m_cost_kib: 1024,
        t_cost: 1,
        p_cost: 1,
    };

    fn argon2(&self) -> Option<Argon2<'static>> {
        // Refuse absurd parameters from a file before allocating anything: at most
        // 4 GiB, 64 passes, 16 lanes.
        if self.m_cost_kib > 4 * 1024 * 1024 || self.t_cost > 64 || self.p_cost > 16 {
            return None;
        }
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32)).ok()?;
        Some(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// The decrypted wallet. Secrets are wiped on drop and never printed.
pub struct Wallet {
    mnemonic: Zeroizing<String>,
    eth_key: Option<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("mnemonic", &"<secret>")
            .field("eth_key", &self.eth_key.as_ref().map(|_| "<secret>"))
            .finish()
    }
}

impl Wallet {
    /// A new wallet with a fresh 24-word mnemonic from the operating system's RNG.
    pub fn generate() -> Self {
        let mut entropy = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut entropy[..]);
        // 32 bytes is a valid BIP-39 entropy length.
        let mnemonic = bip39::Mnemonic::from_entropy(&entropy[..]).expect("32 bytes of entropy");
        Self {
            mnemonic: Zeroizing::new(mnemonic.to_string()),
            eth_key: None,
        }
    }

    /// A wallet from an existing mnemonic (normalised: words separated by one space).
    pub fn from_mnemonic(phrase: &str) -> Result<Self, WalletError> {
        let mnemonic = bip39::Mnemonic::parse_normalized(phrase.trim())
            .map_err(WalletError::InvalidMnemonic)?;
        Ok(Self {
            mnemonic: Zeroizing::new(mnemonic.to_string()),
            eth_key: None,
        })
    }

    /// Sets the Ethereum key used for deposits (32 bytes of hex, `0x` optional).
    pub fn set_eth_key_hex(&mut self, hex_key: &str) -> Result<(), WalletError> {
        let text = hex_key.trim();
        let text = text.strip_prefix("0x").unwrap_or(text);
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, &mut key[..])
            .map_err(|e| WalletError::InvalidEthKey(EthKeyError::NotHex(e)))?;
        PrivateKeySigner::from_slice(&key[..])
            .map_err(|e| WalletError::InvalidEthKey(EthKeyError::NotAScalar(e)))?;
        self.eth_key = Some(key);
        Ok(())
    }

    /// The mnemonic, for `zkcredits wallet export`.
    pub fn mnemonic(&self) -> &str {
        &self.mnemonic
    }

    /// Whether an Ethereum key is stored.
    pub fn has_eth_key(&self) -> bool {
        self.eth_key.is_some()
    }

    /// The Ethereum signer for deposits, if a key is stored.
    pub fn eth_signer(&self) -> Option<PrivateKeySigner> {
        let key = self.eth_key.as_ref()?;
        PrivateKeySigner::from_slice(&key[..]).ok()
    }

    /// The protocol seed from which note secrets `k_j` are derived.
    pub fn seed(&self) -> WalletSeed {
        // The mnemonic was validated when the wallet was made.
        WalletSeed::from_mnemonic(&self.mnemonic).expect("validated mnemonic")
    }

    /// An independent storage key for `purpose`: HKDF-SHA256 over the BIP-39 seed.
    pub fn storage_key(&self, purpose: StoragePurpose) -> StorageKey {
        let mnemonic = bip39::Mnemonic::parse_normalized(&self.mnemonic).expect("validated");
        let bip39_seed = Zeroizing::new(mnemonic.to_seed_normalized(""));
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"zkcredits/storage/v1"), &bip39_seed[..]);
        let mut okm = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's output limit.
        hk.expand(purpose.info(), &mut okm)
            .expect("32-byte HKDF output");
        StorageKey::from_bytes(okm)
    }

    /// Encrypts the wallet to `path` (atomically, mode 0600). Refuses to overwrite an
    /// existing file unless `overwrite`.
    pub fn save(
        &self,
        path: &Path,
        passphrase: &str,
        params: KdfParams,
        overwrite: bool,
    ) -> Result<(), WalletError> {
        if !overwrite && path.exists() {
            return Err(WalletError::AlreadyExists(path.to_path_buf()));
        }
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.push(FILE_VERSION);
        header.push(KDF_ARGON2ID);
        header.extend_from_slice(&params.m_cost_kib.to_be_bytes());
        header.extend_from_slice(&params.t_cost.to_be_bytes());
        header.extend_from_slice(&params.p_cost.to_be_bytes());
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        header.extend_from_slice(&salt);
        header.extend_from_slice(&nonce);
        let key = derive_key(params, passphrase, &salt).ok_or_else(|| WalletError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("invalid argon2 parameters"),
        })?;
        let payload = self.payload();
        let key_bytes: &[u8; 32] = &key;
        let cipher = XChaCha20Poly1305::new(key_bytes.into());
        let body = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &payload,
                    aad: &header,
                },
            )
            .expect("encrypting a small payload");
        let mut file = header;
        file.extend_from_slice(&body);
        let digest = Sha256::digest(&file);
        file.extend_from_slice(&digest);
        write_private_atomic(path, &file)
    }

    /// Decrypts the wallet at `path`.
    pub fn load(path: &Path, passphrase: &str) -> Result<Self, WalletError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(WalletError::NoWallet(path.to_path_buf()));
            }
            Err(source) => {
                return Err(WalletError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let corrupt = |detail: &str| WalletError::CorruptWallet {
            path: path.to_path_buf(),
            detail: detail.to_string(),
        };
        if bytes.len() < HEADER_LEN + TAG_LEN + TRAILER_LEN {
            return Err(corrupt("too short"));
        }
        if &bytes[..4] != MAGIC {
            return Err(corrupt("not a zkcredits wallet file"));
        }
        let (content, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
        if Sha256::digest(content).as_slice() != trailer {
            return Err(corrupt("checksum mismatch"));
        }
        if bytes[4] != FILE_VERSION {
            return Err(corrupt(&format!("unknown file version {}", bytes[4])));
        }
        if bytes[5] != KDF_ARGON2ID {
            return Err(corrupt(&format!("unknown KDF {}", bytes[5])));
        }
        let u32_at =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let params = KdfParams {
            m_cost_kib: u32_at(6),
            t_cost: u32_at(10),
            p_cost: u32_at(14),
        };
        let salt = &bytes[18..18 + SALT_LEN];
        let nonce = &bytes[18 + SALT_LEN..HEADER_LEN];
        let header = &content[..HEADER_LEN];
        let body = &content[HEADER_LEN..];
        let key = derive_key(params, passphrase, salt)
            .ok_or_else(|| corrupt("unsupported argon2 parameters"))?;
        let key_bytes: &[u8; 32] = &key;
        let cipher = XChaCha20Poly1305::new(key_bytes.into());
        let payload = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: header,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| WalletError::WrongPassphrase(path.to_path_buf()))?;
        Self::from_payload(&payload).ok_or_else(|| corrupt("undecodable payload"))
    }

    fn payload(&self) -> Zeroizing<Vec<u8>> {
        let m = self.mnemonic.as_bytes();
        let mut out = Zeroizing::new(Vec::with_capacity(4 + m.len() + 33));
        out.push(PAYLOAD_VERSION);
        // A BIP-39 mnemonic is at most 24 words of 8 letters.
        out.extend_from_slice(&(m.len() as u16).to_be_bytes());
        out.extend_from_slice(m);
        match &self.eth_key {
            Some(k) => {
                out.push(1);
                out.extend_from_slice(&k[..]);
            }
            None => out.push(0),
        }
        out
    }

    fn from_payload(p: &[u8]) -> Option<Self> {
        if p.first() != Some(&PAYLOAD_VERSION) || p.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([p[1], p[2]]));
        let phrase = std::str::from_utf8(p.get(3..3 + len)?).ok()?;
        let mut wallet = Self::from_mnemonic(phrase).ok()?;
        let rest = &p[3 + len..];
        match rest {
            [0] => {}
            [1, key @ ..] if key.len() == 32 => {
                let mut k = Zeroizing::new([0u8; 32]);
                k.copy_from_slice(key);
                wallet.eth_key = Some(k);
            }
            _ => return None,
        }
        Some(wallet)
    }
}

fn derive_key(params: KdfParams, passphrase: &str, salt: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let argon2 = params.argon2()?;
    let mut key = Zeroizing::new([0u8; 32]);
    argon2
        .hash_password_into(passphrase.as_bytes(), salt, &mut key[..])
        .ok()?;
    Some(key)
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file that is synced and
/// renamed over `path`, then syncs the directory: a crash leaves the old file or the new
/// one, and the secret is never readable by others, not even briefly.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> Result<(), WalletError> {
    let io = |source| WalletError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "wallet".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            // Best effort where directories cannot be synced.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

/// Creates `dir` (and parents) with mode 0700 where it does not exist.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// The passphrase from `ZKCREDITS_PASSPHRASE`, else from a terminal prompt (asked twice
/// when `confirm`, for a new wallet).
pub fn passphrase(confirm: bool) -> Result<Zeroizing<String>, WalletError> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Ok(Zeroizing::new(p));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("wallet passphrase: ").map_err(WalletError::NoPassphrase)?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("repeat the passphrase: ")
                .map_err(WalletError::NoPassphrase)?,
        );
        if *first != *again {
            return Err(WalletError::PassphraseMismatch);
        }
    }
    Ok(first)
}
