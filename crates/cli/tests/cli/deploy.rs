//! `zkcredits deploy` on anvil, signed by an encrypted keystore of a fresh random account
//! (not one of anvil's), funded from anvil's first account: the dry run sends nothing,
//! the deployment lands where the plan said, sent by the keystore's account, with every
//! contract's code equal to its artifact's (checked here against the artifacts
//! themselves, not through the code under test) and the constants asked for; the
//! development verifier is refused without `--dev`; a wrong password, an unreachable node
//! and an unfunded account are refused with errors that say what to do.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use zkcredits_chain::Deployment;
use zkcredits_chain::alloy::network::TransactionBuilder;
use zkcredits_chain::alloy::primitives::{Address, Bytes, U256};
use zkcredits_chain::alloy::providers::{DynProvider, Provider};
use zkcredits_chain::alloy::rpc::types::TransactionRequest;
use zkcredits_chain::alloy::signers::local::PrivateKeySigner;
use zkcredits_chain::anvil::{AnvilProcess, DEV_ACCOUNTS, contracts_dir, dev_address, dev_signer};
use zkcredits_chain::bindings::linked_libraries;
use zkcredits_chain::deploy::deploy_test_token;
use zkcredits_chain::rpc;
use zkcredits_protocol::credits::Credits;

const PASSWORD: &str = "correct horse battery staple";

