//! The exit needs no gateway: after one paid `zkcredits call` (which keeps the gateway's
//! discovery document in the client home), the gateway goes away for good, and
//! `zkcredits close --unilateral` and `zkcredits close --finalize` still get the user's
//! money out, with the server key from the saved document and the challenge deadline
//! judged by the chain's clock (anvil's time is moved forward; this machine's is not). Both
//! are sent from a keystore account the user funded for gas, not the deposit account.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use zkcredits_chain::alloy::primitives::{Address, U256};
use zkcredits_chain::testing::TestChain;
use zkcredits_client::deposit::deposit_notes;
use zkcredits_client::home::ClientHome;
use zkcredits_client::journal::{Journal, NoteStatus};
use zkcredits_client::seal::StoragePurpose;
use zkcredits_client::wallet::{KdfParams, Wallet};

const MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
const PASSPHRASE: &str = "exit test passphrase";
const DEPOSIT: u64 = 20_000;
const RPC_PRICE: u64 = 10;
const USER: usize = 2;
/// The account the user funded to pay the gas of the exit (not the deposit account).
const GAS_ACCOUNT: usize = 5;

/// Runs `zkcredits ARGS` for the user's home to completion.
fn zkcredits(home: &Path, eth_key: &str, args: &[&str]) -> Output {
    common::run_echoed(
        Command::new(env!("CARGO_BIN_EXE_zkcredits"))
            .arg("--dev")
            .env("ZKCREDITS_HOME", home)
            .env("ZKCREDITS_KEYS", common::keys_dir())
            .env("ZKCREDITS_PASSPHRASE", PASSPHRASE)
            .env("ZKCREDITS_ETH_KEY", eth_key),
        args,
    )
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unilateral_close_and_its_finalize_need_no_gateway() {
    let chain = TestChain::start().await.unwrap();
    let deployment = chain.deployment().clone();
    let (c_max, unit) = (deployment.constants.c_max.get(), deployment.constants.unit);
    let dir = tempfile::tempdir().unwrap();
    let home = ClientHome::new(dir.path().join("home"));
    std::fs::create_dir_all(home.dir()).unwrap();
    let deployment_path = dir.path().join("deployment.json");
    deployment.save(&deployment_path).unwrap();
    let deployment_arg = deployment_path.to_string_lossy().into_owned();
    let wallet = Wallet::from_mnemonic(MNEMONIC).unwrap();
    wallet
        .save(&home.wallet(), PASSPHRASE, KdfParams::INSECURE_TEST, false)
        .unwrap();
    {
        let pool = chain.client(USER).await.unwrap();
        let mut journal = Journal::open(
            &home.journal(&deployment),
            wallet.storage_key(StoragePurpose::Journal),
        )
        .unwrap();
        deposit_notes(
            &pool,
            &mut journal,
            &wallet.seed(),
            zkcredits_protocol::credits::Credits::new(DEPOSIT),
            1,
        )
        .await
        .unwrap();
    }
    // The provider registered the receipt key on the pool (the client checks it).
    common::accept_test_key(&chain).await;

    // The gateway, with anvil's JSON-RPC behind /rpc.
    let (gateway_url, shutdown, gateway) =
        common::start_gateway(&deployment, dir.path(), RPC_PRICE, |b| b).await;
    let eth_key = hex::encode(chain.signer(USER).to_bytes());

    // The user joins with the gateway's URL alone. Through a node of another chain
    // (where no pool lives) the published deployment does not check out and nothing is
    // saved; through the pool's chain it is checked and saved.
    let elsewhere = zkcredits_chain::anvil::AnvilProcess::start_free()
        .await
        .unwrap();
    let out = zkcredits(
        home.dir(),
        &eth_key,
        &["join", "--gateway", &gateway_url, "--rpc", elsewhere.url()],
    );
    assert!(!out.status.success());
    assert!(said(&out).contains("reading the pool"), "{}", said(&out));
    assert!(!home.joined_deployment().exists());
    let out = zkcredits(
        home.dir(),
        &eth_key,
        &[
            "join",
            "--gateway",
            &gateway_url,
            "--rpc",
            &deployment.rpc_url,
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    assert_eq!(
        zkcredits_chain::Deployment::load(&home.joined_deployment()).unwrap(),
        deployment,
        "the joined deployment is the chain's, read through the user's node"
    );

    // One paid call on the joined deployment (no --deployment): the note's last receipt
    // is signed by the gateway's key.
    let out = zkcredits(
        home.dir(),
        &eth_key,
        &["call", "--gateway", &gateway_url, "--rpc", "eth_chainId"],
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(home.discovery(&deployment).exists());

    // The gateway is gone for good.
    shutdown.cancel();
    gateway.wait().await.unwrap();

    // The closes are sent from an account the user funded for it, not the deposit one,
    // opened from an encrypted keystore.
    let gas_key = chain.signer(GAS_ACCOUNT);
    zkcredits_chain::alloy::signers::local::PrivateKeySigner::encrypt_keystore(
        dir.path(),
        &mut rand::thread_rng(),
        gas_key.to_bytes(),
        "gas key password",
        Some("gas.json"),
    )
    .unwrap();
    let password_file = dir.path().join("gas-password.txt");
    std::fs::write(&password_file, "gas key password\n").unwrap();
    let keystore_arg = dir.path().join("gas.json").to_string_lossy().into_owned();
    let password_arg = password_file.to_string_lossy().into_owned();
    let payout = Address::repeat_byte(0x7c);
    let payout_arg = payout.to_string();
    let out = zkcredits(
        home.dir(),
        &eth_key,
        &[
            "close",
            "--gateway",
            &gateway_url,
            "--deployment",
            &deployment_arg,
            "--to",
            &payout_arg,
            "--note",
            "0",
            "--unilateral",
            "--keystore",
            &keystore_arg,
            "--password-file",
            &password_arg,
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("unilateral close (m = 0) requested"),
        "{}",
        said(&out)
    );
    let finalize = [
        "close",
        "--gateway",
        gateway_url.as_str(),
        "--deployment",
        deployment_arg.as_str(),
        "--finalize",
        "--keystore",
        keystore_arg.as_str(),
        "--password-file",
        password_arg.as_str(),
    ];
    let out = zkcredits(home.dir(), &eth_key, &finalize);
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("in its challenge window"),
        "{}",
        said(&out)
    );

    // The chain's clock passes the deadline; this machine's does not.
    chain
        .advance(deployment.constants.challenge_window + 1)
        .await
        .unwrap();
    let out = zkcredits(home.dir(), &eth_key, &finalize);
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("finalized"), "{}", said(&out));

    // U = D + R - P - n C_max with n = 1 and R = C_max - price.
    let pool = chain.client(USER).await.unwrap();
    assert_eq!(
        pool.token_balance(payout).await.unwrap(),
        U256::from(DEPOSIT + (c_max - RPC_PRICE) - c_max) * unit
    );
    let journal = Journal::open(
        &home.journal(&deployment),
        wallet.storage_key(StoragePurpose::Journal),
    )
    .unwrap();
    assert_eq!(journal.note(0).unwrap().status, NoteStatus::Closed);
}
