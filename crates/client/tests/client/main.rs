//! The client crate's integration tests, one binary: wallet and journal files, the
//! precompute cache, the ticket pipeline, the SSE receipt filter, the spender against anvil, and the local
//! proxy alone and against the real gateway. One binary instead of one per file, so
//! the suite links once.

mod common;

mod journal_recovery;
mod money;
mod precompute_cache;
mod proxy_e2e;
mod proxy_local;
mod request_path;
mod spender_chain;
mod sse_filter;
mod ticket_pipeline;
mod wallet;
