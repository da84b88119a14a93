//! The pool's settlement events, decoded for a watcher (`docs/PROTOCOL.md §6`, "What the
//! gateway must watch"): every `CloseRequested`, `Closed` and `Slashed` log in a block
//! range, in chain order.
//!
//! Unlike the tree [`Indexer`](crate::Indexer), nothing here keeps state: a watcher
//! re-reads a trailing window of blocks each round, so whatever it does with an event must
//! be idempotent. That is what makes a reorg within the window harmless: an event moved to
//! another block is simply seen again.

use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use zkcredits_protocol::Fr;
use zkcredits_protocol::rln::Nullifier;

use crate::bindings::{ZkCreditsPool, u256_to_fr};
use crate::{Error, Result};

/// One settlement event of the pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettlementEvent {
    /// A unilateral close now waits for challenges: it revealed the share
    /// `(x_w, y_w)` of ticket `nullifier`.
    CloseRequested {
        /// `NC`.
        nc: Fr,
        /// `N_j`, the ticket the close spends.
        nullifier: Nullifier,
        /// `x_w`, the binding of the payout address.
        x_w: Fr,
        /// `y_w = k + a x_w`.
        y_w: Fr,
        /// Unix time from which anyone may finalize.
        deadline: u64,
    },
    /// A note was closed and paid (cooperatively, or a unilateral close finalized).
    Closed {
        /// `NC`.
        nc: Fr,
        /// `N_j`.
        nullifier: Nullifier,
        /// Where `U` less the relay fee went.
        payout: Address,
        /// Who got the relay fee (the zero address when there was none).
        relayer: Address,
        /// The relay fee, token base units (`relayFee * unit`). With `payout` and
        /// `relayer` it gives the close's `x_w`, the share a finalized close revealed.
        to_relayer: alloy::primitives::U256,
    },
    /// A note was slashed: its secret is public.
    Slashed {
        /// The note's ID.
        id: Fr,
        /// `NC`.
        nc: Fr,
        /// The note secret `k`.
        k: Fr,
    },
}

impl SettlementEvent {
    /// The event's name, for logs and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            SettlementEvent::CloseRequested { .. } => "close_requested",
            SettlementEvent::Closed { .. } => "closed",
            SettlementEvent::Slashed { .. } => "slashed",
        }
    }
}

/// A decoded event and where it was logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedEvent {
    /// The block it is in.
    pub block: u64,
    /// The event.
    pub event: SettlementEvent,
}

/// The settlement events of `pool` in blocks `from..=to`, in (block, log index) order.
/// One `eth_getLogs` call: the caller pages.
pub async fn settlement_events(
    provider: &DynProvider,
    pool: Address,
    from: u64,
    to: u64,
) -> Result<Vec<LoggedEvent>> {
    let filter = Filter::new()
        .address(pool)
        .event_signature(vec![
            ZkCreditsPool::CloseRequested::SIGNATURE_HASH,
            ZkCreditsPool::Closed::SIGNATURE_HASH,
            ZkCreditsPool::Slashed::SIGNATURE_HASH,
        ])
        .from_block(from)
        .to_block(to);
    let mut logs = provider.get_logs(&filter).await?;
    logs.retain(|l| !l.removed && l.address() == pool);
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    logs.iter().map(decode).collect()
}

fn decode(log: &Log) -> Result<LoggedEvent> {
    let block = log.block_number.unwrap_or_default();
    let topic = log.topic0().copied().unwrap_or_default();
    let event = if topic == ZkCreditsPool::CloseRequested::SIGNATURE_HASH {
        let e = ZkCreditsPool::CloseRequested::decode_log_data(log.data())
            .map_err(|e| Error::undecodable_log("CloseRequested", e))?;
        SettlementEvent::CloseRequested {
            nc: u256_to_fr(e.nc)?,
            nullifier: Nullifier::from_field(u256_to_fr(e.nullifier)?),
            x_w: u256_to_fr(e.xw)?,
            y_w: u256_to_fr(e.yw)?,
            deadline: e.deadline,
        }
    } else if topic == ZkCreditsPool::Closed::SIGNATURE_HASH {
        let e = ZkCreditsPool::Closed::decode_log_data(log.data())
            .map_err(|e| Error::undecodable_log("Closed", e))?;
        SettlementEvent::Closed {
            nc: u256_to_fr(e.nc)?,
            nullifier: Nullifier::from_field(u256_to_fr(e.nullifier)?),
            payout: e.payout,
            relayer: e.relayer,
            to_relayer: e.toRelayer,
        }
    } else if topic == ZkCreditsPool::Slashed::SIGNATURE_HASH {
        let e = ZkCreditsPool::Slashed::decode_log_data(log.data())
            .map_err(|e| Error::undecodable_log("Slashed", e))?;
        SettlementEvent::Slashed {
            id: u256_to_fr(e.id)?,
            nc: u256_to_fr(e.nc)?,
            k: u256_to_fr(e.k)?,
        }
    } else {
        return Err(Error::UnexpectedLog(topic));
    };
    Ok(LoggedEvent { block, event })
}
