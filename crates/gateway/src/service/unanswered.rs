//! Refunds in full the tickets a gateway admitted but never answered: its process died
//! (or its request task failed) between the nullifier write and the receipt. Without
//! this the user could only close with `m = 1`, paying `C_max` and burning `P_max` for the
//! provider's own failure. The refund receipt (`r = C_max`, `p = 0`) signs the `T_next`
//! the store kept with the ticket, and the client recovers it as any other receipt, from
//! `GET /zkcredit/receipts/{N}` or as the replay answer.
//!
//! Which tickets are abandoned: with a store owned by one process (SQLite), every ticket
//! left unanswered when the gateway starts; in any store, one still unanswered
//! `orphan_refund_after` after its admission (a live request has long answered by then).
//! A live request that answers at the same moment loses nothing: the store keeps the
//! first receipt and the other is refused as a conflict.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::field;

use super::AppState;
use crate::store::{Corruption, StoreError, Unanswered};

/// Refunds issued for abandoned tickets.
pub const REFUNDED: &str = "zkcredits_unanswered_refunds_total";

/// Tickets read per store query.
const PAGE: usize = 256;

/// Refunds every ticket admitted before `admitted_before` (unix ms) and still without a
/// receipt; returns how many it refunded.
pub(crate) async fn refund_abandoned(
    state: &AppState,
    admitted_before: i64,
) -> Result<usize, StoreError> {
    let mut refunded = 0;
    loop {
        let page = state.store.unanswered(admitted_before, PAGE).await?;
        let full = page.len() == PAGE;
        for ticket in page {
            if refund(state, ticket).await? {
                refunded += 1;
            }
        }
        if !full {
            return Ok(refunded);
        }
    }
}

/// Signs and stores the full refund of one ticket; false when a receipt got there first.
async fn refund(state: &AppState, ticket: Unanswered) -> Result<bool, StoreError> {
    let Some(next) = field::from_be_bytes_canonical(&ticket.next_commitment) else {
        return Err(Corruption::NotInField("T_next").into());
    };
    let receipt = state
        .keys
        .sign_receipt(next, state.limits.c_max, Credits::ZERO);
    let encoded = zkcredits_protocol::wire::WireFormat::encode(&receipt);
    match state.store.put_receipt(ticket.nullifier, &encoded).await {
        Ok(()) => {
            metrics::counter!(REFUNDED).increment(1);
            tracing::info!(
                ticket = %hex::encode(&ticket.nullifier[..6]),
                "abandoned ticket refunded in full"
            );
            Ok(true)
        }
        Err(StoreError::ReceiptConflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Tickets admitted before this moment (unix ms) and still unanswered are abandoned.
fn abandoned_before(state: &AppState) -> i64 {
    let after = state.settings.orphan_refund_after;
    crate::store::unix_millis().saturating_sub(i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
}

/// Before serving: refunds what a previous process left. A store this process owns
/// alone holds nothing in flight yet, so every unanswered ticket was abandoned; a shared
/// one only those older than `orphan_refund_after`.
pub(crate) async fn refund_at_startup(state: &AppState) {
    let cutoff = if state.store.single_process() {
        crate::store::unix_millis()
    } else {
        abandoned_before(state)
    };
    match refund_abandoned(state, cutoff).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            tickets = n,
            "refunded in full the tickets a previous run admitted and never answered"
        ),
        Err(e) => tracing::error!(error = %e, "cannot refund abandoned tickets"),
    }
}

/// Keeps refunding tickets abandoned for longer than `orphan_refund_after`, until
/// `shutdown`.
pub(crate) async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let poll = (state.settings.orphan_refund_after / 4).max(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(poll) => {}
        }
        if let Err(e) = refund_abandoned(&state, abandoned_before(&state)).await {
            tracing::warn!(error = %e, "refunding abandoned tickets failed; will retry");
        }
    }
}
