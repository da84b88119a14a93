//! The client's view of the pool's note tree: a snapshot that proofs are made against,
//! refreshed from the chain (through the event [`Indexer`]) when a note is missing or
//! the gateway calls the root stale.

use std::sync::{Arc, RwLock};

use zkcredits_chain::{Indexer, SyncReport};
use zkcredits_protocol::merkle::{LeanImt, Root};

use crate::error::ClientError;

/// A tree snapshot and, optionally, the indexer that refreshes it.
#[derive(Debug)]
pub struct TreeView {
    indexer: tokio::sync::Mutex<Option<Indexer>>,
    snapshot: RwLock<Arc<LeanImt>>,
}

impl TreeView {
    /// A view kept in sync from the chain by `indexer` (which may resume from its
    /// persisted state).
    pub fn from_indexer(indexer: Indexer) -> Self {
        let snapshot = Arc::new(indexer.tree().clone());
        Self {
            indexer: tokio::sync::Mutex::new(Some(indexer)),
            snapshot: RwLock::new(snapshot),
        }
    }

    /// A fixed tree that never changes (offline use and tests).
    pub fn fixed(tree: LeanImt) -> Self {
        Self {
            indexer: tokio::sync::Mutex::new(None),
            snapshot: RwLock::new(Arc::new(tree)),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<LeanImt> {
        self.snapshot
            .read()
            .map_or_else(|poisoned| poisoned.into_inner().clone(), |s| s.clone())
    }

    /// The current root.
    pub fn root(&self) -> Root {
        self.snapshot().root()
    }

    /// Syncs from the chain (a no-op for a fixed tree) and publishes the new snapshot.
    pub async fn sync(&self) -> Result<Option<SyncReport>, ClientError> {
        let mut guard = self.indexer.lock().await;
        let Some(indexer) = guard.as_mut() else {
            return Ok(None);
        };
        let report = indexer.sync().await.map_err(ClientError::TreeSync)?;
        if report.deposits > 0 || self.snapshot().len() != indexer.tree().len() {
            let fresh = Arc::new(indexer.tree().clone());
            match self.snapshot.write() {
                Ok(mut s) => *s = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            }
        }
        Ok(Some(report))
    }
}
