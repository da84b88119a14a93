//! Encrypted Ethereum JSON keystores (Web3 Secret Storage, as geth, clef and `cast wallet`
//! write them): the signer of a real deployment, so that no private key ever sits on a
//! command line or in the environment.
//!
//! Decryption is alloy's (`signer-keystore`: scrypt or PBKDF2, AES-128-CTR, the keccak MAC);
//! this module only turns its failures into errors a person can act on. Neither the
//! password nor the key appears in any error.

use std::path::{Path, PathBuf};

use alloy::signers::local::{LocalSignerError, PrivateKeySigner};

/// Why a keystore could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// The file could not be read.
    #[error("cannot read the keystore {path:?}: {source}")]
    Unreadable {
        /// The keystore file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an Ethereum JSON keystore (or one this code cannot read).
    #[error(
        "{path:?} is not an Ethereum JSON keystore (the encrypted file geth, clef or `cast wallet \
         import` write): {reason}"
    )]
    Malformed {
        /// The keystore file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The password does not open the keystore (its MAC does not match).
    #[error("wrong password for the keystore {path:?} (the keystore's MAC does not match)")]
    WrongPassword {
        /// The keystore file.
        path: PathBuf,
    },
}

/// Decrypts the keystore at `path` with `password` into a signer.
pub fn decrypt_keystore(
    path: &Path,
    password: impl AsRef<[u8]>,
) -> Result<PrivateKeySigner, KeystoreError> {
    // Read and parse it first, so that a missing file or a file of another kind is named
    // as such rather than as a decryption failure.
    let text = std::fs::read(path).map_err(|source| KeystoreError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let malformed = |reason: String| KeystoreError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let json: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| malformed(format!("not JSON ({e})")))?;
    if json.get("crypto").or_else(|| json.get("Crypto")).is_none() {
        return Err(malformed("it has no \"crypto\" section".into()));
    }
    PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| match e {
        LocalSignerError::EthKeystoreError(eth_keystore::KeystoreError::MacMismatch) => {
            KeystoreError::WrongPassword {
                path: path.to_path_buf(),
            }
        }
        LocalSignerError::EthKeystoreError(eth_keystore::KeystoreError::StdIo(e)) => {
            KeystoreError::Unreadable {
                path: path.to_path_buf(),
                source: std::io::Error::other(e),
            }
        }
        other => malformed(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keystore_opens_with_its_password_only() {
        let dir = std::env::temp_dir().join(format!("zkcredits-keystore-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let key = PrivateKeySigner::random();
        let (_, _) = PrivateKeySigner::encrypt_keystore(
            &dir,
            &mut rand::thread_rng(),
            key.to_bytes(),
            "right horse",
            Some("k.json"),
        )
        .expect("encrypt");
        let path = dir.join("k.json");
        let opened = decrypt_keystore(&path, "right horse").expect("decrypt");
        assert_eq!(opened.address(), key.address());
        assert!(matches!(
            decrypt_keystore(&path, "wrong horse"),
            Err(KeystoreError::WrongPassword { .. })
        ));
        assert!(matches!(
            decrypt_keystore(&dir.join("absent.json"), "x"),
            Err(KeystoreError::Unreadable { .. })
        ));
        std::fs::write(dir.join("other.json"), b"{\"address\": \"00\"}").expect("write");
        assert!(matches!(
            decrypt_keystore(&dir.join("other.json"), "x"),
            Err(KeystoreError::Malformed { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
