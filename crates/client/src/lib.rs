//! The user's side: wallet, note journal, prover cache, gateway client and the local
//! OpenAI-compatible proxy.
//!
//! - [`wallet`]: the BIP-39 mnemonic and the deposit key, encrypted at rest (argon2id +
//!   XChaCha20-Poly1305);
//! - [`journal`]: the notes and a write-ahead record of every ticket (SQLite), so a
//!   ticket index is never used twice;
//! - [`precompute_cache`]: per-note proving precomputations, encrypted on disk;
//! - [`ticket_cache`]: each free note's next ticket precomputed up to the request,
//!   encrypted on disk, taken out once; `ticket_maker` fills it in the background at the
//!   pace `ticket_pace` sets, so that the requests that prove go first;
//! - [`spender`]: [`Spender`], what the local proxy calls around each paid request;
//! - [`gateway_constants`]: what the gateway publishes that the spender relies on,
//!   checked against the deployment;
//! - [`gateway_client`]: discovery, paid requests, receipts and close clearances over
//!   HTTP (optionally through SOCKS5 / Tor);
//! - [`sse`]: takes the receipt event out of a streamed answer;
//! - [`payer`]: one paid request end to end, and what happens to its ticket on failure;
//! - [`proxy`]: the local OpenAI-compatible proxy;
//! - [`closer`]: closing notes, cooperatively or unilaterally;
//! - [`deposit`]: depositing notes and recording them;
//! - [`tree`]: the note tree the proofs are made against;
//! - [`seal`]: the storage keys and sealing used by the journal and the cache;
//! - [`home`]: where these files live under `$ZKCREDITS_HOME`.

pub mod closer;
pub mod deposit;
pub mod error;
pub mod gateway_client;
pub mod gateway_constants;
pub mod home;
pub mod journal;
pub mod payer;
pub mod precompute_cache;
pub mod proxy;
pub mod seal;
pub mod spender;
pub mod sse;
pub mod ticket_cache;
mod ticket_maker;
mod ticket_pace;
pub mod tree;
pub mod wallet;

pub use error::{
    BadReceipt, ClientError, LimitBreach, NotInTree, RelayFailure, RelayUnusable, StaleState,
};
pub use gateway_constants::{GatewayConstants, ServerKey};
/// The HTTP client the gateway client is built on (its header and method types).
pub use reqwest;
pub use spender::{
    LocateReport, NoteSummary, PaidTicket, RecoveryReport, ServerKeyCheck, Spender, SpenderConfig,
    UnrecordedSpend, UnusableReceipt,
};
pub use tree::TreeView;
pub use wallet::Wallet;
