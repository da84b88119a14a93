//! zkcredits circuits: R1CS gadgets, the request circuit of `docs/PROTOCOL.md §4`, the
//! close circuit of §6, Groth16 over BN254 (keys, prove, verify, batch verify), and the
//! Solidity verifier generator.

pub mod ceremony;
pub mod close;
pub mod error;
pub mod gadgets;
pub mod keys;
mod last_receipt;
pub mod precompute;
pub mod prover;
pub mod qap;
pub mod request;
pub mod sample;
pub mod solidity;
pub mod statement;
// Fixtures for tests only, so that a production build carries none of them.
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod ticket;
pub mod verifier;

pub use error::CircuitError;
