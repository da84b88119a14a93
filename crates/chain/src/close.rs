//! Closing a note (`docs/PROTOCOL.md §6`): build the close proof for a payout address and
//! submit it, cooperatively (with the provider's clearance, paid at once) or unilaterally
//! (held for the challenge window, then `finalize`); and the other side: `challenge` a
//! pending close with two shares of its ticket.
//!
//! A client closes in three steps: [`close_ticket`] gives `(NC, N_j)` without proving
//! (what the gateway's `POST /zkcredit/close-clearance` needs), [`prepare_close`] proves,
//! and [`PoolClient::close_cooperative`] or [`PoolClient::close_unilateral`] submits.

use alloy::primitives::{Address, U256};
use ark_bn254::Bn254;
use ark_groth16::Proof;
use ark_std::rand::{CryptoRng, RngCore};
use zkcredits_circuits::close::{CloseCircuit, CloseInputs, ClosePublicInputs};
use zkcredits_circuits::prover::CloseProver;
use zkcredits_circuits::solidity::proof_words;
use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::eddsa::PublicKey;
use zkcredits_protocol::merkle::{MerklePath, Root};
use zkcredits_protocol::note::NoteSecret;
use zkcredits_protocol::request::{Withdrawal, withdrawal_x};
use zkcredits_protocol::rln::{Nullifier, Ticket};
use zkcredits_protocol::state::{Limits, NoteState};

use crate::Result;
use crate::bindings::{ZkCreditsPool, fr_to_u256, root_to_u256, u256_to_fr};
use crate::clearance::Clearance;
use crate::client::{PoolClient, SlashOutcome};
use crate::deploy::Deployment;
use crate::rpc::TxInfo;

/// What the client knows about the note it closes.
#[derive(Clone, Copy, Debug)]
pub struct NoteToClose<'a> {
    /// The note's secret.
    pub secret: &'a NoteSecret,
    /// `D`, credit units deposited.
    pub deposit: Credits,
    /// `E`, the note's expiry epoch.
    pub expiry_epoch: u64,
    /// The note's path under `root`.
    pub path: &'a MerklePath,
    /// A root the pool committed (`commitRoot` first if the note is newer).
    pub root: Root,
    /// The note's current state.
    pub state: &'a NoteState,
    /// The receipt key that signed the state's last receipt (any accepted key when the
    /// note made no request).
    pub server_key: PublicKey,
}

/// `(NC, N_j)` of a close from `state` with the flag `lost_last_receipt` (`m`): what the
/// gateway clears, computed without proving.
pub fn close_ticket(
    secret: &NoteSecret,
    state: &NoteState,
    lost_last_receipt: bool,
) -> (Fr, Nullifier) {
    let j = state.index + u64::from(lost_last_receipt);
    (
        secret.close_nullifier(),
        Ticket::new(secret.expose(), j).nullifier,
    )
}

/// Where a close pays `U`: all to `payout`, or `relay_fee` of it to the relayer that
/// sends the close for the user. Bound into `x_w`, so the sender cannot change it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClosePayout {
    /// Receives `U - relay_fee` credit units.
    pub payout: Address,
    /// Receives `relay_fee` credit units (the zero address with no fee).
    pub relayer: Address,
    /// Credit units out of `U`.
    pub relay_fee: Credits,
}

impl ClosePayout {
    /// All of `U` to `payout`: a close its owner sends (from a key that is not the
    /// deposit's, see `docs/CLIENT.md`).
    pub fn direct(payout: Address) -> Self {
        Self {
            payout,
            relayer: Address::ZERO,
            relay_fee: Credits::ZERO,
        }
    }

    /// `relay_fee` to `relayer`, the rest to `payout`.
    pub fn relayed(payout: Address, relayer: Address, relay_fee: Credits) -> Self {
        Self {
            payout,
            relayer,
            relay_fee,
        }
    }

    /// The protocol's view, what `x_w` hashes.
    pub fn withdrawal(&self) -> Withdrawal {
        Withdrawal {
            payout: self.payout.into_array(),
            relayer: self.relayer.into_array(),
            relay_fee: self.relay_fee,
        }
    }
}

