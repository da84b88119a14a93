//! zkcredits circuits: R1CS gadgets, the request circuit of `docs/PROTOCOL.md §4`, the
//! close circuit of §6, Groth16 over BN254 (keys, prove, verify, batch verify), and the
//! Solidity verifier generator.

pub mod ceremony;
pub mod close;
pub mod error;
pub mod gadgets;
pub mod keys;
pub mod precompute;
pub mod prover;
pub mod qap;
pub mod request;
pub mod sample;
pub mod solidity;
pub mod ticket;
pub mod verifier;

pub use error::CircuitError;
