//! Providers and transaction plumbing shared by deploy, the pool client and the indexer.

use std::time::{Duration, Instant};

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::B256;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;

use crate::{Error, Result};

/// How long to wait for a receipt before giving up.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn parse_url(url: &str) -> Result<alloy::transports::http::reqwest::Url> {
    url.parse().map_err(|_| Error::BadUrl(url.to_string()))
}

/// A provider without a wallet, for views and logs.
pub fn read_provider(url: &str) -> Result<DynProvider> {
    Ok(ProviderBuilder::default()
        .connect_http(parse_url(url)?)
        .erased())
}

/// Like [`read_provider`], over `client`: an HTTP client the caller configured (its TLS
/// roots, e.g. a private CA).
pub fn read_provider_with(url: &str, client: HttpClient) -> Result<DynProvider> {
    Ok(ProviderBuilder::default()
        .connect_reqwest(client, parse_url(url)?)
        .erased())
}

/// The HTTP client type alloy's transport runs on (reqwest's), for
/// [`read_provider_with`] and [`wallet_provider_with`].
pub type HttpClient = alloy::transports::http::reqwest::Client;

/// A provider that signs with `signer`: gas estimated per transaction, the chain id fetched
/// once, and the nonce read from the node for every transaction (the simple nonce manager:
/// a transaction refused at estimation never leaves a nonce gap behind, which the cached
/// manager can).
pub fn wallet_provider(url: &str, signer: PrivateKeySigner) -> Result<DynProvider> {
    wallet_provider_with(url, signer, None)
}

/// Like [`wallet_provider`], over `client` when given (see [`read_provider_with`]).
pub fn wallet_provider_with(
    url: &str,
    signer: PrivateKeySigner,
    client: Option<HttpClient>,
) -> Result<DynProvider> {
    let builder = ProviderBuilder::default()
        .with_simple_nonce_management()
        .with_gas_estimation()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer));
    let url = parse_url(url)?;
    Ok(match client {
        Some(client) => builder.connect_reqwest(client, url).erased(),
        None => builder.connect_http(url).erased(),
    })
}

/// What a mined transaction cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TxInfo {
    /// The transaction hash.
    pub hash: B256,
    /// The block it was mined in.
    pub block_number: u64,
    /// Gas used, from the receipt.
    pub gas_used: u64,
}

impl TxInfo {
    pub(crate) fn of(receipt: &TransactionReceipt) -> Self {
        Self {
            hash: receipt.transaction_hash,
            block_number: receipt.block_number.unwrap_or_default(),
            gas_used: receipt.gas_used,
        }
    }
}

/// Sends `tx` and waits for its receipt; a failed (status 0) transaction is an error.
pub(crate) async fn send(
    provider: &DynProvider,
    tx: TransactionRequest,
) -> Result<TransactionReceipt> {
    let pending = provider.send_transaction(tx).await?;
    let hash = *pending.tx_hash();
    wait_receipt(provider, hash).await
}

/// Polls for the receipt of `hash`: at once (anvil mines on arrival), then backing off up
/// to one second between polls (a real chain).
pub(crate) async fn wait_receipt(provider: &DynProvider, hash: B256) -> Result<TransactionReceipt> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(2);
    loop {
        if let Some(r) = provider.get_transaction_receipt(hash).await? {
            if !r.status() {
                return Err(Error::TxFailed(hash));
            }
            return Ok(r);
        }
        if start.elapsed() > RECEIPT_TIMEOUT {
            return Err(Error::ReceiptTimeout(hash, RECEIPT_TIMEOUT));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// Estimates `tx` (a revert comes back decoded), then sends it with `margin` gas on top of
/// the estimate, capped at `cap`.
pub(crate) async fn send_with_margin(
    provider: &DynProvider,
    mut tx: TransactionRequest,
    margin: u64,
    cap: u64,
) -> Result<TransactionReceipt> {
    let estimate = provider.estimate_gas(tx.clone()).await?;
    tx.set_gas_limit(estimate.saturating_add(margin).min(cap.max(estimate)));
    send(provider, tx).await
}
