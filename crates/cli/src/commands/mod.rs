//! One module per subcommand.

pub(crate) mod bench;
pub(crate) mod bench_gateway;
pub(crate) mod call;
pub(crate) mod close;
pub(crate) mod demo;
pub(crate) mod deploy;
pub(crate) mod deposit;
pub(crate) mod dev_llm;
pub(crate) mod devnet;
pub(crate) mod gateway;
pub(crate) mod notes;
pub(crate) mod proxy;
pub(crate) mod session;
pub(crate) mod setup;
pub(crate) mod sync;
pub(crate) mod wallet;

/// The global flags, for the commands that read them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Globals {
    /// `--dev`: development keys (from a public seed) and the development close verifier
    /// are accepted. Anyone can forge proofs under them.
    pub(crate) dev: bool,
}

impl Globals {
    /// Prints the loud warning to stderr when `--dev` is on.
    pub(crate) fn warn_if_dev(&self) {
        if self.dev {
            eprintln!(
                "WARNING: --dev: DEVELOPMENT KEYS from a public seed are accepted; anyone can \
                 forge proofs and take the pool's money. For local devnets and the demo only."
            );
        }
    }
}
