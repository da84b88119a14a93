//! The `zkcredits` binary's integration tests, in one test binary: each of them links
//! the whole workspace, and one link is what a CI build can afford. Modules run their
//! tests side by side (`cargo test`'s threads), so the long snarkjs ceremony overlaps
//! the others.

mod ceremony;
mod common;
mod deploy;
mod exit_without_gateway;
mod gateway_check;
mod proxy_kill;
