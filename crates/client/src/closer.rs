//! Closing notes (`docs/PROTOCOL.md §6`) from the journal: cooperative (the gateway's
//! clearance, paid at once) or unilateral (held for the challenge window, then
//! finalized).
//!
//! The flag `m`: a note whose last ticket has no receipt (`needs_close(m = 1)` in the
//! journal) closes at index `n + 1` and burns `P_max`, because the gateway might hold
//! that ticket. A cooperative close first asks for the clearance of index `n` with
//! `m = 0`: the gateway grants it only after recording `N_n` as spent, which fails
//! exactly when it already holds that ticket; then nothing is burned. A cooperative
//! close is final at once, so the share it reveals at index `n` cannot be challenged.
//! A unilateral close uses the journal's `m`, since during its challenge window a
//! second share of index `n` would cost the whole note.

use zkcredits_chain::alloy::primitives::Address;
use zkcredits_chain::{
    CloseOutcome, CloseRequestOutcome, Deployment, Indexer, NoteToClose, PoolClient, close_ticket,
    prepare_close, verify_clearance,
};
use zkcredits_circuits::prover::CloseProver;
use zkcredits_protocol::note::WalletSeed;

use crate::error::ClientError;
use crate::gateway_client::{GatewayClient, GatewayError};
use crate::journal::{Journal, NoteStatus};
use crate::spender::GatewayConstants;

/// What a close needs.
pub struct CloseContext<'a> {
    /// The wallet's seed.
    pub seed: &'a WalletSeed,
    /// The note journal.
    pub journal: &'a mut Journal,
    /// The pool, with a key that pays gas.
    pub pool: &'a PoolClient,
    /// The deployment.
    pub deployment: &'a Deployment,
    /// The note tree.
    pub indexer: &'a mut Indexer,
    /// The close prover.
    pub prover: &'a CloseProver,
    /// The gateway and its published constants (its keys name the signer of each
    /// note's last receipt).
    pub gateway: &'a GatewayClient,
    /// What the gateway published.
    pub constants: &'a GatewayConstants,
}

/// What a close did.
#[derive(Debug)]
pub enum CloseReport {
    /// Paid out (cooperative).
    Closed {
        /// The note.
        note: u64,
        /// The flag used.
        m: u8,
        /// The payout.
        outcome: CloseOutcome,
    },
    /// Waiting for the challenge window (unilateral).
    Requested {
        /// The note.
        note: u64,
        /// The flag used.
        m: u8,
        /// The pending close.
        outcome: CloseRequestOutcome,
    },
}

/// A pending unilateral close and whether it could be finalized.
#[derive(Debug)]
pub enum FinalizeReport {
    /// Finalized now.
    Finalized {
        /// The note.
        note: u64,
        /// The payout.
        outcome: Box<CloseOutcome>,
    },
    /// Still in its challenge window.
    Waiting {
        /// The note.
        note: u64,
        /// Unix time from which `finalize` is possible.
        deadline: u64,
    },
    /// Found closed or slashed on chain; the journal now says so.
    AlreadyDone {
        /// The note.
        note: u64,
    },
}

fn chain(e: impl std::fmt::Display) -> ClientError {
    ClientError::Chain(e.to_string())
}

fn gateway(e: &GatewayError) -> ClientError {
    ClientError::Chain(format!(
        "the gateway refused the close clearance ({e}); `--unilateral` closes without it"
    ))
}

