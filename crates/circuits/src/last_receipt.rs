//! The last receipt of a note state, as the request and the close circuits take it in
//! their witness: both open the state's commitment and check the receipt's signature
//! (docs/PROTOCOL.md §4, §5).

use ark_ff::PrimeField;
use zkcredits_protocol::Fr;
use zkcredits_protocol::babyjubjub::Point;
use zkcredits_protocol::state::NoteState;

/// The witness values of a state's last receipt, or the zeros the circuits expect of a
/// fresh note (`i = 0`, no receipt yet: the signature check is switched off).
pub(crate) struct LastReceiptWitness {
    /// `rho` of the last state.
    pub(crate) rho: Fr,
    /// `r` of the last receipt.
    pub(crate) refund: Fr,
    /// `p` of the last receipt.
    pub(crate) penalty: Fr,
    /// The signature nonce `R8` (the identity for a fresh note).
    pub(crate) sig_r8: Point,
    /// The signature scalar `S` as a field element (0 for a fresh note).
    pub(crate) sig_s: Fr,
}

impl LastReceiptWitness {
    /// The last receipt of `state`.
    pub(crate) fn of(state: &NoteState) -> Self {
        match &state.last {
            Some(last) => Self {
                rho: last.rho,
                refund: last.receipt.refund.to_field(),
                penalty: last.receipt.penalty.to_field(),
                sig_r8: last.receipt.signature.r8,
                // S is below the subgroup order, so below the field modulus: the
                // reduction never changes it.
                sig_s: Fr::from_le_bytes_mod_order(&ark_ff::BigInteger::to_bytes_le(
                    &last.receipt.signature.s.into_bigint(),
                )),
            },
            None => Self {
                rho: Fr::from(0u64),
                refund: Fr::from(0u64),
                penalty: Fr::from(0u64),
                sig_r8: Point::zero(),
                sig_s: Fr::from(0u64),
            },
        }
    }
}
