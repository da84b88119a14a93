//! The chain crate against a real anvil: every test starts its own node on a free port
//! (`TestChain`), so they run in parallel. Needs `npm ci` in `contracts/` (anvil).

mod close;
mod money;
mod reverts;
mod tools;
mod tree;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use zkcredits_chain::{ContractError, Error};
use zkcredits_protocol::Fr;

/// A uniformly random field element (a note secret).
pub fn random_fr(rng: &mut impl Rng) -> Fr {
    use ark_ff::PrimeField;
    let bytes: [u8; 32] = rng.r#gen();
    Fr::from_be_bytes_mod_order(&bytes)
}

/// Asserts that `result` failed with the contract's named error `expected`.
#[track_caller]
pub fn assert_refused<T: std::fmt::Debug>(result: Result<T, Error>, expected: ContractError) {
    match result {
        Err(Error::Contract(got)) => assert_eq!(got, expected),
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory under the system's temp dir.
    pub fn new(label: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "zkcredits-chain-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