impl CloseContext<'_> {
    /// Syncs the tree and returns a root the pool knows, committing the current one if
    /// the note is newer than the last commit.
    async fn known_root(&mut self) -> Result<zkcredits_protocol::Fr, ClientError> {
        self.indexer.sync().await.map_err(chain)?;
        let root = self.indexer.root();
        if self.pool.is_known_root(root).await.map_err(chain)? {
            return Ok(root);
        }
        self.pool.commit_root().await.map_err(chain)?;
        self.indexer.sync().await.map_err(chain)?;
        let root = self.indexer.root();
        if !self.pool.is_known_root(root).await.map_err(chain)? {
            return Err(ClientError::TreeSync(
                "the pool does not know the synced root even after a commit; retry".into(),
            ));
        }
        Ok(root)
    }

    /// Closes note `j`, paying `U` to `payout`.
    pub async fn close(
        &mut self,
        j: u64,
        payout: Address,
        unilateral: bool,
    ) -> Result<CloseReport, ClientError> {
        let note = self.journal.note(j)?;
        let lost = match note.status {
            NoteStatus::Free => false,
            NoteStatus::NeedsClose { m } => m == 1,
            NoteStatus::InFlight => {
                return Err(ClientError::StaleState(format!(
                    "note {j} has a request in flight; start `zkcredits proxy` or `zkcredits call` once to recover it, then close"
                )));
            }
            other => {
                return Err(ClientError::StaleState(format!(
                    "note {j} is {other}: nothing to close"
                )));
            }
        };
        let info = note
            .deposit
            .ok_or_else(|| ClientError::StaleState(format!("note {j} has no deposit")))?;
        let key_id = if note.state.index == 0 {
            self.constants.current_key.id
        } else {
            note.last_key_id.unwrap_or(self.constants.current_key.id)
        };
        let server_key = std::iter::once(&self.constants.current_key)
            .chain(&self.constants.accepted_keys)
            .find(|k| k.id == key_id)
            .map(|k| k.key)
            .ok_or(ClientError::ServerKeyRetired { note: j, key_id })?;
        // No request may start on this note from here on.
        self.journal
            .set_final_status(j, NoteStatus::NeedsClose { m: u8::from(lost) })?;
        let root = self.known_root().await?;
        let tree = self.indexer.tree();
        let path = tree
            .path(info.leaf_index)
            .map_err(|e| ClientError::NoteNotInTree {
                note: j,
                detail: e.to_string(),
            })?;
        let secret = self.seed.note_secret(j);
        let to_close = NoteToClose {
            secret: &secret,
            deposit: info.deposit,
            expiry_epoch: info.expiry_epoch,
            path: &path,
            root,
            state: &note.state,
            server_key,
        };
        let prove = |m: bool| {
            prepare_close(
                self.prover,
                self.deployment,
                to_close,
                payout,
                m,
                &mut rand::rngs::OsRng,
            )
            .map_err(|e| ClientError::Proving(e.to_string()))
        };
        if unilateral {
            let prepared = prove(lost)?;
            let outcome = self.pool.close_unilateral(&prepared).await.map_err(chain)?;
            return Ok(CloseReport::Requested {
                note: j,
                m: u8::from(lost),
                outcome,
            });
        }
        let tries: &[bool] = if lost { &[false, true] } else { &[false] };
        for (n, &m) in tries.iter().enumerate() {
            let (nc, nj) = close_ticket(&secret, &note.state, m);
            let reply = match self.gateway.close_clearance(nc, nj).await {
                Ok(r) => r,
                Err(GatewayError::Refused { ref code, .. })
                    if code == "ticket_spent" && n + 1 < tries.len() =>
                {
                    tracing::info!(
                        note = j,
                        "the gateway holds the last ticket: closing with m = 1"
                    );
                    continue;
                }
                Err(e) => return Err(gateway(&e)),
            };
            verify_clearance(
                &reply.signature,
                reply.signer,
                self.deployment.chain_id,
                self.deployment.pool,
                nc,
                nj,
            )
            .map_err(|e| ClientError::Chain(format!("the clearance is invalid: {e}")))?;
            let prepared = prove(m)?;
            let outcome = self
                .pool
                .close_cooperative(&prepared, &reply.signature)
                .await
                .map_err(chain)?;
            self.journal.set_final_status(j, NoteStatus::Closed)?;
            return Ok(CloseReport::Closed {
                note: j,
                m: u8::from(m),
                outcome,
            });
        }
        Err(ClientError::Internal("no close was attempted".into()))
    }

    /// Finalizes every pending unilateral close whose window has passed.
    pub async fn finalize_all(&mut self) -> Result<Vec<FinalizeReport>, ClientError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut out = Vec::new();
        for note in self.journal.notes()? {
            if !matches!(note.status, NoteStatus::NeedsClose { .. }) {
                continue;
            }
            let nc = self.seed.note_secret(note.j).close_nullifier();
            match self.pool.pending_close(nc).await.map_err(chain)? {
                Some(p) if p.deadline <= now => {
                    let outcome = self.pool.finalize(nc).await.map_err(chain)?;
                    self.journal.set_final_status(note.j, NoteStatus::Closed)?;
                    out.push(FinalizeReport::Finalized {
                        note: note.j,
                        outcome: Box::new(outcome),
                    });
                }
                Some(p) => out.push(FinalizeReport::Waiting {
                    note: note.j,
                    deadline: p.deadline,
                }),
                None => {
                    if self.pool.closed_or_slashed(nc).await.map_err(chain)? {
                        self.journal.set_final_status(note.j, NoteStatus::Closed)?;
                        out.push(FinalizeReport::AlreadyDone { note: note.j });
                    }
                }
            }
        }
        Ok(out)
    }
}
