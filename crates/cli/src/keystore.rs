//! Opening an encrypted Ethereum JSON keystore (geth's, clef's, `cast wallet new`'s): the
//! only way a command that sends transactions gets a key, so that no private key is ever
//! on a command line or in the environment.

use std::path::Path;

use anyhow::Context;
use zeroize::Zeroizing;
use zkcredits_chain::alloy::signers::local::PrivateKeySigner;

/// Decrypts `keystore` with the first line of `password_file`, else a password typed at
/// a prompt.
pub(crate) fn open(
    keystore: &Path,
    password_file: Option<&Path>,
) -> anyhow::Result<PrivateKeySigner> {
    let password = read_password(password_file, keystore)?;
    Ok(zkcredits_chain::keystore::decrypt_keystore(
        keystore,
        password.as_bytes(),
    )?)
}

/// The keystore password: the first line of `file`, else typed at a prompt.
fn read_password(file: Option<&Path>, keystore: &Path) -> anyhow::Result<Zeroizing<String>> {
    if let Some(path) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the password file {}", path.display()))?,
        );
        let line = text.lines().next().unwrap_or_default();
        return Ok(Zeroizing::new(line.to_string()));
    }
    rpassword::prompt_password(format!("password of the keystore {}: ", keystore.display()))
        .map(Zeroizing::new)
        .context("no terminal to ask the keystore password on: give --password-file FILE")
}
