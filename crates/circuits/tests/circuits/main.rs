//! The circuits crate's integration tests, one binary: the soundness rules of both
//! circuits, real Groth16 keys and proofs, the per-note and per-ticket precomputed
//! provers, and the generated Solidity verifier. One binary instead of one per file, so
//! the suite links once.

mod common;

mod close_keys_and_verifier;
mod close_soundness;
mod groth16_round_trip;
mod precomputed_prover;
mod request_soundness;
mod ticket_prover;
