//! The sealed parts of the journal's rows: what they hold, and their byte layout in one
//! place. Everything here is encrypted and authenticated before it reaches the file
//! (`crate::seal`, with the row's plain numbers as associated data), so a record that
//! opens was written by this wallet; the reader still refuses any record whose length
//! or tags do not match, because that would be a bug or a newer format, never
//! something to guess at.
//!
//! Layouts (big-endian integers, field elements as 32 canonical big-endian bytes):
//!
//! - note: `ID | leaf index (8) | deposit tx (32) | 0`, or, once a receipt was applied,
//!   `ID | leaf index | deposit tx | 1 | T | rho | refund (8) | penalty (8) | sigma (64) |
//!   key id (4)`;
//! - ticket: `x | rho_next | N | key id (4) | 0`, or `... | 1 | receipt` (the wire
//!   encoding of `zkcredits_protocol::state::Receipt`).

use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::eddsa::Signature;
use zkcredits_protocol::rln::Nullifier;
use zkcredits_protocol::state::{Receipt, SignedState};
use zkcredits_protocol::wire::WireFormat;
use zkcredits_protocol::{Fr, field};

use super::{JournalError, Result};

/// A note row's sealed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct NoteRecord {
    /// The note's public `ID`.
    pub(super) id: Fr,
    /// Its leaf in the pool's tree.
    pub(super) leaf_index: u64,
    /// The deposit transaction.
    pub(super) tx_hash: [u8; 32],
    /// The signed state the last receipt gave, and the key that signed it.
    pub(super) last: Option<(SignedState, u32)>,
}

/// A ticket row's sealed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TicketSecrets {
    /// The request binding.
    pub(super) x: Fr,
    /// The blinding of the next state commitment.
    pub(super) rho_next: Fr,
    /// The ticket's nullifier.
    pub(super) nullifier: Nullifier,
    /// The receipt key the ticket is proven for.
    pub(super) key_id: u32,
    /// The receipt, once it came.
    pub(super) receipt: Option<Receipt>,
}

impl NoteRecord {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.fr(&self.id).u64(self.leaf_index).bytes(&self.tx_hash);
        match &self.last {
            None => w.flag(false),
            Some((state, key_id)) => w
                .flag(true)
                .fr(&state.commitment)
                .fr(&state.rho)
                .u64(state.receipt.refund.get())
                .u64(state.receipt.penalty.get())
                .bytes(&state.receipt.signature.to_bytes())
                .u32(*key_id),
        };
        w.0
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "note");
        let id = r.fr()?;
        let leaf_index = r.u64()?;
        let tx_hash = r.array::<32>()?;
        let last = if r.flag()? {
            let commitment = r.fr()?;
            let rho = r.fr()?;
            let refund = Credits::new(r.u64()?);
            let penalty = Credits::new(r.u64()?);
            let signature =
                Signature::from_bytes(&r.array::<64>()?).map_err(JournalError::CorruptSignature)?;
            let key_id = r.u32()?;
            Some((
                SignedState {
                    commitment,
                    rho,
                    receipt: Receipt {
                        refund,
                        penalty,
                        signature,
                    },
                },
                key_id,
            ))
        } else {
            None
        };
        r.end()?;
        Ok(Self {
            id,
            leaf_index,
            tx_hash,
            last,
        })
    }
}

impl TicketSecrets {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.fr(&self.x)
            .fr(&self.rho_next)
            .fr(&self.nullifier.field())
            .u32(self.key_id);
        match &self.receipt {
            None => w.flag(false),
            Some(receipt) => w.flag(true).bytes(&receipt.encode()),
        };
        w.0
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "ticket");
        let x = r.fr()?;
        let rho_next = r.fr()?;
        let nullifier = Nullifier::from_field(r.fr()?);
        let key_id = r.u32()?;
        let receipt = if r.flag()? {
            let bytes = r.take(Receipt::LEN)?;
            Some(Receipt::decode(bytes).map_err(JournalError::CorruptReceipt)?)
        } else {
            None
        };
        r.end()?;
        Ok(Self {
            x,
            rho_next,
            nullifier,
            key_id,
            receipt,
        })
    }
}

/// Appends fields in order.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }

    fn fr(&mut self, v: &Fr) -> &mut Self {
        self.bytes(&field::to_be_bytes(v))
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    fn flag(&mut self, v: bool) -> &mut Self {
        self.bytes(&[u8::from(v)])
    }
}