/// Runs `zkcredits ARGS` to completion with `home` as its home and no terminal.
fn zkcredits(home: &Path, args: &[&str]) -> Output {
    common::run_echoed(
        Command::new(env!("CARGO_BIN_EXE_zkcredits"))
            .env("ZKCREDITS_HOME", home)
            .env_remove("ZKCREDITS_ETH_KEY")
            .stdin(Stdio::null()),
        args,
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Anvil with a `TestToken` (deployed by anvil's account 0: no pool, no libraries yet)
/// and a keystore of a fresh account holding 10 ETH.
struct Fixture {
    anvil: AnvilProcess,
    dir: tempfile::TempDir,
    token: Address,
    deployer: Address,
    keystore: PathBuf,
    password_file: PathBuf,
}

impl Fixture {
    async fn start() -> Self {
        let anvil = AnvilProcess::start_free().await.unwrap();
        let funder = rpc::wallet_provider(anvil.url(), dev_signer(0)).unwrap();
        let token = deploy_test_token(&funder, dev_address(0), "Test USD", "TUSD")
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (keystore, deployer) = new_keystore(dir.path(), "deployer.json");
        let accounts = funder.get_accounts().await.unwrap();
        assert!(!accounts.contains(&deployer));
        assert!((0..DEV_ACCOUNTS).all(|i| dev_address(i) != deployer));
        let fund = TransactionRequest::default()
            .with_from(dev_address(0))
            .with_to(deployer)
            .with_value(U256::from(10u64).pow(U256::from(19u64)));
        let receipt = funder
            .send_transaction(fund)
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status());
        let password_file = dir.path().join("password.txt");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
        Self {
            anvil,
            dir,
            token,
            deployer,
            keystore,
            password_file,
        }
    }

    fn provider(&self) -> DynProvider {
        self.anvil.provider().unwrap()
    }

    async fn nonce(&self, who: Address) -> u64 {
        self.provider().get_transaction_count(who).await.unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `deploy` with the fixture's node, token and keystore, then `extra`.
    fn deploy(&self, extra: &[&str]) -> Output {
        self.deploy_with(&self.keystore, extra)
    }

    /// `deploy` with the fixture's node and token, `keystore`, then `extra`.
    fn deploy_with(&self, keystore: &Path, extra: &[&str]) -> Output {
        let token = self.token.to_string();
        let mut args = vec![
            "deploy",
            "--rpc",
            self.anvil.url(),
            "--token",
            &token,
            "--keystore",
            keystore.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        zkcredits(self.dir.path(), &args)
    }
}

/// A fresh random key encrypted (scrypt, as `cast wallet new` writes it) into `dir/name`.
fn new_keystore(dir: &Path, name: &str) -> (PathBuf, Address) {
    let key = PrivateKeySigner::random();
    PrivateKeySigner::encrypt_keystore(
        dir,
        &mut rand::thread_rng(),
        key.to_bytes(),
        PASSWORD,
        Some(name),
    )
    .unwrap();
    (dir.join(name), key.address())
}

/// An artifact's runtime code and the byte ranges of its immutables, read from
/// contracts/artifacts directly.
fn artifact(name: &str) -> (Vec<u8>, Vec<(usize, usize)>) {
    let path = contracts_dir()
        .join("artifacts")
        .join(format!("{name}.json"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let code: Bytes = json["deployedBytecode"].as_str().unwrap().parse().unwrap();
    let mut ranges = Vec::new();
    if let Some(refs) = json["immutableReferences"].as_object() {
        for list in refs.values() {
            for r in list.as_array().unwrap() {
                ranges.push((
                    r["start"].as_u64().unwrap() as usize,
                    r["length"].as_u64().unwrap() as usize,
                ));
            }
        }
    }
    (code.to_vec(), ranges)
}

/// `code` equals `expected` except inside `immutables`, where it must not be all zeros
/// for every range (the constructor wrote something).
fn assert_code(name: &str, code: &[u8], expected: &[u8], immutables: &[(usize, usize)]) {
    assert_eq!(code.len(), expected.len(), "{name}: code length");
    let mut masked = vec![false; code.len()];
    for &(start, len) in immutables {
        masked[start..start + len].fill(true);
    }
    for i in 0..code.len() {
        assert!(
            masked[i] || code[i] == expected[i],
            "{name}: code differs at byte {i}"
        );
    }
}

/// The gas used per contract, from the `mined NAME ADDRESS ... gas used N` lines.
fn gas_used(out: &str) -> Vec<(String, u64)> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("mined ")?;
            let name = rest.split_whitespace().next()?.to_string();
            let gas = l.rsplit("gas used ").next()?.trim().parse().ok()?;
            Some((name, gas))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keystore_account_deploys_the_pool_as_planned_and_the_code_is_verified() {
    let f = Fixture::start().await;
    let out_file = f.path("deployment.json");
    let pool_toml = f.path("pool.toml");
    std::fs::write(
        &pool_toml,
        "# a provider's pool\nc_max = 2000\nchallenge_window = 600\nunit = \"1000000000000\"\n",
    )
    .unwrap();
    let common = [
        "--password-file",
        f.password_file.to_str().unwrap(),
        "--dev",
        "--config",
        pool_toml.to_str().unwrap(),
        "--challenge-window",
        "7200",
        "--denominations",
        "1000,5000",
        "--out",
        out_file.to_str().unwrap(),
    ];

    // The dry run: libraries at nonces 0 and 1 (through the factory), the verifier at 2,
    // the pool at 3; nothing sent.
    let mut args = common.to_vec();
    args.push("--dry-run");
    let dry = f.deploy(&args);
    assert!(dry.status.success());
    let planned_pool = f.deployer.create(3);
    let said = stdout(&dry);
    assert!(said.contains(&planned_pool.to_string()), "{said}");
    assert!(said.contains(&f.deployer.create(2).to_string()), "{said}");
    for lib in linked_libraries() {
        assert!(said.contains(&lib.address.to_string()), "{said}");
    }
    assert!(said.contains("dry run: nothing was sent"), "{said}");
    assert!(stderr(&dry).contains("WARNING: --dev"));
    assert_eq!(
        f.nonce(f.deployer).await,
        0,
        "the dry run sent a transaction"
    );
    assert!(
        f.provider()
            .get_code_at(planned_pool)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!out_file.exists());

    // The deployment.
    let run = f.deploy(&common);
    assert!(run.status.success());
    let said = stdout(&run);
    assert!(said.contains("verified:"), "{said}");
    let d = Deployment::load(&out_file).unwrap();
    assert_eq!(d.pool, planned_pool);
    assert_eq!(d.close_verifier, f.deployer.create(2));
    assert_eq!(d.token, f.token);
    assert_eq!(
        d.provider, f.deployer,
        "the provider defaults to the deployer"
    );
    assert_eq!(d.chain_id, 31337);
    assert_eq!(d.constants.c_max.get(), 2000, "from the file");
    assert_eq!(
        d.constants.challenge_window, 7200,
        "the flag wins over the file"
    );
    assert_eq!(
        d.constants.denominations,
        vec![Credits::new(1000), Credits::new(5000)]
    );
    assert_eq!(d.constants.unit, U256::from(10u64).pow(U256::from(12u64)));
    assert_eq!(d.constants.p_max.get(), 5000, "the default");
    assert_eq!(f.nonce(f.deployer).await, 4);

    // Every contract's code is its artifact's (the pool's outside its immutables).
    let provider = f.provider();
    for lib in linked_libraries() {
        let code = provider.get_code_at(lib.address).await.unwrap();
        assert_eq!(code, lib.runtime_code(), "{}", lib.name);
    }
    let (verifier, none) = artifact("CloseVerifier");
    assert!(none.is_empty());
    let code = provider.get_code_at(d.close_verifier).await.unwrap();
    assert_code("CloseVerifier", &code, &verifier, &[]);
    let (pool, immutables) = artifact("ZkCreditsPool");
    assert!(!immutables.is_empty());
    let code = provider.get_code_at(d.pool).await.unwrap();
    assert_code("ZkCreditsPool", &code, &pool, &immutables);

    // The pool's creation was sent by the keystore's account.
    let receipts = provider
        .get_block_receipts(d.deploy_block.into())
        .await
        .unwrap()
        .unwrap();
    let creation = receipts
        .iter()
        .find(|r| r.contract_address == Some(d.pool))
        .expect("the pool's creation is in its deploy block");
    assert_eq!(creation.from, f.deployer);

    let gas = gas_used(&said);
    let names: Vec<&str> = gas.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["PoseidonT3", "PoseidonT5", "CloseVerifier", "ZkCreditsPool"]
    );
    eprintln!("deploy gas: {gas:?}");

    // A second pool with another (non-development) verifier needs no --dev, and reuses
    // the libraries. The verifier's code is one STOP: the pool only checks it has code.
    let mut fake: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(contracts_dir().join("artifacts/CloseVerifier.json")).unwrap(),
    )
    .unwrap();
    fake["bytecode"] = "0x6001600c60003960016000f300".into();
    fake["deployedBytecode"] = "0x00".into();
    let fake_path = f.path("ceremony-verifier.json");
    std::fs::write(&fake_path, fake.to_string()).unwrap();
    let out2 = f.path("second.json");
    let second = f.deploy(&[
        "--password-file",
        f.password_file.to_str().unwrap(),
        "--verifier-artifact",
        fake_path.to_str().unwrap(),
        "--provider",
        &dev_address(1).to_string(),
        "--unit",
        "1000",
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert!(second.status.success());
    assert!(!stderr(&second).contains("WARNING"));
    let said = stdout(&second);
    assert_eq!(said.matches("already deployed").count(), 4, "{said}");
    let d2 = Deployment::load(&out2).unwrap();
    assert_eq!(d2.close_verifier, f.deployer.create(4));
    assert_eq!(d2.pool, f.deployer.create(5));
    assert_eq!(d2.provider, dev_address(1));
    assert_eq!(d2.constants.unit, U256::from(1000u64));
    assert_eq!(
        provider.get_code_at(d2.close_verifier).await.unwrap(),
        Bytes::from_static(&[0])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_refuses_the_dev_verifier_a_wrong_password_a_dead_node_and_an_empty_account() {
    let f = Fixture::start().await;
    let password_file = f.password_file.to_str().unwrap().to_string();

    let out = f.deploy(&["--password-file", &password_file]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("refusing to deploy the DEVELOPMENT close verifier"),
        "{err}"
    );
    assert!(
        err.contains("--verifier-artifact") && err.contains("--dev"),
        "{err}"
    );

    let wrong = f.path("wrong.txt");
    std::fs::write(&wrong, "not the password\n").unwrap();
    let out = f.deploy(&["--dev", "--password-file", wrong.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("wrong password for the keystore"), "{err}");
    assert!(!err.contains(PASSWORD) && !err.contains("not the password"));

    // No password file and no terminal.
    let out = f.deploy(&["--dev"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--password-file"), "{}", stderr(&out));

    let out = f.deploy_with(
        &f.password_file,
        &["--dev", "--password-file", &password_file],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not an Ethereum JSON keystore"));

    // A dead node; over https:// too (a build without TLS says so).
    for url in ["http://127.0.0.1:1", "https://127.0.0.1:1"] {
        let token = f.token.to_string();
        let out = zkcredits(
            f.dir.path(),
            &[
                "deploy",
                "--rpc",
                url,
                "--token",
                &token,
                "--keystore",
                f.keystore.to_str().unwrap(),
                "--password-file",
                &password_file,
                "--dev",
            ],
        );
        assert!(!out.status.success());
        let err = stderr(&out);
        let expected = format!("cannot reach the JSON-RPC endpoint {url}");
        assert!(err.contains(&expected), "{err}");
    }

    // A keystore account without ETH: the plan is printed, then refused with the amount.
    let (empty, empty_address) = new_keystore(f.dir.path(), "empty.json");
    let out = f.deploy_with(&empty, &["--password-file", &password_file, "--dev"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "the deployer {empty_address} holds 0.000000000000000000 ETH"
        )),
        "{err}"
    );
    assert!(err.contains("send it at least"), "{err}");

    assert_eq!(f.nonce(f.deployer).await, 0);
    assert_eq!(f.nonce(empty_address).await, 0);
    assert!(!f.path("deployment.json").exists());
}

/// The whole life of a user on a pool deployed by a provider's keystore, and an exit that
/// links nothing: the user joins with the gateway's URL, deposits from their account,
/// makes a paid call, and closes through the gateway's relay. The deposit account sends
/// no transaction from the deposit on (its nonce does not move), the close is the
/// provider's transaction, the payout gets `U` less the published relay fee and the relay
/// gets the fee. Sending the close from the deposit account is refused before anything
/// happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_joins_a_deployed_pool_pays_and_leaves_through_the_relay_linking_nothing() {
    use zkcredits_chain::bindings::TestToken;

    const USER: usize = 3;
    const DEPOSIT: u64 = 20_000;
    const PRICE: u64 = 10;
    const RELAY_FEE: u64 = 25;

    let f = Fixture::start().await;
    let out_file = f.path("deployment.json");
    let password_file = f.password_file.to_str().unwrap().to_owned();
    let run = f.deploy(&[
        "--password-file",
        &password_file,
        "--dev",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(run.status.success());
    let d = Deployment::load(&out_file).unwrap();
    let (c_max, unit) = (d.constants.c_max.get(), d.constants.unit);
    assert_eq!(d.provider, f.deployer);

    // The provider's gateway, signing with the deployer's keystore key: it makes the pool
    // accept its receipt key, and relays closes for RELAY_FEE.
    let provider_key =
        zkcredits_chain::keystore::decrypt_keystore(&f.keystore, PASSWORD.as_bytes()).unwrap();
    let (gateway_url, shutdown, gateway) = common::start_gateway(&d, f.dir.path(), PRICE, |b| {
        b.provider_signer(provider_key)
            .accept_server_key(true)
            .require_accepted_key(true)
            .relay(zkcredits_protocol::credits::Credits::new(RELAY_FEE))
    })
    .await;

    // The user's account holds ETH (an anvil account) and the token.
    let depositor = dev_address(USER);
    let token = TestToken::new(f.token, f.provider());
    let receipt = token
        .mint(depositor, U256::from(DEPOSIT) * unit)
        .from(dev_address(0))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    let home = f.path("user");
    std::fs::create_dir_all(&home).unwrap();
    let deposit_key = hex::encode(dev_signer(USER).to_bytes());
    let user = |args: &[&str]| {
        common::run_echoed(
            Command::new(env!("CARGO_BIN_EXE_zkcredits"))
                .arg("--dev")
                .env("ZKCREDITS_HOME", &home)
                .env("ZKCREDITS_KEYS", common::keys_dir())
                .env("ZKCREDITS_PASSPHRASE", "user passphrase")
                .env("ZKCREDITS_ETH_KEY", &deposit_key)
                .stdin(Stdio::null()),
            args,
        )
    };
    let said = |out: &Output| format!("{}{}", stdout(out), stderr(out));
    for args in [
        vec!["wallet", "init"],
        vec!["join", "--gateway", &gateway_url, "--rpc", f.anvil.url()],
        vec!["deposit", "--amount", "20000", "--notes", "1"],
        vec!["call", "--gateway", &gateway_url, "--rpc", "eth_chainId"],
    ] {
        let out = user(&args);
        assert!(out.status.success(), "{}", said(&out));
    }
    let nonce_after_deposit = f.nonce(depositor).await;

    // The deposit account as the close's sender is refused, nothing is sent.
    let (own_keystore, own_address) = (f.path("own.json"), depositor);
    PrivateKeySigner::encrypt_keystore(
        f.dir.path(),
        &mut rand::thread_rng(),
        dev_signer(USER).to_bytes(),
        PASSWORD,
        Some("own.json"),
    )
    .unwrap();
    let payout = Address::repeat_byte(0x5a);
    let payout_arg = payout.to_string();
    let out = user(&[
        "close",
        "--gateway",
        &gateway_url,
        "--to",
        &payout_arg,
        "--all",
        "--keystore",
        own_keystore.to_str().unwrap(),
        "--password-file",
        &password_file,
    ]);
    assert!(!out.status.success());
    assert!(
        said(&out).contains(&format!(
            "{own_address} is the account the notes were deposited from"
        )),
        "{}",
        said(&out)
    );

    // The relayed close.
    let relayer_before = f
        .provider()
        .get_transaction_count(f.deployer)
        .await
        .unwrap();
    let out = user(&[
        "close",
        "--gateway",
        &gateway_url,
        "--to",
        &payout_arg,
        "--all",
    ]);
    assert!(out.status.success(), "{}", said(&out));
    assert_eq!(
        f.nonce(depositor).await,
        nonce_after_deposit,
        "the deposit account sent a transaction during the close"
    );
    let closes = zkcredits_chain::settlement_events(
        &f.provider(),
        d.pool,
        d.deploy_block,
        f.provider().get_block_number().await.unwrap(),
    )
    .await
    .unwrap();
    let closed_in: Vec<_> = closes
        .iter()
        .filter(|e| matches!(e.event, zkcredits_chain::SettlementEvent::Closed { .. }))
        .collect();
    assert_eq!(closed_in.len(), 1);
    let block = f
        .provider()
        .get_block_receipts(closed_in[0].block.into())
        .await
        .unwrap()
        .unwrap();
    let close_tx = block
        .iter()
        .find(|r| r.to == Some(d.pool))
        .expect("the close transaction");
    assert_eq!(
        close_tx.from, f.deployer,
        "the relay (provider) sent the close"
    );
    assert_ne!(close_tx.from, depositor);
    assert!(f.nonce(f.deployer).await > relayer_before);
    eprintln!("relayed close gas: {}", close_tx.gas_used);

    // U = D + R - n C_max with n = 1 and R = C_max - price; the relay's fee out of it.
    let paid = token.balanceOf(payout).call().await.unwrap();
    assert_eq!(
        paid,
        U256::from(DEPOSIT + (c_max - PRICE) - c_max - RELAY_FEE) * unit
    );
    shutdown.cancel();
    gateway.wait().await.unwrap();
}
