//! Closing notes (`docs/PROTOCOL.md §6`) from the journal: cooperative (the gateway's
//! clearance, paid at once) or unilateral (held for the challenge window, then
//! finalized).
//!
//! The flag `m`: a note whose ticket `n` has shown its share without a receipt the
//! note can use (`needs_close(m = 1)` in the journal: lost answer, refusal before
//! admission, a receipt outside the pool's limits) closes at index `n + 1` and burns
//! `P_max`, cooperatively or not. Never `m = 0` there: the close's calldata carries a
//! share of the ticket it spends, and a provider that kept the share of request `n`
//! (while answering "refused" or nothing) would grant the clearance for `m = 0` and
//! recover `k` from the two shares.
//!
//! The exit needs no gateway: a unilateral close takes the server key from the
//! discovery document saved in the client home, and [`finalize_pending`] judges the
//! challenge deadline by the chain's latest block, not this machine's clock.
//!
//! The exit links nothing: no close transaction is sent from the account that deposited
//! (it would tie the deposit to the payout and to the note's total spend). A cooperative
//! close is relayed by the gateway by default ([`CloseMode::Relayed`]: the relay's fee
//! and address are bound into the proof, and this client never sends a transaction);
//! otherwise the close goes from a key the user funded for it, which this module refuses
//! when it is the deposit account.

use zkcredits_chain::alloy::primitives::Address;
use zkcredits_chain::alloy::providers::Provider;
use zkcredits_chain::{
    CloseOutcome, ClosePayout, CloseRequestOutcome, Deployment, Indexer, NoteToClose, PoolClient,
    RelayedClose, close_ticket, prepare_close, verify_clearance,
};
use zkcredits_circuits::prover::CloseProver;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::note::WalletSeed;

use crate::error::{ClientError, RelayFailure, RelayUnusable, StaleState};
use crate::gateway_client::GatewayClient;
use crate::gateway_constants::GatewayConstants;
use crate::journal::{Journal, NoteStatus};

/// How a note is closed, and who sends the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseMode {
    /// Cooperative, sent by the gateway's relay for at most `max_fee` credit units: this
    /// client sends no transaction at all (it only reads the chain).
    Relayed {
        /// The most the relay may take out of the payout, credit units.
        max_fee: Credits,
    },
    /// Cooperative, sent from the context's pool account.
    Cooperative,
    /// Unilateral (no gateway), sent from the context's pool account; paid after the
    /// challenge window.
    Unilateral,
}

/// What a close needs.
pub struct CloseContext<'a> {
    /// The wallet's seed.
    pub seed: &'a WalletSeed,
    /// The note journal.
    pub journal: &'a mut Journal,
    /// The pool. Its account pays the gas of cooperative and unilateral closes (and of a
    /// root commit they need); a relayed close only reads through it.
    pub pool: &'a PoolClient,
    /// The account the notes were deposited from, when known: no close is sent from it.
    pub deposit_account: Option<Address>,
    /// The deployment.
    pub deployment: &'a Deployment,
    /// The note tree.
    pub indexer: &'a mut Indexer,
    /// The close prover.
    pub prover: &'a CloseProver,
    /// The gateway, for a cooperative close's clearance; `None` when it is not
    /// reachable (only unilateral closes then).
    pub gateway: Option<&'a GatewayClient>,
    /// What the gateway published, live or as saved (its keys name the signer of each
    /// note's last receipt).
    pub constants: &'a GatewayConstants,
    /// The gateway's close relay, as published.
    pub relay: Option<crate::gateway_client::RelayOffer>,
}

