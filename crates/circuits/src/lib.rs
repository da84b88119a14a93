//! zkcredits circuits: R1CS gadgets, the request circuit of `docs/PROTOCOL.md §4`, and
//! Groth16 over BN254 (keys, prove, verify, batch verify).

pub mod error;
pub mod gadgets;
pub mod keys;
pub mod precompute;
pub mod prover;
pub mod request;
pub mod sample;
pub mod verifier;

pub use error::CircuitError;
