//! Rate-limit nullifiers (`docs/PROTOCOL.md §4` rule 5 and §6).
//!
//! Ticket `i` of note `k` has the slope `a = H(SLOPE, k, i)`, the public nullifier
//! `N = H(NULLIFIER, a)` and, for a request bound to `x`, the share `y = k + a * x`:
//! a point on the line `k + a * X`. One share says nothing about `k` (a is uniform and
//! unknown); two shares of one ticket at different `x` give the line, hence `k`.

use ark_ff::Field;

use crate::Fr;
use crate::poseidon::{Tag, hash};

/// Errors from key recovery.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RlnError {
    /// Both shares are for the same `x`: that is a replay, not a double spend, and
    /// reveals nothing.
    #[error("both shares bind the same request x; a replay reveals no key")]
    SameRequest,
}

/// One ticket of a note: its slope and public nullifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// `a = H(SLOPE, k, i)`; secret: with a share it reveals `k`.
    pub slope: Fr,
    /// `N = H(NULLIFIER, a)`; public, the gateway's key for the ticket.
    pub nullifier: Fr,
}

impl Ticket {
    /// The ticket with index `i` of the note with secret `k`.
    pub fn new(k: Fr, i: u64) -> Self {
        let slope = slope(k, i);
        Self {
            slope,
            nullifier: nullifier(slope),
        }
    }

    /// The share `y = k + a * x` for a request bound to `x`.
    pub fn share(&self, k: Fr, x: Fr) -> Share {
        Share {
            x,
            y: k + self.slope * x,
        }
    }
}

/// `a = H(SLOPE, k, i)`.
pub fn slope(k: Fr, i: u64) -> Fr {
    hash([Tag::Slope.to_field(), k, Fr::from(i)])
}

/// `N = H(NULLIFIER, a)`.
pub fn nullifier(slope: Fr) -> Fr {
    hash([Tag::Nullifier.to_field(), slope])
}

/// A point `(x, y)` on a ticket's line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// The request binding.
    pub x: Fr,
    /// `k + a * x`.
    pub y: Fr,
}

/// The key and slope recovered from two shares of one ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The note secret.
    pub k: Fr,
    /// The ticket's slope.
    pub slope: Fr,
}

/// Recovers `a = (y1 - y2) / (x1 - x2)` and `k = y1 - a * x1` from two shares of one
/// ticket made for different requests.
pub fn recover(first: Share, second: Share) -> Result<Recovered, RlnError> {
    let dx = first.x - second.x;
    let inv = dx.inverse().ok_or(RlnError::SameRequest)?;
    let slope = (first.y - second.y) * inv;
    Ok(Recovered {
        k: first.y - slope * first.x,
        slope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::PrimeField;
    use proptest::prelude::*;

    fn fe(bytes: [u8; 32]) -> Fr {
        Fr::from_le_bytes_mod_order(&bytes)
    }

    proptest! {
        #[test]
        fn any_two_distinct_shares_recover_k_exactly(
            k in any::<[u8; 32]>(), i in any::<u32>(), x1 in any::<[u8; 32]>(), x2 in any::<[u8; 32]>(),
        ) {
            let (k, x1, x2) = (fe(k), fe(x1), fe(x2));
            prop_assume!(x1 != x2);
            let ticket = Ticket::new(k, u64::from(i));
            let got = recover(ticket.share(k, x1), ticket.share(k, x2)).expect("distinct x");
            prop_assert_eq!(got.k, k);
            prop_assert_eq!(got.slope, ticket.slope);
            prop_assert_eq!(nullifier(got.slope), ticket.nullifier);
        }

        #[test]
        fn one_share_is_consistent_with_every_key(
            k in any::<[u8; 32]>(), other in any::<[u8; 32]>(), x in any::<[u8; 32]>(),
        ) {
            // For any candidate key there is a slope that explains the share exactly,
            // so the share alone rules no key out.
            let (k, other, x) = (fe(k), fe(other), fe(x));
            prop_assume!(x != Fr::from(0u64));
            let share = Ticket::new(k, 0).share(k, x);
            let explaining_slope = (share.y - other) * x.inverse().expect("non-zero");
            prop_assert_eq!(other + explaining_slope * x, share.y);
        }
    }

    #[test]
    fn two_shares_of_one_request_are_a_replay() {
        let k = Fr::from(9u64);
        let t = Ticket::new(k, 4);
        let s = t.share(k, Fr::from(5u64));
        assert_eq!(recover(s, s), Err(RlnError::SameRequest));
    }
}
