//! The request binding `x` (`docs/PROTOCOL.md §4`).
//!
//! `x` = the first 31 bytes of
//! `SHA-256("zkcredits/x/v1" || method || " " || path-and-query || "\n" || body)`,
//! read big-endian. 31 bytes always fit the field, so `x` needs no reduction and two
//! different requests collide only if SHA-256 truncated to 248 bits does.

use ark_ff::PrimeField;
use sha2::{Digest, Sha256};

use crate::Fr;
use crate::credits::Credits;

const X_DOMAIN: &[u8] = b"zkcredits/x/v1";

/// Computes `x` from the request exactly as the gateway received it.
pub fn request_x(method: &str, path_and_query: &str, body: &[u8]) -> Fr {
    let mut hasher = Sha256::new_with_prefix(X_DOMAIN);
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(path_and_query.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    let digest = hasher.finalize();
    Fr::from_be_bytes_mod_order(&digest[..31])
}

/// Where a close's money goes: what `x_w` binds besides the chain and the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Withdrawal {
    /// Receives `U - relay_fee` credit units.
    pub payout: [u8; 20],
    /// Receives `relay_fee` credit units: whoever sends the close for the user (the
    /// gateway's relayer), or the zero address with a fee of 0.
    pub relayer: [u8; 20],
    /// Credit units out of `U` for the relayer.
    pub relay_fee: Credits,
}

impl Withdrawal {
    /// All of `U` to `payout`, nothing to a relayer: a close the user sends themselves.
    pub fn direct(payout: [u8; 20]) -> Self {
        Self {
            payout,
            relayer: [0; 20],
            relay_fee: Credits::ZERO,
        }
    }
}

/// `x_w` for a close: binds the payout address, the relay fee and its recipient, the
/// chain and the pool (`docs/PROTOCOL.md §6`); the pool computes the same value on chain,
/// so whoever sends the close cannot change where any of the money goes.
pub fn withdrawal_x(chain_id: u64, pool: [u8; 20], to: &Withdrawal) -> Fr {
    let mut hasher = Sha256::new_with_prefix(b"zkcredits/close/v2");
    hasher.update(chain_id.to_be_bytes());
    hasher.update(pool);
    hasher.update(to.payout);
    hasher.update(to.relayer);
    hasher.update(to.relay_fee.get().to_be_bytes());
    let digest = hasher.finalize();
    Fr::from_be_bytes_mod_order(&digest[..31])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field;

    #[test]
    fn x_is_the_first_31_bytes_of_the_digest() {
        let x = request_x("POST", "/v1/chat/completions", b"{}");
        let mut expected = Sha256::new();
        expected.update(b"zkcredits/x/v1POST /v1/chat/completions\n{}");
        let digest = expected.finalize();
        let bytes = field::to_be_bytes(&x);
        assert_eq!(bytes[0], 0);
        assert_eq!(&bytes[1..], &digest[..31]);
    }

    #[test]
    fn every_part_of_a_withdrawal_changes_x_w() {
        let pool = [7; 20];
        let base = Withdrawal {
            payout: [1; 20],
            relayer: [2; 20],
            relay_fee: Credits::new(3),
        };
        let x = withdrawal_x(1, pool, &base);
        assert_ne!(x, withdrawal_x(2, pool, &base));
        assert_ne!(x, withdrawal_x(1, [8; 20], &base));
        for other in [
            Withdrawal {
                payout: [9; 20],
                ..base
            },
            Withdrawal {
                relayer: [9; 20],
                ..base
            },
            Withdrawal {
                relay_fee: Credits::new(4),
                ..base
            },
            Withdrawal::direct(base.payout),
        ] {
            assert_ne!(x, withdrawal_x(1, pool, &other));
        }
        // The layout the pool hashes: fixed widths, so no two withdrawals share an encoding.
        let mut expected = Sha256::new();
        expected.update(b"zkcredits/close/v2");
        expected.update(1u64.to_be_bytes());
        expected.update(pool);
        expected.update([1; 20]);
        expected.update([2; 20]);
        expected.update(3u64.to_be_bytes());
        assert_eq!(&field::to_be_bytes(&x)[1..], &expected.finalize()[..31]);
    }

    #[test]
    fn every_part_of_the_request_changes_x() {
        let base = request_x("POST", "/v1/x?a=1", b"body");
        assert_ne!(base, request_x("GET", "/v1/x?a=1", b"body"));
        assert_ne!(base, request_x("POST", "/v1/x?a=2", b"body"));
        assert_ne!(base, request_x("POST", "/v1/x?a=1", b"bodz"));
        // The newline keeps the path and the body apart (a path has no raw newline).
        assert_ne!(request_x("POST", "/a", b"b"), request_x("POST", "/ab", b""));
    }
}
