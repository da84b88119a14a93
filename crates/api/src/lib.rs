//! The HTTP contract between a zkcredits client and a gateway (`docs/PROTOCOL.md §8`).
//!
//! - [`code`]: every refusal's stable code, its HTTP status, and what it means for the
//!   ticket that paid ([`code::TicketFate`]), which is how a client decides to retry;
//! - [`prices`]: the price tables published per route prefix, and route matching;
//! - [`check`]: the checks a request must pass before a ticket is spent, run by the
//!   gateway's adapters and by the client before it proves;
//! - [`meter`]: token estimates and prices of OpenAI-compatible requests;
//! - [`discovery`]: the discovery document ([`Discovery`]) the gateway serves at
//!   [`DISCOVERY_PATH`] and the client parses.
//!
//! No I/O: both sides bring their own HTTP stack.

pub mod check;
pub mod code;
pub mod discovery;
pub mod meter;
pub mod prices;

pub use code::{Code, Refusal, TicketFate};
pub use discovery::{Discovery, DiscoveryKey, RelayOffer};

/// The header that carries a receipt.
pub const RECEIPT_HEADER: &str = "zkcredit-receipt";

/// The `Authorization` scheme of a credential.
pub const AUTH_SCHEME: &str = "ZkCredit";

/// The discovery document's path ([`Discovery`]).
pub const DISCOVERY_PATH: &str = "/.well-known/zkcredits";

/// Every path of the gateway's own endpoints starts with this: no paid route may.
pub const ENDPOINT_PREFIX: &str = "/zkcredit/";

/// `GET` + the nullifier (`0x` hex): the receipt issued for that ticket.
pub const RECEIPTS_PATH: &str = "/zkcredit/receipts/";

/// `POST`: the provider's clearance of a cooperative close.
pub const CLOSE_CLEARANCE_PATH: &str = "/zkcredit/close-clearance";

/// `POST`: the gateway sends a cooperative close for the user (the relay).
pub const CLOSE_RELAY_PATH: &str = "/zkcredit/close-relay";
