//! The gateway crate's integration tests, one binary: the stores against SQLite and
//! PostgreSQL, the upstream adapters, the duties on anvil, admission against the router
//! in process (no chain, no socket), and the whole service over loopback HTTP. One binary
//! instead of one per file, so the suite links once.

mod common;

mod admission_inprocess;
mod adversary;
mod duties_anvil;
mod gateway_http;
mod gateway_upstreams;
mod store_suite;
mod tls_upstream;
mod upstreams;
