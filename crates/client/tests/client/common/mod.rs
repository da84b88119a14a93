//! Shared by the client's tests: development keys made once per machine (reused across
//! test binaries), a wallet, gateway constants and a test gateway signing key.

#![allow(dead_code, unreachable_pub)]

pub mod net;

use std::sync::{Arc, OnceLock};

use zkcredits_chain::Deployment;
use zkcredits_circuits::keys;
use zkcredits_circuits::prover::RequestProver;
use zkcredits_client::wallet::Wallet;
use zkcredits_client::{GatewayConstants, ServerKey};
use zkcredits_protocol::eddsa::PrivateKey;

pub const MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

/// The request prover on the development keys, made once per machine
/// ([`zkcredits_circuits::testing::dev_keys_dir`]).
pub fn prover() -> Arc<RequestProver> {
    static PROVER: OnceLock<Arc<RequestProver>> = OnceLock::new();
    PROVER
        .get_or_init(|| {
            let dir = zkcredits_circuits::testing::dev_keys_dir();
            let keys = keys::load_proving_key(dir).expect("development keys load");
            Arc::new(RequestProver::new(keys).expect("development keys fit the circuit"))
        })
        .clone()
}

pub fn wallet() -> Wallet {
    Wallet::from_mnemonic(MNEMONIC).expect("mnemonic")
}

/// Deposits `notes` notes of `deposit` credit units each from dev account `account` and
/// records them, sealed under `wallet`'s journal key, in the journal at `journal_path`
/// (created if missing): a user's `zkcredits deposit`.
pub async fn deposit_into_journal(
    chain: &zkcredits_chain::testing::TestChain,
    account: usize,
    wallet: &Wallet,
    journal_path: &std::path::Path,
    deposit: zkcredits_protocol::credits::Credits,
    notes: u64,
) {
    use zkcredits_client::journal::Journal;
    use zkcredits_client::seal::StoragePurpose;
    let pool = chain.client(account).await.expect("user client");
    let mut journal =
        Journal::open(journal_path, wallet.storage_key(StoragePurpose::Journal)).expect("journal");
    zkcredits_client::deposit::deposit_notes(&pool, &mut journal, &wallet.seed(), deposit, notes)
        .await
        .expect("deposit");
}

/// The provider (dev account 1) makes the pool accept `key` for closes, as a gateway
/// started with `accept_server_key` does; the client checks this before spending.
pub async fn accept_on_chain(chain: &zkcredits_chain::testing::TestChain, key: &PrivateKey) {
    chain
        .client(zkcredits_chain::testing::PROVIDER)
        .await
        .expect("provider client")
        .accept_server_key(key.public_key())
        .await
        .expect("acceptServerKey");
}

/// The test gateway's receipt key.
pub fn gateway_key() -> PrivateKey {
    PrivateKey::from_bytes([7u8; 32])
}

pub fn gateway_constants(deployment: &Deployment) -> GatewayConstants {
    GatewayConstants {
        chain_id: deployment.chain_id,
        pool: deployment.pool,
        c_max: deployment.constants.c_max,
        p_max: deployment.constants.p_max,
        verifying_key_hash: Some(prover().verifying_key_hash()),
        current_key: ServerKey {
            id: 1,
            key: gateway_key().public_key(),
        },
        accepted_keys: Vec::new(),
        refund_granularity: None,
    }
}

/// A deployment that exists only on paper, for tests with a fixed tree.
pub fn offline_deployment() -> Deployment {
    zkcredits_chain::testing::offline_deployment()
}

/// The receipt a gateway signing with [`gateway_key`] returns for a credential with
/// `T_next = next_commitment`.
pub fn receipt_for(next_commitment: zkcredits_protocol::Fr, refund: u64, penalty: u64) -> String {
    use zkcredits_protocol::credits::Credits;
    use zkcredits_protocol::state::{Receipt, receipt_message};
    use zkcredits_protocol::wire::WireFormat;
    let (refund, penalty) = (Credits::new(refund), Credits::new(penalty));
    Receipt {
        refund,
        penalty,
        signature: gateway_key().sign(receipt_message(next_commitment, refund, penalty)),
    }
    .to_base64url()
}

/// The credential inside an `Authorization` value.
pub fn credential(authorization: &str) -> zkcredits_protocol::wire::Credential {
    use zkcredits_protocol::wire::{Credential, WireFormat};
    let b64 = authorization
        .strip_prefix("ZkCredit ")
        .expect("ZkCredit scheme");
    Credential::from_base64url(b64).expect("credential decodes")
}

/// Whether the credential verifies with the public inputs a gateway computes itself
/// (x from the request bytes, the deployment's limits, its own server key).
pub fn gateway_accepts(
    authorization: &str,
    method: &str,
    path: &str,
    body: &[u8],
    deployment: &Deployment,
) -> bool {
    use zkcredits_circuits::prover::from_points;
    use zkcredits_circuits::request::RequestPublicInputs;
    use zkcredits_circuits::verifier::Verifier;
    let c = credential(authorization);
    let public = RequestPublicInputs {
        root: c.root,
        x: zkcredits_protocol::request::request_x(method, path, body),
        y: c.y,
        nullifier: c.nullifier,
        next_commitment: c.next_commitment,
        c_max: deployment.constants.c_max,
        p_max: deployment.constants.p_max,
        server_key: gateway_key().public_key().point(),
    };
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER
        .get_or_init(|| Verifier::new(prover().keys().verifying_key()))
        .verify(&from_points(&c.proof), &public.to_field_elements())
}
