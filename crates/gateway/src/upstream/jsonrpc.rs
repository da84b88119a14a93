//! The Ethereum JSON-RPC adapter: a price per method, a batch costs the sum of its
//! calls, and a batch above `C_max` is refused before anything is spent (protocol
//! section 7).
//!
//! The cost of a call is its listed price, also when the node answers it with a
//! JSON-RPC error object: the node parsed, looked up and usually executed the call
//! (a reverted `eth_call` or `eth_estimateGas` is as expensive as a successful one), and
//! a fixed, published price lets the client know its refund before it asks. Only a
//! transport failure or an HTTP 5xx refunds everything, and an HTTP 4xx (the node or
//! its proxy refused to look at the request, e.g. rate limiting) costs nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zkcredits_api::prices::{JsonRpcPrices, RoutePrices};
use zkcredits_protocol::credits::Credits;

use super::relay;
use super::setting_error::SettingError;
use super::{PaidRequest, Refusal, Upstream, UpstreamError, UpstreamReply};
use crate::tls::Tls;

const SECTION: &str = "jsonrpc";

fn default_timeout_ms() -> u64 {
    30_000
}

fn default_prefix() -> String {
    "/rpc".to_owned()
}

fn default_max_batch() -> usize {
    100
}

/// Configuration of the JSON-RPC adapter (`[jsonrpc]` in the gateway's TOML).
/// Prices are whole credit units per call.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRpcConfig {
    /// The node's HTTP JSON-RPC URL. It may embed an API key (hosted nodes do): it is
    /// never logged.
    pub url: String,
    /// Path under which the gateway serves this node (any path below it is accepted and
    /// the call goes to `url`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Time allowed for the node's complete answer, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Price of a method not in `prices`; without it such methods are refused with
    /// `method_not_priced`.
    #[serde(default)]
    pub default_price: Option<u64>,
    /// Most calls in one batch.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Price per method in credit units (`eth_call = 3`).
    pub prices: BTreeMap<String, u64>,
}

impl std::fmt::Debug for JsonRpcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonRpcConfig")
            .field("url", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("default_price", &self.default_price)
            .field("max_batch", &self.max_batch)
            .field("prices", &self.prices)
            .finish()
    }
}

/// The adapter; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct JsonRpcUpstream {
    prices: JsonRpcPrices,
    url: reqwest::Url,
    timeout: Duration,
    client: reqwest::Client,
}

impl JsonRpcUpstream {
    /// Checks the configuration against the deployment's `c_max` and builds the adapter.
    /// A price above `C_max` could never be paid with one ticket: it is refused here,
    /// naming its key, rather than on every call.
    pub fn new(config: JsonRpcConfig, c_max: u64) -> Result<Self, SettingError> {
        Self::with_tls(config, c_max, &Tls::default())
    }

    /// As [`JsonRpcUpstream::new`], trusting what `tls` says for an `https://` node.
    pub fn with_tls(config: JsonRpcConfig, c_max: u64, tls: &Tls) -> Result<Self, SettingError> {
        let url = relay::check_url(SECTION, &config.url)?;
        if config.timeout_ms == 0 {
            return Err(SettingError::new("jsonrpc.timeout_ms", "must be above 0"));
        }
        if config.max_batch == 0 {
            return Err(SettingError::new("jsonrpc.max_batch", "must be at least 1"));
        }
        if config.prices.is_empty() && config.default_price.is_none() {
            return Err(SettingError::new(
                SECTION,
                "no method is priced: fill [jsonrpc.prices] or set default_price",
            ));
        }
        let over = |price: u64| {
            format!(
                "{price} credit units is above the deployment's C_max of {c_max}: no ticket \
                 could pay for it; lower the price"
            )
        };
        for (method, price) in &config.prices {
            if *price > c_max {
                return Err(SettingError::at(
                    &["jsonrpc", "prices", method],
                    over(*price),
                ));
            }
        }
        if let Some(price) = config.default_price.filter(|p| *p > c_max) {
            return Err(SettingError::new("jsonrpc.default_price", over(price)));
        }
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = relay::client(SECTION, timeout, tls)?;
        Ok(Self {
            url,
            timeout,
            client,
            prices: JsonRpcPrices::new(config.prices, config.default_price, config.max_batch),
        })
    }

    /// The price of the request (sum over a batch), checked against `c_max`.
    fn cost(&self, request: &PaidRequest) -> Result<u64, Refusal> {
        zkcredits_api::check::jsonrpc_cost(&self.prices, request.view())
    }
}

#[async_trait]
impl Upstream for JsonRpcUpstream {
    fn prepare(&self, request: &PaidRequest) -> Result<(), Refusal> {
        self.cost(request).map(drop)
    }

    async fn forward(&self, request: PaidRequest) -> Result<UpstreamReply, UpstreamError> {
        let price = match self.cost(&request) {
            Ok(price) => price,
            Err(e) => {
                // Only reachable if the pipeline skipped `prepare`: answer, charge nothing.
                let body = json!({"jsonrpc": "2.0", "id": null, "error": {
                    "code": -32600, "message": e.message, "data": {"code": e.code.as_str()}}});
                let mut headers = http::HeaderMap::new();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return Ok(UpstreamReply::Complete {
                    status: e.code.status(),
                    headers,
                    body: Bytes::from(body.to_string()),
                    cost: Credits::ZERO,
                });
            }
        };
        // The body is forwarded byte for byte: the node sees exactly what was paid for.
        let call = self
            .client
            .post(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(request.body)
            .timeout(self.timeout)
            .send();
        let response = call
            .await
            .map_err(|e| relay::transport_error(e, self.timeout))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(UpstreamError::ServerError(status));
        }
        let headers = relay::pass_headers(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| relay::transport_error(e, self.timeout))?;
        let cost = if status.is_success() { price } else { 0 };
        Ok(UpstreamReply::Complete {
            status,
            headers,
            body,
            cost: Credits::new(cost),
        })
    }

    fn prices(&self) -> RoutePrices {
        RoutePrices::Jsonrpc(self.prices.clone())
    }
}
