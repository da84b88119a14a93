//! One module per subcommand. The development commands (`bench`, `demo`, `dev-llm`,
//! `devnet`) are in the default feature `dev` only: they run on the workspace's test
//! fixtures, which a production build leaves out.

#[cfg(feature = "dev")]
pub(crate) mod bench;
#[cfg(feature = "dev")]
pub(crate) mod bench_gateway;
#[cfg(feature = "dev")]
pub(crate) mod bench_proxy;
pub(crate) mod call;
pub(crate) mod close;
#[cfg(feature = "dev")]
pub(crate) mod demo;
pub(crate) mod deploy;
pub(crate) mod deposit;
#[cfg(feature = "dev")]
pub(crate) mod dev_llm;
#[cfg(feature = "dev")]
pub(crate) mod devnet;
pub(crate) mod gateway;
pub(crate) mod join;
pub(crate) mod notes;
pub(crate) mod proxy;
pub(crate) mod session;
pub(crate) mod setup;
pub(crate) mod sync;
pub(crate) mod wallet;
