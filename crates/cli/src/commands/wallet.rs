//! `zkcredits wallet init | show | export`: the encrypted wallet.

use std::io::BufRead;

use anyhow::Context;
use clap::{Args, Subcommand};
use zkcredits_client::home::ClientHome;
use zkcredits_client::wallet::{self, KdfParams, Wallet};

/// Arguments of `zkcredits wallet`.
#[derive(Debug, Args)]
pub(crate) struct WalletArgs {
    #[command(subcommand)]
    command: WalletCommand,
}

#[derive(Debug, Subcommand)]
enum WalletCommand {
    /// Create the wallet: a new 24-word mnemonic (shown once), or one read from stdin.
    Init {
        /// Read an existing mnemonic from the first line of stdin instead of making one.
        #[arg(long)]
        mnemonic_stdin: bool,
        /// The Ethereum key (hex) that pays for deposits; on the devnet, a funded anvil
        /// key. Stored encrypted in the wallet.
        #[arg(long, env = "ZKCREDITS_ETH_KEY", hide_env_values = true)]
        eth_key: Option<String>,
    },
    /// Show what the wallet holds, without secrets.
    Show,
    /// Print the mnemonic. Anyone who sees it can spend every note.
    Export {
        /// Confirms that the secret may be printed on this terminal.
        #[arg(long)]
        yes_show_secret: bool,
    },
}

pub(crate) fn run(args: WalletArgs) -> anyhow::Result<()> {
    let home = ClientHome::from_env();
    let path = home.wallet();
    match args.command {
        WalletCommand::Init {
            mnemonic_stdin,
            eth_key,
        } => {
            if path.exists() {
                anyhow::bail!(wallet::WalletError::AlreadyExists(path));
            }
            let (mut w, generated) = if mnemonic_stdin {
                let mut line = zeroize::Zeroizing::new(String::new());
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("reading the mnemonic from stdin")?;
                (Wallet::from_mnemonic(&line)?, false)
            } else {
                (Wallet::generate(), true)
            };
            if let Some(key) = eth_key {
                w.set_eth_key_hex(&key)?;
            }
            let passphrase = wallet::passphrase(true)?;
            w.save(&path, &passphrase, KdfParams::default(), false)?;
            println!("wallet written to {} (mode 0600)", path.display());
            if generated {
                println!();
                println!(
                    "Your recovery phrase (write it down, keep it offline; it is shown only now):"
                );
                println!();
                println!("    {}", w.mnemonic());
                println!();
            }
            match w.eth_signer() {
                Some(s) => println!("deposit account: {}", s.address()),
                None => println!(
                    "no Ethereum key stored: `zkcredits deposit` needs --eth-key (or ZKCREDITS_ETH_KEY)"
                ),
            }
            Ok(())
        }
        WalletCommand::Show => {
            let passphrase = wallet::passphrase(false)?;
            let w = Wallet::load(&path, &passphrase)?;
            println!("wallet: {}", path.display());
            println!(
                "mnemonic: {} words (hidden; `zkcredits wallet export --yes-show-secret`)",
                w.mnemonic().split(' ').count()
            );
            match w.eth_signer() {
                Some(s) => println!("deposit account: {}", s.address()),
                None => println!("deposit account: none"),
            }
            Ok(())
        }
        WalletCommand::Export { yes_show_secret } => {
            if !yes_show_secret {
                anyhow::bail!(
                    "export prints the recovery phrase, which spends every note: add --yes-show-secret to confirm"
                );
            }
            let passphrase = wallet::passphrase(false)?;
            let w = Wallet::load(&path, &passphrase)?;
            println!("{}", w.mnemonic());
            Ok(())
        }
    }
}