/// A proven close, ready to submit.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedClose {
    /// The proof's public inputs.
    pub public: ClosePublicInputs,
    /// Where `U` goes.
    pub to: ClosePayout,
    /// The Groth16 proof.
    pub proof: Proof<Bn254>,
}

impl PreparedClose {
    /// `NC`.
    pub fn nc(&self) -> Fr {
        self.public.close_nullifier
    }

    /// `N_j`.
    pub fn nullifier(&self) -> Nullifier {
        self.public.nullifier
    }

    /// The close as the pool's `CloseArgs`.
    pub fn args(&self) -> ZkCreditsPool::CloseArgs {
        let p = &self.public;
        ZkCreditsPool::CloseArgs {
            root: root_to_u256(p.root),
            nc: fr_to_u256(&p.close_nullifier),
            nullifier: fr_to_u256(&p.nullifier.field()),
            yw: fr_to_u256(&p.y_w),
            deposit: p.deposit.get(),
            expiryEpoch: p.expiry_epoch,
            payoutAmount: p.payout.get(),
            burn: p.burn.get(),
            lostLastReceipt: p.lost_last_receipt(),
            payout: self.to.payout,
            relayer: self.to.relayer,
            relayFee: self.to.relay_fee.get(),
            serverKeyX: fr_to_u256(&p.server_key.x),
            serverKeyY: fr_to_u256(&p.server_key.y),
        }
    }

    /// The proof as the verifier's eight words.
    pub fn proof_words(&self) -> [U256; 8] {
        proof_words(&self.proof).map(U256::from_be_bytes)
    }
}

/// Proves the close of `note` paying `to` on the pool of `deployment`. `x_w` is computed
/// from the deployment's chain id and pool exactly as the pool does, so the proof is bound
/// to that payout address and relay fee there. Refuses an overdrawn state, and a relay fee
/// above what the note pays out, before proving.
pub fn prepare_close<R: RngCore + CryptoRng>(
    prover: &CloseProver,
    deployment: &Deployment,
    note: NoteToClose<'_>,
    to: ClosePayout,
    lost_last_receipt: bool,
    rng: &mut R,
) -> Result<PreparedClose> {
    let x_w = withdrawal_x(
        deployment.chain_id,
        deployment.pool.into_array(),
        &to.withdrawal(),
    );
    let circuit = CloseCircuit::new(CloseInputs {
        secret: note.secret,
        deposit: note.deposit,
        expiry_epoch: note.expiry_epoch,
        path: note.path,
        root: note.root,
        state: note.state,
        lost_last_receipt,
        x_w,
        limits: Limits {
            c_max: deployment.constants.c_max,
            p_max: deployment.constants.p_max,
        },
        server_key: note.server_key,
    })?;
    let public = circuit.public;
    if to.relay_fee > public.payout {
        return Err(crate::Error::RelayFeeTooHigh {
            fee: to.relay_fee,
            payout: public.payout,
        });
    }
    let proof = prover.prove(circuit, rng)?;
    Ok(PreparedClose { public, to, proof })
}

/// A close paid out (`Closed` event), in token base units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseOutcome {
    /// The transaction.
    pub tx: TxInfo,
    /// `NC`.
    pub nc: Fr,
    /// `N_j`.
    pub nullifier: Nullifier,
    /// The payout address.
    pub payout: Address,
    /// Paid to the payout address (`U` less the relay fee).
    pub to_payout: U256,
    /// Who sent the close for the user (the zero address: nobody was paid for it).
    pub relayer: Address,
    /// Paid to the relayer (the relay fee).
    pub to_relayer: U256,
    /// Paid to the provider (`D - U - B`).
    pub to_provider: U256,
    /// Sent to the burn address (`B`).
    pub burned: U256,
}

/// A unilateral close now waiting (`CloseRequested` event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseRequestOutcome {
    /// The transaction.
    pub tx: TxInfo,
    /// `NC`.
    pub nc: Fr,
    /// `N_j`: a gateway holding another share of this ticket challenges.
    pub nullifier: Nullifier,
    /// `x_w`.
    pub x_w: Fr,
    /// `y_w`.
    pub y_w: Fr,
    /// From this time (unix seconds) on, anyone may `finalize`.
    pub deadline: u64,
}

