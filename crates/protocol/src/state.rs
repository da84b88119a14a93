//! Note states, state commitments and receipts (`docs/PROTOCOL.md §4`, §5).

use crate::Fr;
use crate::credits::Credits;
use crate::eddsa::Signature;
use crate::poseidon::{Tag, hash};

/// The deployment's per-request limits, fixed by the pool and never taken from a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `C_max`: the charge per request, taken up front, in credit units.
    pub c_max: Credits,
    /// `P_max`: the largest policy penalty per request, in credit units.
    pub p_max: Credits,
}

/// Errors in state arithmetic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// A total would not fit the 64-bit range the circuit enforces.
    #[error("the refund or penalty total overflows 64 bits")]
    Overflow,
    /// The note cannot pay for another request at the worst-case charge.
    #[error("the note cannot cover another request (needs C_max plus the P_max reserve)")]
    Insolvent,
    /// The ticket index would leave the 32-bit range the circuit enforces.
    #[error("the note has used all 2^32 ticket indices")]
    IndicesExhausted,
}

/// `T = H(STATE, k, i, R, P, rho)`: the commitment to a note state, signed (inside a
/// receipt) by the gateway and opened inside the next proof.
pub fn state_commitment(k: Fr, index: u64, refunds: Credits, penalties: Credits, rho: Fr) -> Fr {
    hash([
        Tag::State.to_field(),
        k,
        Fr::from(index),
        refunds.to_field(),
        penalties.to_field(),
        rho,
    ])
}

/// `m = H(RECEIPT, T, r, p)`: the message a receipt signs.
pub fn receipt_message(commitment: Fr, refund: Credits, penalty: Credits) -> Fr {
    hash([
        Tag::Receipt.to_field(),
        commitment,
        refund.to_field(),
        penalty.to_field(),
    ])
}

/// What the gateway returns for a request: the refund `r`, the penalty `p` and its
/// signature over `H(RECEIPT, T_next, r, p)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// `r = C_max - c`, rounded down to the refund granularity.
    pub refund: Credits,
    /// `p <= P_max`, non-zero only after a policy violation.
    pub penalty: Credits,
    /// EdDSA-Poseidon by the provider's key.
    pub signature: Signature,
}

/// The last receipt a note holds, with the opening of the commitment it signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedState {
    /// `T`, the commitment the receipt signs.
    pub commitment: Fr,
    /// `rho`, the blinding inside `T`. Secret.
    pub rho: Fr,
    /// The receipt.
    pub receipt: Receipt,
}

/// A note's state `(i, R, P)` with the receipt that proves it (none at `i = 0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoteState {
    /// `i`, the next ticket index.
    pub index: u64,
    /// `R`, the refunds received so far (including the last receipt's).
    pub refunds: Credits,
    /// `P`, the penalties received so far (including the last receipt's).
    pub penalties: Credits,
    /// The last receipt, `None` before the first request.
    pub last: Option<SignedState>,
}

impl NoteState {
    /// A fresh note: no ticket used.
    pub fn fresh() -> Self {
        Self {
            index: 0,
            refunds: Credits::ZERO,
            penalties: Credits::ZERO,
            last: None,
        }
    }

    /// `(R_prev, P_prev)`: the totals committed inside the last receipt's `T`.
    ///
    /// A state whose totals are below its last receipt's amounts was never built by
    /// [`NoteState::advance`]; its previous totals saturate at zero, and the proof made
    /// from it fails at the witness check instead of here.
    pub fn previous_totals(&self) -> (Credits, Credits) {
        match &self.last {
            Some(last) => (
                self.refunds.saturating_sub(last.receipt.refund),
                self.penalties.saturating_sub(last.receipt.penalty),
            ),
            None => (Credits::ZERO, Credits::ZERO),
        }
    }

    /// Rule 4: `(i + 1) * C_max + P + P_max <= D + R`.
    pub fn can_pay(&self, deposit: Credits, limits: Limits) -> bool {
        let spend = (u128::from(self.index) + 1) * u128::from(limits.c_max)
            + u128::from(self.penalties)
            + u128::from(limits.p_max);
        spend <= u128::from(deposit) + u128::from(self.refunds)
    }

    /// What the note can still spend: `D + R - P - i * C_max` (may be negative only
    /// if the state was never valid).
    pub fn balance(&self, deposit: Credits, limits: Limits) -> i128 {
        i128::from(deposit) + i128::from(self.refunds)
            - i128::from(self.penalties)
            - i128::from(self.index) * i128::from(limits.c_max)
    }

    /// The commitment `T_next` for the request made from this state.
    pub fn next_commitment(&self, k: Fr, rho_next: Fr) -> Result<Fr, StateError> {
        let next = self.next_index()?;
        Ok(state_commitment(
            k,
            next,
            self.refunds,
            self.penalties,
            rho_next,
        ))
    }

    /// The state after the request from this state is answered with `receipt`.
    pub fn advance(&self, k: Fr, rho_next: Fr, receipt: Receipt) -> Result<NoteState, StateError> {
        let commitment = self.next_commitment(k, rho_next)?;
        Ok(NoteState {
            index: self.next_index()?,
            refunds: self
                .refunds
                .checked_add(receipt.refund)
                .ok_or(StateError::Overflow)?,
            penalties: self
                .penalties
                .checked_add(receipt.penalty)
                .ok_or(StateError::Overflow)?,
            last: Some(SignedState {
                commitment,
                rho: rho_next,
                receipt,
            }),
        })
    }

    fn next_index(&self) -> Result<u64, StateError> {
        if self.index + 1 >= 1u64 << 32 {
            return Err(StateError::IndicesExhausted);
        }
        Ok(self.index + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        c_max: Credits::new(100),
        p_max: Credits::new(50),
    };

    #[test]
    fn solvency_is_exact_to_the_unit() {
        let state = NoteState {
            index: 2,
            refunds: Credits::new(30),
            penalties: Credits::new(10),
            last: None,
        };
        // (2 + 1) * 100 + 10 + 50 = 360 <= D + 30
        assert!(state.can_pay(Credits::new(330), LIMITS));
        assert!(!state.can_pay(Credits::new(329), LIMITS));
        assert_eq!(
            state.balance(Credits::new(330), LIMITS),
            330 + 30 - 10 - 200
        );
    }
}
