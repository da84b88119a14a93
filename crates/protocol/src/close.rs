//! The close of a note, natively (`docs/PROTOCOL.md §6`): which ticket it spends and how
//! the deposit is split between the user, the provider and the burn address.
//!
//! A note with state `(n, R, P)` closes on ticket `j = n + m`, where `m = 1` says the
//! receipt of ticket `n` never arrived (that ticket is then charged in full, `C_max`, and
//! its worst penalty `P_max` is burned). The split of `D`:
//!
//! - `U = D + R - P - j C_max - m P_max` to the payout address (must not be negative);
//! - `B = P + m P_max` burned;
//! - `D - U - B = j C_max - R` to the provider.

use crate::Fr;
use crate::credits::Credits;
use crate::rln::{Nullifier, Ticket};
use crate::state::{Limits, NoteState};

/// Why a close cannot be made from a state.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseError {
    /// `U` would be negative: the state owes more than the deposit.
    #[error("the note's state owes more than its deposit; nothing can be withdrawn")]
    Overdrawn,
    /// `U` or `B` would not fit 64 bits.
    #[error("the close amounts overflow 64 bits")]
    Overflow,
    /// `j = n + m` would leave the 32-bit ticket range.
    #[error("the note has used all 2^32 ticket indices")]
    IndicesExhausted,
}

/// The amounts and the ticket of a close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseSplit {
    /// `j = n + m`, the ticket the close spends.
    pub ticket: u64,
    /// `U`, credit units to the payout address.
    pub payout: Credits,
    /// `B`, credit units burned.
    pub burn: Credits,
    /// `D - U - B`, credit units to the provider.
    pub provider: Credits,
}

impl CloseSplit {
    /// The split of a note of `deposit` credit units closing from `state`, with
    /// `lost_last_receipt` as the flag `m`.
    pub fn new(
        deposit: Credits,
        state: &NoteState,
        lost_last_receipt: bool,
        limits: Limits,
    ) -> Result<Self, CloseError> {
        let m = u64::from(lost_last_receipt);
        let ticket = state.index + m;
        if ticket >= 1u64 << 32 {
            return Err(CloseError::IndicesExhausted);
        }
        let payout = i128::from(deposit) + i128::from(state.refunds)
            - i128::from(state.penalties)
            - i128::from(ticket) * i128::from(limits.c_max)
            - i128::from(m) * i128::from(limits.p_max);
        if payout < 0 {
            return Err(CloseError::Overdrawn);
        }
        let payout = u64::try_from(payout)
            .map(Credits::new)
            .map_err(|_| CloseError::Overflow)?;
        let burn = u128::from(state.penalties) + u128::from(m) * u128::from(limits.p_max);
        let burn = u64::try_from(burn)
            .map(Credits::new)
            .map_err(|_| CloseError::Overflow)?;
        // D - U - B = j C_max - R; a state whose refunds exceed its charges (never signed
        // by an honest gateway) would take from the pool, so it is refused here as the
        // pool refuses it.
        let provider = deposit
            .checked_sub(payout)
            .and_then(|rest| rest.checked_sub(burn))
            .ok_or(CloseError::Overdrawn)?;
        Ok(Self {
            ticket,
            payout,
            burn,
            provider,
        })
    }
}

/// The public values a close reveals about the note's ticket: `N_j` and `y_w`.
pub fn close_share(k: Fr, ticket: u64, x_w: Fr) -> (Nullifier, Fr) {
    let t = Ticket::new(k, ticket);
    (t.nullifier, t.share(k, x_w).y)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        c_max: Credits::new(100),
        p_max: Credits::new(50),
    };

    fn state(index: u64, refunds: u64, penalties: u64) -> NoteState {
        NoteState {
            index,
            refunds: Credits::new(refunds),
            penalties: Credits::new(penalties),
            last: None,
        }
    }

    fn split(deposit: u64, state: &NoteState, lost: bool) -> Result<CloseSplit, CloseError> {
        CloseSplit::new(Credits::new(deposit), state, lost, LIMITS)
    }

    #[test]
    fn the_split_adds_up_to_the_deposit() {
        let s = split(1_000, &state(3, 40, 10), false).expect("close");
        assert_eq!(s.ticket, 3);
        assert_eq!(s.payout.get(), 1_000 + 40 - 10 - 300);
        assert_eq!(s.burn.get(), 10);
        assert_eq!(s.provider.get(), 300 - 40);
        assert_eq!(s.payout.get() + s.burn.get() + s.provider.get(), 1_000);

        let s = split(1_000, &state(3, 40, 10), true).expect("close");
        assert_eq!(s.ticket, 4);
        assert_eq!(s.payout.get(), 1_000 + 40 - 10 - 400 - 50);
        assert_eq!(s.burn.get(), 60);
        assert_eq!(s.provider.get(), 400 - 40);
    }

    #[test]
    fn an_overdrawn_state_cannot_close() {
        assert_eq!(
            split(300, &state(3, 0, 1), false),
            Err(CloseError::Overdrawn)
        );
        assert!(split(300, &state(3, 0, 0), false).is_ok());
        assert_eq!(
            split(349, &state(3, 0, 0), true),
            Err(CloseError::Overdrawn)
        );
    }
}
