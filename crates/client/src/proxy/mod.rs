//! The local OpenAI-compatible proxy: applications talk plain OpenAI (or JSON-RPC) to
//! `127.0.0.1`, and every request goes to the gateway paid with a fresh credential.
//!
//! ```text
//! POST /v1/chat/completions   (stream or not)  -> gateway, same path
//! POST /v1/completions                         -> gateway, same path
//! POST /v1/embeddings                          -> gateway, same path
//! GET  /v1/models                              -> answered locally from the discovery
//!                                                 document's price table (free)
//! POST /rpc                                    -> gateway's JSON-RPC route
//! ```
//!
//! Each request in flight holds one note ([`crate::Spender`]); when every note is busy
//! the answer is `429 all_notes_busy`. The application never sees the credential or the
//! receipt. Errors are OpenAI-shaped: `{"error": {"message", "type", "code"}}`.
//!
//! What reaches the gateway is the request's body and a fixed header set: the
//! application's headers stay here, and JSON-RPC ids are renumbered (and restored in
//! the answer). A request the gateway would refuse before admission is refused here,
//! with the gateway's code and message, before a ticket is spent on it.

mod jsonrpc_ids;
mod routes;

pub use routes::{ProxyConfig, router, serve_proxy};