/// A pending close as the pool stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingClose {
    /// Where `U` less the relay fee goes, and the relay fee.
    pub to: ClosePayout,
    /// When it may be finalized.
    pub deadline: u64,
    /// `U`, `B`, `D`, credit units.
    pub amounts: (Credits, Credits, Credits),
    /// `E`.
    pub expiry_epoch: u64,
    /// `N_j`.
    pub nullifier: Nullifier,
    /// `y_w`.
    pub y_w: Fr,
}

impl PoolClient {
    /// Submits a cooperative close with the provider's clearance; paid at once.
    pub async fn close_cooperative(
        &self,
        close: &PreparedClose,
        clearance: &Clearance,
    ) -> Result<CloseOutcome> {
        let tx = self
            .pool_contract()
            .closeCooperative(close.args(), close.proof_words(), clearance.to_vec().into())
            .into_transaction_request();
        let receipt = self.send_tx(tx).await?;
        self.closed_outcome(&receipt)
    }

    /// Submits a unilateral close: it waits for the pool's challenge window.
    pub async fn close_unilateral(&self, close: &PreparedClose) -> Result<CloseRequestOutcome> {
        let tx = self
            .pool_contract()
            .closeUnilateral(close.args(), close.proof_words())
            .into_transaction_request();
        let receipt = self.send_tx(tx).await?;
        let e: ZkCreditsPool::CloseRequested = self.event(&receipt)?;
        Ok(CloseRequestOutcome {
            tx: TxInfo::of(&receipt),
            nc: u256_to_fr(e.nc)?,
            nullifier: Nullifier::from_field(u256_to_fr(e.nullifier)?),
            x_w: u256_to_fr(e.xw)?,
            y_w: u256_to_fr(e.yw)?,
            deadline: e.deadline,
        })
    }

    /// Pays out the pending close `nc` after its window (permissionless).
    pub async fn finalize(&self, nc: Fr) -> Result<CloseOutcome> {
        let tx = self
            .pool_contract()
            .finalize(fr_to_u256(&nc))
            .into_transaction_request();
        let receipt = self.send_tx(tx).await?;
        self.closed_outcome(&receipt)
    }

    /// Challenges the pending close `nc` with the ticket's `(k, a)` (from
    /// `protocol::rln::recover` of the close's share and another share of its ticket):
    /// cancels it and slashes the note.
    pub async fn challenge(&self, nc: Fr, k: Fr, slope: Fr) -> Result<SlashOutcome> {
        self.challenge_raw(fr_to_u256(&nc), fr_to_u256(&k), fr_to_u256(&slope))
            .await
    }

    /// `challenge(nc, k, a)` with raw words.
    pub async fn challenge_raw(&self, nc: U256, k: U256, slope: U256) -> Result<SlashOutcome> {
        let tx = self
            .pool_contract()
            .challenge(nc, k, slope)
            .into_transaction_request();
        let receipt = self.send_tx(tx).await?;
        let e: ZkCreditsPool::Slashed = self.event(&receipt)?;
        Ok(SlashOutcome {
            tx: TxInfo::of(&receipt),
            id: u256_to_fr(e.id)?,
            nc: u256_to_fr(e.nc)?,
            k: u256_to_fr(e.k)?,
            slasher: e.slasher,
            bounty: e.bounty,
            to_provider: e.toProvider,
        })
    }

    /// Accepts another receipt key for closes (provider only).
    pub async fn accept_server_key(&self, key: PublicKey) -> Result<TxInfo> {
        let p = key.point();
        let tx = self
            .pool_contract()
            .acceptServerKey(fr_to_u256(&p.x), fr_to_u256(&p.y))
            .into_transaction_request();
        Ok(TxInfo::of(&self.send_tx(tx).await?))
    }

    /// Whether closes may name `key` now: accepted, and not revoked (or still within the
    /// revocation notice).
    pub async fn server_key_accepted(&self, key: PublicKey) -> Result<bool> {
        let p = key.point();
        Ok(self
            .pool_contract()
            .serverKeyUsable(fr_to_u256(&p.x), fr_to_u256(&p.y))
            .call()
            .await?)
    }