/// Reads fields in the order they were written; a short, long or mistagged record is
/// [`JournalError::Corrupt`].
struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { rest: bytes, what }
    }

    fn corrupt(&self, why: &str) -> JournalError {
        JournalError::Corrupt(format!("{} record: {why}", self.what))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(self.corrupt("too short"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn fr(&mut self) -> Result<Fr> {
        let b = self.array::<32>()?;
        field::from_be_bytes_canonical(&b)
            .ok_or_else(|| self.corrupt("a field element is not canonical"))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn flag(&mut self) -> Result<bool> {
        match self.array::<1>()? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(self.corrupt("a presence tag is neither 0 nor 1")),
        }
    }

    fn end(&self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;
    use zkcredits_protocol::eddsa::PrivateKey;

    fn fr(v: u64) -> Fr {
        Fr::from(v)
    }

    fn receipt(refund: u64, penalty: u64, seed: u8) -> Receipt {
        let signature = PrivateKey::from_bytes([seed; 32]).sign(fr(refund.wrapping_add(penalty)));
        Receipt {
            refund: Credits::new(refund),
            penalty: Credits::new(penalty),
            signature,
        }
    }

    proptest! {
        #[test]
        fn a_note_record_reads_back_what_was_written(
            id in any::<u64>(), leaf in any::<u64>(), tx in any::<[u8; 32]>(),
            last in proptest::option::of((any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>(), 1u8..)),
        ) {
            let record = NoteRecord {
                id: fr(id),
                leaf_index: leaf,
                tx_hash: tx,
                last: last.map(|(t, rho, refund, penalty, key_id, seed)| {
                    (SignedState { commitment: fr(t), rho: fr(rho), receipt: receipt(refund, penalty, seed) }, key_id)
                }),
            };
            let bytes = record.encode();
            prop_assert_eq!(NoteRecord::decode(&bytes).unwrap(), record);
            // Any cut, or any byte added, is refused.
            for cut in 0..bytes.len() {
                prop_assert!(NoteRecord::decode(&bytes[..cut]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(NoteRecord::decode(&longer).is_err());
        }

        #[test]
        fn a_ticket_record_reads_back_what_was_written(
            x in any::<u64>(), rho in any::<u64>(), n in any::<u64>(), key_id in any::<u32>(),
            receipt_parts in proptest::option::of((any::<u64>(), any::<u64>(), 1u8..)),
        ) {
            let record = TicketSecrets {
                x: fr(x),
                rho_next: fr(rho),
                nullifier: Nullifier::from_field(fr(n)),
                key_id,
                receipt: receipt_parts.map(|(r, p, seed)| receipt(r, p, seed)),
            };
            let bytes = record.encode();
            prop_assert_eq!(TicketSecrets::decode(&bytes).unwrap(), record);
            for cut in 0..bytes.len() {
                prop_assert!(TicketSecrets::decode(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        // Records already on users' disks were written with this layout: a change here
        // needs a journal migration, not a silent new encoding.
        let plain = NoteRecord {
            id: fr(1),
            leaf_index: 2,
            tx_hash: [3; 32],
            last: None,
        };
        assert_eq!(plain.encode().len(), 32 + 8 + 32 + 1);
        let signed = NoteRecord {
            last: Some((
                SignedState {
                    commitment: fr(4),
                    rho: fr(5),
                    receipt: receipt(6, 7, 8),
                },
                9,
            )),
            ..plain
        };
        let bytes = signed.encode();
        assert_eq!(bytes.len(), 73 + 32 + 32 + 8 + 8 + 64 + 4);
        assert_eq!(bytes[72], 1);
        assert_eq!(&bytes[137..145], &6u64.to_be_bytes());
        assert_eq!(&bytes[bytes.len() - 4..], &9u32.to_be_bytes());
        let ticket = TicketSecrets {
            x: fr(1),
            rho_next: fr(2),
            nullifier: Nullifier::from_field(fr(3)),
            key_id: 4,
            receipt: Some(receipt(5, 6, 7)),
        };
        let bytes = ticket.encode();
        assert_eq!(bytes.len(), 96 + 4 + 1 + Receipt::LEN);
        assert_eq!(&bytes[96..100], &4u32.to_be_bytes());
        assert_eq!(bytes[100], 1);
    }

    #[test]
    fn a_bad_tag_or_a_non_canonical_field_is_corrupt() {
        let mut bytes = NoteRecord {
            id: fr(1),
            leaf_index: 2,
            tx_hash: [3; 32],
            last: None,
        }
        .encode();
        bytes[72] = 2;
        assert!(matches!(
            NoteRecord::decode(&bytes),
            Err(JournalError::Corrupt(_))
        ));
        bytes[72] = 0;
        bytes[..32].copy_from_slice(&[0xff; 32]);
        assert!(matches!(
            NoteRecord::decode(&bytes),
            Err(JournalError::Corrupt(_))
        ));
    }
}
