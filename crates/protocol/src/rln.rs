//! Rate-limit nullifiers (`docs/PROTOCOL.md §4` rule 5 and §6).
//!
//! Ticket `i` of note `k` has the slope `a = H(SLOPE, k, i)`, the public nullifier
//! `N = H(NULLIFIER, a)` and, for a request bound to `x`, the share `y = k + a * x`:
//! a point on the line `k + a * X`. One share says nothing about `k` (a is uniform and
//! unknown); two shares of one ticket at different `x` give the line, hence `k`.

use std::fmt;
use std::str::FromStr;

use ark_ff::Field;

use crate::poseidon::{Tag, hash};
use crate::{Fr, field};

/// Errors from key recovery.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RlnError {
    /// Both shares are for the same `x`: that is a replay, not a double spend, and
    /// reveals nothing.
    #[error("both shares bind the same request x; a replay reveals no key")]
    SameRequest,
}

/// A ticket's public nullifier `N = H(NULLIFIER, a)`: the name under which a gateway
/// stores the spent ticket and its receipt, a client fetches that receipt, and a close
/// names the note's last ticket. It crosses every crate and the wire, so it has a type of
/// its own rather than travelling as an `Fr`, 32 bytes or a hex string by turns.
///
/// Its text form is `0x` followed by 64 lowercase hex digits ([`fmt::Display`]), and that
/// is the only form [`FromStr`] accepts (either case): a URL path names one ticket one way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nullifier(Fr);

impl Nullifier {
    /// The nullifier whose field element is `n` (read from a proof's public inputs or a
    /// pool event).
    pub const fn from_field(n: Fr) -> Self {
        Self(n)
    }

    /// The field element, as the circuits and the contract take it.
    pub const fn field(&self) -> Fr {
        self.0
    }

    /// Big-endian bytes, as stored and as on the wire.
    pub fn to_bytes(&self) -> [u8; 32] {
        field::to_be_bytes(&self.0)
    }

    /// The nullifier with these big-endian bytes, if they are a canonical field element.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        field::from_be_bytes_canonical(bytes).map(Self)
    }
}

impl fmt::Display for Nullifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&field::to_hex(&self.0))
    }
}

/// A text that is not a nullifier's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a nullifier is 0x followed by 64 hex digits of a field element")]
pub struct NullifierSyntaxError;

impl FromStr for Nullifier {
    type Err = NullifierSyntaxError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        field::from_strict_hex(text)
            .map(Self)
            .ok_or(NullifierSyntaxError)
    }
}

/// One ticket of a note: its slope and public nullifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// `a = H(SLOPE, k, i)`; secret: with a share it reveals `k`.
    pub slope: Fr,
    /// `N = H(NULLIFIER, a)`; public, the gateway's key for the ticket.
    pub nullifier: Nullifier,
}

impl Ticket {
    /// The ticket with index `i` of the note with secret `k`.
    pub fn new(k: Fr, i: u64) -> Self {
        let slope = slope(k, i);
        Self {
            slope,
            nullifier: Nullifier(nullifier(slope)),
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
            prop_assert_eq!(nullifier(got.slope), ticket.nullifier.field());
        }

        #[test]
        fn a_nullifier_round_trips_through_its_text_and_its_bytes(n in any::<[u8; 32]>()) {
            let n = Nullifier::from_field(fe(n));
            let text = n.to_string();
            prop_assert_eq!(text.len(), 66);
            prop_assert_eq!(text.parse::<Nullifier>(), Ok(n));
            prop_assert_eq!(text.to_uppercase().replacen("0X", "0x", 1).parse::<Nullifier>(), Ok(n));
            prop_assert_eq!(Nullifier::from_bytes(&n.to_bytes()), Some(n));
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
    fn only_the_one_text_form_of_a_nullifier_parses() {
        let n = Ticket::new(Fr::from(3u64), 1).nullifier.to_string();
        let digits = &n[2..];
        let modulus = "30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001";
        for bad in [
            digits.to_owned(),               // no 0x
            format!("0x{}", &digits[1..]),   // 63 digits
            format!("0x0{digits}"),          // 65 digits
            format!("0x{}g", &digits[..63]), // not hex
            format!("0x{modulus}"),          // not canonical
            format!(" {n}"),                 // whitespace
            String::new(),
        ] {
            assert_eq!(
                bad.parse::<Nullifier>(),
                Err(NullifierSyntaxError),
                "{bad:?}"
            );
        }
        let mut above = [0xffu8; 32];
        above[0] = 0x31;
        assert_eq!(Nullifier::from_bytes(&above), None);
    }

    #[test]
    fn two_shares_of_one_request_are_a_replay() {
        let k = Fr::from(9u64);
        let t = Ticket::new(k, 4);
        let s = t.share(k, Fr::from(5u64));
        assert_eq!(recover(s, s), Err(RlnError::SameRequest));
    }
}
