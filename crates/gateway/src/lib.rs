//! The provider's gateway: it admits paid requests (parse, verify, nullifier store),
//! meters them against an upstream, signs receipts and carries out the on-chain duties
//! (slashing double spenders, logging violations, watching closes).

pub mod dev_llm;
pub mod duties;
pub mod policy;
pub mod store;
pub mod upstream;
