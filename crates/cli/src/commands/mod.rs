//! One module per subcommand.

pub(crate) mod bench;
pub(crate) mod bench_gateway;
pub(crate) mod bench_proxy;
pub(crate) mod call;
pub(crate) mod close;
pub(crate) mod demo;
pub(crate) mod deploy;
pub(crate) mod deposit;
pub(crate) mod dev_llm;
pub(crate) mod devnet;
pub(crate) mod gateway;
pub(crate) mod join;
pub(crate) mod notes;
pub(crate) mod proxy;
pub(crate) mod session;
pub(crate) mod setup;
pub(crate) mod sync;
pub(crate) mod wallet;
