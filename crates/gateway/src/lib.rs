//! The provider's gateway: it admits paid requests (parse, verify, nullifier store),
//! meters them against an upstream, signs receipts and carries out the on-chain duties
//! (slashing double spenders, logging violations, watching closes).
//!
//! Entry points: [`serve`] runs the gateway a `gateway.toml` describes
//! ([`config::GatewayConfig`]); [`GatewayBuilder`] assembles one in code (tests,
//! benchmarks). `docs/GATEWAY.md` documents the configuration, endpoints and codes.

pub mod api_error;
pub mod check;
pub mod config;
// The test suite's and the demo's deterministic LLM: not part of a production gateway.
#[cfg(any(test, feature = "test-util"))]
pub mod dev_llm;
pub mod duties;
pub mod keys;
pub mod policy;
pub mod routes;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod upstream;

pub use server::{
    BuiltGateway, GatewayBuilder, GatewayError, RootsSource, RunningGateway, serve, start,
};
pub use service::{Discovery, DiscoveryKey, Settings};
