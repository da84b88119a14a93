//! The zkcredits protocol core.
//!
//! Everything here is pure: no I/O, no async, no proving. It implements the formulas of
//! `docs/PROTOCOL.md` natively so that the circuits, the gateway, the client and the
//! chain indexer all compute the same values:
//!
//! - [`field`]: the BN254 scalar field and its canonical 32-byte encoding;
//! - [`credits`]: amounts of credit units, the unit of every protocol amount;
//! - [`poseidon`]: Poseidon with circomlib's parameters and the protocol's domain tags;
//! - [`note`]: wallet seeds, note secrets, note IDs and leaves (§3);
//! - [`merkle`]: the append-only LeanIMT Poseidon tree, the same shape as the pool's,
//!   and its [`merkle::Root`];
//! - [`rln`]: rate-limit nullifiers, shares and key recovery (§4, §6);
//! - [`state`]: note states, state commitments and receipts (§4);
//! - [`babyjubjub`] and [`eddsa`]: circomlib's BabyJubJub and EdDSA-Poseidon, with
//!   [`fixed_base`] for the signer's nonce point;
//! - [`request`]: the request binding `x` (§4) and the close binding `x_w` (§6);
//! - [`close`]: the ticket and the split of a close (§6);
//! - [`wire`]: versioned binary encodings of credentials and receipts (§8), with
//!   [`g2_subgroup`] for the membership check of each proof's `B` point.

pub mod babyjubjub;
pub mod close;
pub mod credits;
pub mod eddsa;
pub mod field;
pub mod fixed_base;
pub mod g2_subgroup;
pub mod merkle;
pub mod note;
pub mod poseidon;
pub mod request;
pub mod rln;
pub mod state;
pub mod wire;

pub use field::Fr;
