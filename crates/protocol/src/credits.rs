//! Amounts of credit units (`docs/PROTOCOL.md §2`).

use std::fmt;

use crate::Fr;

/// An amount of credit units: the unit every protocol amount is counted in (a note's
/// deposit `D`, the limits `C_max` and `P_max`, a receipt's refund `r` and penalty `p`,
/// the totals `R` and `P`, a close's `U`, `B` and provider share, a relay fee, a
/// gateway's metered cost). The pool fixes `unit`, the token base units one credit unit
/// is worth; token base units (a `U256` on chain) are never `Credits`, and neither are
/// ticket indices, epochs or byte counts, which is why this is a type of its own rather
/// than a bare `u64`.
///
/// Amounts are u64 as the circuits range-check them. The arithmetic is checked only: there
/// is no `+` or `-` that could wrap or panic, so an overflow is always a visible `None`.
///
/// With the `serde` feature it reads and writes as the plain number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Credits(u64);

impl Credits {
    /// No credit units.
    pub const ZERO: Self = Self(0);

    /// `n` credit units.
    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    /// The number of credit units.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// `self + other`, or `None` if the sum leaves the u64 range.
    pub const fn checked_add(self, other: Self) -> Option<Self> {
        match self.0.checked_add(other.0) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// `self - other`, or `None` if `other` is larger.
    pub const fn checked_sub(self, other: Self) -> Option<Self> {
        match self.0.checked_sub(other.0) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// `self - other`, or zero if `other` is larger: only for the previous totals of a
    /// state ([`crate::state::NoteState::previous_totals`]), where a state that was never
    /// valid must still yield a witness for the circuit to refuse.
    pub const fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }

    /// `self * factor` (a count of requests, not an amount), or `None` if the product
    /// leaves the u64 range.
    pub const fn checked_mul(self, factor: u64) -> Option<Self> {
        match self.0.checked_mul(factor) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// The amount as the field element the circuits and the hashes take.
    pub fn to_field(self) -> Fr {
        Fr::from(self.0)
    }
}

/// The decimal number of credit units, as [`Credits`]'s `Display` writes it: digits only
/// (no sign, no separators, no unit), at most `u64::MAX`.
impl std::str::FromStr for Credits {
    type Err = ParseCreditsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match s.parse() {
            Ok(n) if digits => Ok(Self(n)),
            _ => Err(ParseCreditsError(s.to_owned())),
        }
    }
}

/// Text that is not an amount of credit units.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an amount of credit units: write the number in decimal digits, at most {max}", max = u64::MAX)]
pub struct ParseCreditsError(String);

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Wide enough for the solvency rule's sums, which may exceed 64 bits.
impl From<Credits> for u128 {
    fn from(c: Credits) -> Self {
        u128::from(c.0)
    }
}

/// Wide enough for a balance, which an invalid state may drive below zero.
impl From<Credits> for i128 {
    fn from(c: Credits) -> Self {
        i128::from(c.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(n: u128) -> Option<Credits> {
        u64::try_from(n).ok().map(Credits::new)
    }

    #[test]
    fn text_is_decimal_digits_only() {
        assert_eq!("0".parse(), Ok(Credits::ZERO));
        assert_eq!("18446744073709551615".parse(), Ok(Credits::new(u64::MAX)));
        for bad in [
            "",
            "+5",
            "-5",
            " 5",
            "5 ",
            "1_000",
            "0x10",
            "18446744073709551616",
        ] {
            assert!(bad.parse::<Credits>().is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn text_round_trips(n: u64) {
            prop_assert_eq!(Credits::new(n).to_string().parse(), Ok(Credits::new(n)));
        }

        #[test]
        fn checked_add_matches_wide_arithmetic(a: u64, b: u64) {
            let sum = Credits::new(a).checked_add(Credits::new(b));
            prop_assert_eq!(sum, reference(u128::from(a) + u128::from(b)));
        }

        #[test]
        fn checked_sub_matches_wide_arithmetic(a: u64, b: u64) {
            let difference = Credits::new(a).checked_sub(Credits::new(b));
            let expected = u128::from(a)
                .checked_sub(u128::from(b))
                .and_then(reference);
            prop_assert_eq!(difference, expected);
        }

        #[test]
        fn saturating_sub_matches_wide_arithmetic(a: u64, b: u64) {
            let difference = Credits::new(a).saturating_sub(Credits::new(b));
            let expected = u128::from(a).saturating_sub(u128::from(b));
            prop_assert_eq!(u128::from(difference), expected);
        }

        #[test]
        fn checked_mul_matches_wide_arithmetic(a: u64, b: u64) {
            let product = Credits::new(a).checked_mul(b);
            prop_assert_eq!(product, reference(u128::from(a) * u128::from(b)));
        }

        #[test]
        fn small_products_and_sums_are_exact(a in 0u64..1 << 31, b in 0u64..1 << 31) {
            let a = Credits::new(a);
            prop_assert_eq!(a.checked_mul(b).map(Credits::get), Some(a.get() * b));
            prop_assert_eq!(
                a.checked_add(Credits::new(b)).map(Credits::get),
                Some(a.get() + b)
            );
        }

        #[test]
        fn the_wide_conversions_keep_the_value(a: u64) {
            prop_assert_eq!(u128::from(Credits::new(a)), u128::from(a));
            prop_assert_eq!(i128::from(Credits::new(a)), i128::from(a));
            prop_assert_eq!(Credits::new(a).to_field(), Fr::from(a));
        }

        #[test]
        fn order_and_display_follow_the_number(a: u64, b: u64) {
            prop_assert_eq!(Credits::new(a).cmp(&Credits::new(b)), a.cmp(&b));
            prop_assert_eq!(Credits::new(a).to_string(), a.to_string());
        }
    }

    #[test]
    fn the_edges_overflow_visibly() {
        assert_eq!(Credits::new(u64::MAX).checked_add(Credits::new(1)), None);
        assert_eq!(Credits::ZERO.checked_sub(Credits::new(1)), None);
        assert_eq!(Credits::new(u64::MAX).checked_mul(2), None);
        assert_eq!(Credits::default(), Credits::ZERO);
        // Tables print amounts in columns: the width applies as to the number.
        assert_eq!(format!("{:>6}", Credits::new(42)), "    42");
    }
}
