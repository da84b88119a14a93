//! Where the client keeps its files: `$ZKCREDITS_HOME` (default `~/.zkcredits`).
//!
//! ```text
//! wallet.zkw                               the encrypted wallet
//! keys/                                    proving keys ($ZKCREDITS_KEYS overrides)
//! notes-<chain id>-<pool>.sqlite           the note journal of one pool
//! tree-<chain id>-<pool>.bin               the indexer's tree of one pool
//! precompute/                              encrypted per-note precomputations
//! gateway-<chain id>-<pool>.json           the gateway's last discovery document
//! ```

use std::path::{Path, PathBuf};

use zkcredits_chain::Deployment;

/// The client's data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHome {
    dir: PathBuf,
}

impl ClientHome {
    /// A data directory at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$ZKCREDITS_HOME`, else `~/.zkcredits`.
    pub fn from_env() -> Self {
        if let Some(dir) = std::env::var_os("ZKCREDITS_HOME") {
            return Self::new(dir);
        }
        let base = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        Self::new(base.join(".zkcredits"))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The wallet file.
    pub fn wallet(&self) -> PathBuf {
        self.dir.join("wallet.zkw")
    }

    /// The key directory: `$ZKCREDITS_KEYS`, else `keys/`.
    pub fn keys(&self) -> PathBuf {
        std::env::var_os("ZKCREDITS_KEYS").map_or_else(|| self.dir.join("keys"), PathBuf::from)
    }

    fn tag(deployment: &Deployment) -> String {
        format!("{}-{:#x}", deployment.chain_id, deployment.pool)
    }

    /// The note journal of `deployment`'s pool.
    pub fn journal(&self, deployment: &Deployment) -> PathBuf {
        self.dir
            .join(format!("notes-{}.sqlite", Self::tag(deployment)))
    }

    /// The persisted tree of `deployment`'s pool.
    pub fn tree_state(&self, deployment: &Deployment) -> PathBuf {
        self.dir.join(format!("tree-{}.bin", Self::tag(deployment)))
    }

    /// The last discovery document fetched from the gateway of `deployment`'s pool
    /// (its server keys let a unilateral close run without the gateway).
    pub fn discovery(&self, deployment: &Deployment) -> PathBuf {
        self.dir
            .join(format!("gateway-{}.json", Self::tag(deployment)))
    }

    /// The precompute cache directory.
    pub fn precompute(&self) -> PathBuf {
        self.dir.join("precompute")
    }

    /// The default deployment file of `zkcredits devnet`.
    pub fn devnet_deployment(&self) -> PathBuf {
        self.dir.join("devnet.json")
    }

    /// The deployment `zkcredits join` (or `zkcredits deploy`) saved.
    pub fn joined_deployment(&self) -> PathBuf {
        self.dir.join("deployment.json")
    }
}
