//! zkcredits on chain: the pool's bindings, its deployment, a client for it, and the
//! indexer that rebuilds its note tree from events.
//!
//! - [`bindings`]: `alloy::sol!` bindings generated from the committed artifacts in
//!   `contracts/artifacts/` (`ZkCreditsPool`, `TestToken`), the Poseidon libraries' CREATE2
//!   data, and field element <-> `uint256` conversions;
//! - [`deploy`](mod@deploy): [`PoolConfig`] in, [`Deployment`] out (JSON on disk), through a
//!   [`DeployPlan`] (addresses and gas before sending, code verified after);
//! - [`keystore`]: the encrypted Ethereum JSON keystore a real deployment signs with;
//! - [`client`]: [`PoolClient`], with reverts decoded into [`ContractError`];
//! - [`indexer`]: [`Indexer`], the tree and recent roots from `Deposited` / `RootCommitted`
//!   logs, persisted so a restart resumes;
//! - [`settlement`]: the `CloseRequested`, `Closed` and `Slashed` logs a gateway watches;
//! - with the `test-util` feature only (tests, benchmarks, the devnet: never in a
//!   production build): `anvil` and `testing`, a local anvil (from
//!   `contracts/node_modules`) and the `TestChain` harness; `bench_gas`, `bench_sync` and
//!   `devnet`, what `zkcredits bench chain`, `bench sync` and `zkcredits devnet` run.
//!
//! The pool is described in `contracts/README.md` and `docs/PROTOCOL.md §3, §6`.

#[cfg(any(test, feature = "test-util"))]
pub mod anvil;
#[cfg(any(test, feature = "test-util"))]
pub mod bench;
pub mod bindings;
pub mod clearance;
pub mod client;
pub mod close;
pub mod deploy;
#[cfg(any(test, feature = "test-util"))]
pub mod devnet;
mod error;
mod fsutil;
pub mod indexer;
pub mod keystore;
pub mod ledger;
pub mod relay;
pub mod rpc;
pub mod settlement;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

#[cfg(any(test, feature = "test-util"))]
pub use bench::{GasReport, SyncFigures, bench_gas, bench_sync};
pub use clearance::{
    Clearance, ClearanceError, clearance_digest, sign_clearance, verify_clearance,
};
pub use client::{
    ClaimOutcome, CommitOutcome, CommittedRoot, DepositOutcome, DepositedNote, NoteRecord,
    PoolClient, SlashOutcome, Violation, ViolationsOutcome,
};
pub use close::{
    CloseOutcome, ClosePayout, CloseRequestOutcome, NoteToClose, PendingClose, PreparedClose,
    close_ticket, prepare_close,
};
pub use deploy::{
    DeployError, DeployPlan, Deployment, Libraries, PoolConfig, PoolConstants, VerifierArtifact,
    deploy,
};
#[cfg(any(test, feature = "test-util"))]
pub use devnet::devnet;
pub use error::{ContractError, Error, Result};
pub use indexer::{Indexer, IndexerConfig, SyncReport};
pub use ledger::Ledger;
pub use relay::{RelayDecodeError, RelayedClose};
pub use rpc::TxInfo;
pub use settlement::{LoggedEvent, SettlementEvent, settlement_events};

/// Re-exported so that users of this crate name the same types.
pub use alloy;

/// Serde for a tree root as `0x`-prefixed big-endian hex. Reading takes any canonical hex
/// `field::from_hex` takes (bare or short), as before the root had a type, so that what was
/// written then still reads.
pub(crate) mod serde_root {
    use serde::{Deserialize, Deserializer, Serializer};
    use zkcredits_protocol::field;
    use zkcredits_protocol::merkle::Root;

    pub(crate) fn serialize<S: Serializer>(x: &Root, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(x)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Root, D::Error> {
        let s = String::deserialize(d)?;
        field::from_hex(&s)
            .map(Root::from_field)
            .ok_or_else(|| serde::de::Error::custom("not a canonical field element"))
    }
}