    /// When a revoked `key` stops (or stopped) being usable for closes; `None` when it
    /// was never revoked.
    pub async fn server_key_retires_at(&self, key: PublicKey) -> Result<Option<u64>> {
        let p = key.point();
        let hash = alloy::primitives::keccak256(
            [
                fr_to_u256(&p.x).to_be_bytes::<32>(),
                fr_to_u256(&p.y).to_be_bytes::<32>(),
            ]
            .concat(),
        );
        let at = self.pool_contract().serverKeyRetiresAt(hash).call().await?;
        Ok((at != 0).then_some(at))
    }

    /// Revokes a receipt key (provider only): closes naming it are refused once the
    /// pool's `KEY_REVOCATION_NOTICE` has passed. Returns when they will be.
    pub async fn revoke_server_key(&self, key: PublicKey) -> Result<(TxInfo, u64)> {
        let p = key.point();
        let tx = self
            .pool_contract()
            .revokeServerKey(fr_to_u256(&p.x), fr_to_u256(&p.y))
            .into_transaction_request();
        let receipt = self.send_tx(tx).await?;
        let e: ZkCreditsPool::ServerKeyRevoked = self.event(&receipt)?;
        Ok((TxInfo::of(&receipt), e.retiresAt))
    }

    /// The pending close on `nc`, if any.
    pub async fn pending_close(&self, nc: Fr) -> Result<Option<PendingClose>> {
        let p = self
            .pool_contract()
            .pendingCloses(fr_to_u256(&nc))
            .call()
            .await?;
        if p.deadline == 0 {
            return Ok(None);
        }
        Ok(Some(PendingClose {
            to: ClosePayout::relayed(p.payout, p.relayer, Credits::new(p.relayFee)),
            deadline: p.deadline,
            amounts: (
                Credits::new(p.payoutAmount),
                Credits::new(p.burn),
                Credits::new(p.deposit),
            ),
            expiry_epoch: p.expiryEpoch,
            nullifier: Nullifier::from_field(u256_to_fr(p.nullifier)?),
            y_w: u256_to_fr(p.yw)?,
        }))
    }

    /// The pool's own clearance digest for `(nc, nullifier)`.
    pub async fn clearance_digest(
        &self,
        nc: Fr,
        nullifier: Nullifier,
    ) -> Result<alloy::primitives::B256> {
        Ok(self
            .pool_contract()
            .clearanceDigest(fr_to_u256(&nc), fr_to_u256(&nullifier.field()))
            .call()
            .await?)
    }

    /// The pool's `x_w` for `to`.
    pub async fn withdrawal_x(&self, to: ClosePayout) -> Result<Fr> {
        u256_to_fr(
            self.pool_contract()
                .withdrawalX(to.payout, to.relayer, to.relay_fee.get())
                .call()
                .await?,
        )
    }

    /// The close of `nc` in transaction `hash` (sent by someone else, e.g. a relay), read
    /// from the chain: its receipt must have succeeded and hold the pool's `Closed` event
    /// for `nc`.
    pub async fn closed_outcome_of(
        &self,
        hash: alloy::primitives::B256,
        nc: Fr,
    ) -> Result<CloseOutcome> {
        use alloy::providers::Provider;
        let receipt = self
            .provider()
            .get_transaction_receipt(hash)
            .await?
            .ok_or_else(|| crate::Error::NotOnNode(format!("the receipt of transaction {hash}")))?;
        if !receipt.status() {
            return Err(crate::Error::TxFailed(hash));
        }
        let outcome = self.closed_outcome(&receipt)?;
        if outcome.nc != nc {
            return Err(crate::Error::MissingEvent {
                tx: hash,
                event: "Closed of this note",
            });
        }
        Ok(outcome)
    }

    pub(crate) fn closed_outcome(
        &self,
        receipt: &alloy::rpc::types::TransactionReceipt,
    ) -> Result<CloseOutcome> {
        let e: ZkCreditsPool::Closed = self.event(receipt)?;
        Ok(CloseOutcome {
            tx: TxInfo::of(receipt),
            nc: u256_to_fr(e.nc)?,
            nullifier: Nullifier::from_field(u256_to_fr(e.nullifier)?),
            payout: e.payout,
            to_payout: e.toPayout,
            relayer: e.relayer,
            to_relayer: e.toRelayer,
            to_provider: e.toProvider,
            burned: e.burned,
        })
    }
}
