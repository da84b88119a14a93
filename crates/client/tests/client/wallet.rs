//! The wallet file: round trip, wrong passphrase, damaged files, permissions.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::wallet::{KdfParams, Wallet, WalletError};

const PHRASE: &str = "legal winner thank year wave sausage worth useful legal winner thank yellow";
const ETH_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

fn saved(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("wallet.zkw");
    let mut w = Wallet::from_mnemonic(PHRASE).unwrap();
    w.set_eth_key_hex(ETH_KEY).unwrap();
    w.save(&path, "correct horse", KdfParams::INSECURE_TEST, false)
        .unwrap();
    path
}

#[test]
fn a_saved_wallet_opens_with_its_passphrase_and_keeps_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let w = Wallet::load(&path, "correct horse").unwrap();
    assert_eq!(w.mnemonic(), PHRASE);
    let original = Wallet::from_mnemonic(PHRASE).unwrap();
    assert_eq!(w.seed().note_secret(3), original.seed().note_secret(3));
    assert_eq!(
        w.eth_signer().unwrap().address(),
        zkcredits_chain::anvil::dev_address(1)
    );
    // Nothing secret is in the file in the clear, and Debug shows nothing secret.
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.windows(5).any(|w| w == b"legal"));
    assert!(!format!("{w:?}").contains("legal"));
    // Storage keys are per purpose and per wallet.
    let a = w.storage_key(StoragePurpose::Journal).seal(b"", b"x");
    assert!(w.storage_key(StoragePurpose::Journal).open(b"", &a).is_ok());
    assert!(
        w.storage_key(StoragePurpose::PrecomputeCache)
            .open(b"", &a)
            .is_err()
    );
    assert!(
        Wallet::generate()
            .storage_key(StoragePurpose::Journal)
            .open(b"", &a)
            .is_err()
    );
}

#[test]
fn the_file_is_private_and_init_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = Wallet::generate().save(&path, "x", KdfParams::INSECURE_TEST, false);
    assert!(matches!(again, Err(WalletError::AlreadyExists(_))));
    assert_eq!(
        Wallet::load(&path, "correct horse").unwrap().mnemonic(),
        PHRASE
    );
}

#[test]
fn a_wrong_passphrase_is_told_apart_from_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let err = Wallet::load(&path, "wrong horse").unwrap_err();
    assert!(matches!(err, WalletError::WrongPassphrase(_)), "{err}");
    assert_eq!(err.code(), "wrong_passphrase");
    assert!(err.to_string().contains("ZKCREDITS_PASSPHRASE"));

    let good = std::fs::read(&path).unwrap();
    // A flipped bit anywhere (header, KDF parameters, ciphertext, checksum) is corruption.
    for pos in [
        0,
        5,
        8,
        20,
        60,
        good.len() / 2,
        good.len() - 40,
        good.len() - 1,
    ] {
        let mut bad = good.clone();
        bad[pos] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let err = Wallet::load(&path, "correct horse").unwrap_err();
        assert!(
            matches!(err, WalletError::CorruptWallet { .. }),
            "byte {pos}: {err}"
        );
        assert_eq!(err.code(), "corrupt_wallet");
    }
    for len in [0, 10, good.len() - 33, good.len() - 1] {
        std::fs::write(&path, &good[..len]).unwrap();
        let err = Wallet::load(&path, "correct horse").unwrap_err();
        assert!(
            matches!(err, WalletError::CorruptWallet { .. }),
            "length {len}: {err}"
        );
    }
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        Wallet::load(&path, "correct horse"),
        Err(WalletError::NoWallet(_))
    ));
}

#[test]
fn changed_kdf_parameters_are_refused_even_with_a_fixed_checksum() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // Change t_cost (bytes 10..14) and recompute the plain checksum: the header is
    // authenticated by the AEAD, so the passphrase no longer opens it.
    bytes[13] = 0;
    bytes[12] = 0;
    bytes[11] = 0;
    bytes[10] = 0;
    bytes[13] = 2;
    let n = bytes.len();
    let digest = Sha256::digest(&bytes[..n - 32]);
    bytes[n - 32..].copy_from_slice(&digest);
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Wallet::load(&path, "correct horse"),
        Err(WalletError::WrongPassphrase(_))
    ));
}

#[test]
fn an_invalid_mnemonic_or_eth_key_is_refused() {
    assert!(matches!(
        Wallet::from_mnemonic("legal winner thank year"),
        Err(WalletError::InvalidMnemonic(_))
    ));
    let mut w = Wallet::generate();
    assert!(matches!(
        w.set_eth_key_hex("0x1234"),
        Err(WalletError::InvalidEthKey(_))
    ));
    assert_eq!(w.mnemonic().split(' ').count(), 24);
}