/// What a close did.
#[derive(Debug)]
pub enum CloseReport {
    /// Paid out (cooperative, sent by this client or by the gateway's relay: the
    /// outcome is read from the chain's receipt either way).
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
    /// Found closed or slashed on chain already (an earlier run's close landed after its
    /// answer was lost); the journal now says so.
    AlreadySettled {
        /// The note.
        note: u64,
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

fn chain(e: impl Into<zkcredits_chain::Error>) -> ClientError {
    ClientError::Chain(e.into())
}

impl CloseContext<'_> {
    /// Refuses to send from the deposit account.
    fn check_sender(&self) -> Result<(), ClientError> {
        match self.deposit_account {
            Some(a) if a == self.pool.sender() => Err(ClientError::DepositAccountSends {
                address: a.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Syncs the tree and returns a root the pool knows, committing the current one (from
    /// this client's account) if the note is newer than the last commit.
    async fn known_root(&mut self) -> Result<zkcredits_protocol::merkle::Root, ClientError> {
        self.indexer.sync().await.map_err(chain)?;
        let root = self.indexer.root();
        if self.pool.is_known_root(root).await.map_err(chain)? {
            return Ok(root);
        }
        self.check_sender()?;
        self.pool.commit_root().await.map_err(chain)?;
        self.indexer.sync().await.map_err(chain)?;
        let root = self.indexer.root();
        if !self.pool.is_known_root(root).await.map_err(chain)? {
            return Err(ClientError::RootNotCommitted { root });
        }
        Ok(root)
    }

    /// Closes note `j`, paying `U` (less a relay's fee) to `payout`.
    pub async fn close(
        &mut self,
        j: u64,
        payout: Address,
        mode: CloseMode,
    ) -> Result<CloseReport, ClientError> {
        let unilateral = mode == CloseMode::Unilateral;
        // Who is paid, and who sends: decided (and refused) before anything changes.
        let to = match mode {
            CloseMode::Relayed { max_fee } => {
                let offer = self.relay_offer()?;
                // The discovery document's plain number becomes an amount here.
                let fee = Credits::new(offer.fee);
                if fee > max_fee {
                    return Err(RelayUnusable::FeeAboveMax { fee, max_fee }.into());
                }
                ClosePayout::relayed(payout, offer.relayer, fee)
            }
            CloseMode::Cooperative | CloseMode::Unilateral => {
                self.check_sender()?;
                ClosePayout::direct(payout)
            }
        };
        let note = self.journal.note(j)?;
        let lost = match note.status {
            NoteStatus::Free => false,
            NoteStatus::NeedsClose { m } => m == 1,
            NoteStatus::InFlight => {
                return Err(StaleState::CloseInFlight { note: j }.into());
            }
            other => {
                return Err(StaleState::NothingToClose {
                    note: j,
                    status: other,
                }
                .into());
            }
        };
        let m = u8::from(lost);
        let gateway = match (unilateral, self.gateway) {
            (true, _) => None,
            (false, Some(g)) => Some(g),
            (false, None) => {
                return Err(ClientError::NoGatewayForClose);
            }
        };
        let info = note.deposit.ok_or(StaleState::NoDeposit { note: j })?;
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
        // The pool refuses a close naming a key it does not accept; say so before
        // proving rather than after a reverted gas estimate.
        if !self
            .pool
            .server_key_accepted(server_key)
            .await
            .map_err(chain)?
        {
            return Err(ClientError::ServerKeyNotOnChain { key_id });
        }
        let secret = self.seed.note_secret(j);
        let (nc, nj) = close_ticket(&secret, &note.state, lost);
        if self.pool.closed_or_slashed(nc).await.map_err(chain)? {
            // An earlier close landed after its answer was lost (or the note was
            // slashed): settle the journal from the chain's events, send nothing.
            let status = chain_status(self.seed, self.journal, self.pool, self.deployment).await?;
            tracing::info!(note = j, ?status, "the note is already settled on chain");
            return Ok(CloseReport::AlreadySettled { note: j });
        }
        // A unilateral close shows a share of ticket `nj` on chain for the whole challenge
        // window. If the gateway holds a receipt for that ticket, this journal is older
        // than the note (a copy put back) and the close would be challenged and the note
        // slashed: refuse while the gateway can still say so. (A cooperative close needs
        // no such check: the gateway refuses to clear a spent ticket.)
        if unilateral && let Some(gateway) = self.gateway {
            match gateway.receipt(nj).await {
                Ok(Some(_)) => {
                    return Err(StaleState::UnrecordedReceipt {
                        note: j,
                        index: note.state.index + u64::from(lost),
                    }
                    .into());
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    note = j,
                    error = %e,
                    "cannot ask the gateway whether the close's ticket is spent; closing from the journal's state"
                ),
            }
        }
        // No request may start on this note from here on.
        self.journal.mark_needs_close(j, m)?;
        let root = if matches!(mode, CloseMode::Relayed { .. }) {
            // The relay commits the root when the pool does not know it yet: this client
            // sends nothing.
            self.indexer.sync().await.map_err(chain)?;
            self.indexer.root()
        } else {
            self.known_root().await?
        };
        let tree = self.indexer.tree();
        let path = tree
            .path(info.leaf_index)
            .map_err(|e| ClientError::NoteNotInTree {
                note: j,
                reason: e.into(),
            })?;
        let to_close = NoteToClose {
            secret: &secret,
            deposit: info.deposit,
            expiry_epoch: info.expiry_epoch,
            path: &path,
            root,
            state: &note.state,
            server_key,
        };
        let prove = || {
            prepare_close(
                self.prover,
                self.deployment,
                to_close,
                to,
                lost,
                &mut rand::rngs::OsRng,
            )
            .map_err(|e| match e {
                zkcredits_chain::Error::RelayFeeTooHigh { fee, payout } => {
                    RelayUnusable::FeeAbovePayout { fee, payout }.into()
                }
                zkcredits_chain::Error::Circuit(e) => ClientError::Proving(e),
                other => chain(other),
            })
        };
        let Some(gateway) = gateway else {
            let prepared = prove()?;
            let outcome = self.pool.close_unilateral(&prepared).await.map_err(chain)?;
            return Ok(CloseReport::Requested {
                note: j,
                m,
                outcome,
            });
        };
        let reply = gateway
            .close_clearance(nc, nj)
            .await
            .map_err(ClientError::ClearanceRefused)?;
        verify_clearance(
            &reply.signature,
            reply.signer,
            self.deployment.chain_id,
            self.deployment.pool,
            nc,
            nj,
        )
        .map_err(ClientError::ClearanceInvalid)?;
        let prepared = prove()?;
        let outcome = if let CloseMode::Relayed { .. } = mode {
            let calldata = RelayedClose::encode(&prepared, &reply.signature);
            let relayed = gateway
                .close_relay(&calldata)
                .await
                .map_err(RelayFailure::Gateway)?;
            // The relay's word is checked against the chain: the receipt of the
            // transaction it names must hold this note's `Closed` event.
            let hash = relayed
                .tx_hash
                .parse()
                .map_err(|source| RelayFailure::NoTransaction {
                    tx_hash: relayed.tx_hash.clone(),
                    source,
                })?;
            self.pool
                .closed_outcome_of(hash, nc)
                .await
                .map_err(RelayFailure::NotClosed)?
        } else {
            self.pool
                .close_cooperative(&prepared, &reply.signature)
                .await
                .map_err(chain)?
        };
        self.journal.set_final_status(j, NoteStatus::Closed)?;
        Ok(CloseReport::Closed {
            note: j,
            m,
            outcome,
        })
    }

    /// The gateway's relay, as its discovery document publishes it.
    fn relay_offer(&self) -> Result<crate::gateway_client::RelayOffer, ClientError> {
        if self.gateway.is_none() {
            return Err(RelayUnusable::NoGateway.into());
        }
        self.relay.ok_or_else(|| RelayUnusable::NotOffered.into())
    }

    /// Finalizes every pending unilateral close whose window has passed
    /// ([`finalize_pending`]).
    pub async fn finalize_all(&mut self) -> Result<Vec<FinalizeReport>, ClientError> {
        self.check_sender()?;
        finalize_pending(self.seed, self.journal, self.pool).await
    }
}

/// Finalizes every pending unilateral close of the journal's notes whose challenge
/// window has passed by the chain's clock (the pool compares the deadline with the
/// block's timestamp, which may run ahead of or behind this machine's). Needs no
/// gateway: only the chain.
pub async fn finalize_pending(
    seed: &WalletSeed,
    journal: &mut Journal,
    pool: &PoolClient,
) -> Result<Vec<FinalizeReport>, ClientError> {
    let now = pool.chain_time().await.map_err(chain)?;
    let mut out = Vec::new();
    for note in journal.notes()? {
        if !matches!(note.status, NoteStatus::NeedsClose { .. }) {
            continue;
        }
        let nc = seed.note_secret(note.j).close_nullifier();
        match pool.pending_close(nc).await.map_err(chain)? {
            Some(p) if p.deadline <= now => {
                let outcome = pool.finalize(nc).await.map_err(chain)?;
                journal.set_final_status(note.j, NoteStatus::Closed)?;
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
                if pool.closed_or_slashed(nc).await.map_err(chain)? {
                    journal.set_final_status(note.j, NoteStatus::Closed)?;
                    out.push(FinalizeReport::AlreadyDone { note: note.j });
                }
            }
        }
    }
    Ok(out)
}

/// Where a note stands on chain, for the notes the journal does not know as settled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainStatus {
    /// Notes whose unilateral close waits for its challenge window.
    pub closing: Vec<u64>,
    /// Notes found closed on chain (the journal now says so).
    pub closed: Vec<u64>,
    /// Notes found slashed on chain: their secret is public and their deposit gone
    /// (the journal now says so).
    pub slashed: Vec<u64>,
}

/// Asks the pool about every deposited note the journal does not know as closed or
/// slashed, and records what it finds: a note settled on chain without this journal's
/// close was slashed (or closed from another copy of the wallet, which the pool's
/// `Closed` and `Slashed` logs tell apart).
pub async fn chain_status(
    seed: &WalletSeed,
    journal: &mut Journal,
    pool: &PoolClient,
    deployment: &Deployment,
) -> Result<ChainStatus, ClientError> {
    let mut status = ChainStatus::default();
    let mut settled = Vec::new();
    for note in journal.notes()? {
        if note.deposit.is_none() || matches!(note.status, NoteStatus::Closed | NoteStatus::Slashed)
        {
            continue;
        }
        let nc = seed.note_secret(note.j).close_nullifier();
        if pool.closed_or_slashed(nc).await.map_err(chain)? {
            settled.push((note.j, nc));
        } else if pool.pending_close(nc).await.map_err(chain)?.is_some() {
            status.closing.push(note.j);
        }
    }
    if settled.is_empty() {
        return Ok(status);
    }
    let latest = pool.provider().get_block_number().await.map_err(chain)?;
    let events = zkcredits_chain::settlement_events(
        pool.provider(),
        pool.pool_address(),
        deployment.deploy_block,
        latest,
    )
    .await
    .map_err(chain)?;
    for (j, nc) in settled {
        let was_slashed = events.iter().any(|e| {
            matches!(&e.event, zkcredits_chain::SettlementEvent::Slashed { nc: n, .. } if *n == nc)
        });
        if was_slashed {
            journal.set_final_status(j, NoteStatus::Slashed)?;
            status.slashed.push(j);
        } else {
            journal.set_final_status(j, NoteStatus::Closed)?;
            status.closed.push(j);
        }
    }
    Ok(status)
}
