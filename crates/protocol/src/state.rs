//! Note states, state commitments and receipts (`docs/PROTOCOL.md §4`, §5).

use crate::Fr;
use crate::eddsa::Signature;
use crate::poseidon::{Tag, hash};

/// The deployment's per-request limits, fixed by the pool and never taken from a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `C_max`: the charge per request, taken up front, in credit units.
    pub c_max: u64,
    /// `P_max`: the largest policy penalty per request, in credit units.
    pub p_max: u64,
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
pub fn state_commitment(k: Fr, index: u64, refunds: u64, penalties: u64, rho: Fr) -> Fr {
    hash([
        Tag::State.to_field(),
        k,
        Fr::from(index),
        Fr::from(refunds),
        Fr::from(penalties),
        rho,
    ])
}

/// `m = H(RECEIPT, T, r, p)`: the message a receipt signs.
pub fn receipt_message(commitment: Fr, refund: u64, penalty: u64) -> Fr {
    hash([
        Tag::Receipt.to_field(),
        commitment,
        Fr::from(refund),
        Fr::from(penalty),
    ])
}

/// What the gateway returns for a request: the refund `r`, the penalty `p` and its
/// signature over `H(RECEIPT, T_next, r, p)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// `r = C_max - c`, rounded down to the refund granularity.
    pub refund: u64,
    /// `p <= P_max`, non-zero only after a policy violation.
    pub penalty: u64,
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
    pub refunds: u64,
    /// `P`, the penalties received so far (including the last receipt's).
    pub penalties: u64,
    /// The last receipt, `None` before the first request.
    pub last: Option<SignedState>,
}

impl NoteState {
    /// A fresh note: no ticket used.
    pub fn fresh() -> Self {
        Self {
            index: 0,
            refunds: 0,
            penalties: 0,
            last: None,
        }
    }

    /// `(R_prev, P_prev)`: the totals committed inside the last receipt's `T`.
    pub fn previous_totals(&self) -> (u64, u64) {
        match &self.last {
            Some(last) => (
                self.refunds - last.receipt.refund,
                self.penalties - last.receipt.penalty,
            ),
            None => (0, 0),
        }
    }

    /// Rule 4: `(i + 1) * C_max + P + P_max <= D + R`.
    pub fn can_pay(&self, deposit: u64, limits: Limits) -> bool {
        let spend = (u128::from(self.index) + 1) * u128::from(limits.c_max)
            + u128::from(self.penalties)
            + u128::from(limits.p_max);
        spend <= u128::from(deposit) + u128::from(self.refunds)
    }

    /// What the note can still spend: `D + R - P - i * C_max` (may be negative only
    /// if the state was never valid).
    pub fn balance(&self, deposit: u64, limits: Limits) -> i128 {
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
        c_max: 100,
        p_max: 50,
    };

    #[test]
    fn solvency_is_exact_to_the_unit() {
        let state = NoteState {
            index: 2,
            refunds: 30,
            penalties: 10,
            last: None,
        };
        // (2 + 1) * 100 + 10 + 50 = 360 <= D + 30
        assert!(state.can_pay(330, LIMITS));
        assert!(!state.can_pay(329, LIMITS));
        assert_eq!(state.balance(330, LIMITS), 330 + 30 - 10 - 200);
    }
}
