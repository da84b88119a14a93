//! The flat adapter: any HTTP API at one price per request.
//!
//! A request under the route's prefix is forwarded to `base_url` with the prefix
//! replaced (`/api/v1/x?q` with prefix `/api` and base `http://h:9/v2` goes to
//! `http://h:9/v2/v1/x?q`), method, body and end-to-end headers unchanged. The cost is
//! the configured price whatever the answer, except that an upstream 5xx, a broken
//! connection or a timeout are upstream failures (full refund).

use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, header};
use serde::{Deserialize, Serialize};

use zkcredits_api::prices::{FlatPrices, RoutePrices};
use zkcredits_protocol::credits::Credits;

use crate::tls::Tls;

use super::{PaidRequest, Refusal, Upstream, UpstreamError, UpstreamReply};

/// One `[[flat]]` route of `gateway.toml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlatConfig {
    /// The path prefix the gateway serves this upstream under (e.g. `/api`).
    pub prefix: String,
    /// Where requests go (e.g. `http://127.0.0.1:9000`).
    pub base_url: String,
    /// Credit units per request, at most `C_max`.
    pub price: u64,
    /// Per-route upstream timeout in seconds (default: the admission setting).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// Why a flat route cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum FlatRouteError {
    /// The price exceeds `C_max`: a request could never be paid.
    #[error("flat route {prefix}: price {price} exceeds C_max {c_max}; lower the price")]
    PriceAboveCMax {
        /// The route.
        prefix: String,
        /// Its price.
        price: u64,
        /// The deployment's `C_max`.
        c_max: u64,
    },
    /// The prefix is not an absolute path.
    #[error("flat route {prefix}: the prefix must start with '/'")]
    RelativePrefix {
        /// The route.
        prefix: String,
    },
    /// The base URL does not parse.
    #[error("flat route {prefix}: base_url is not a URL: {source}")]
    BadBaseUrl {
        /// The route.
        prefix: String,
        /// Why it does not parse.
        #[source]
        source: url::ParseError,
    },
    /// The base URL is neither `http://` nor `https://`.
    #[error("flat route {prefix}: base_url must be http:// or https://, not {scheme}://")]
    UnsupportedScheme {
        /// The route.
        prefix: String,
        /// The scheme given.
        scheme: String,
    },
    /// The HTTP client could not be built (the TLS settings).
    #[error("flat route {prefix}: cannot build the HTTP client: {source}")]
    Client {
        /// The route.
        prefix: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
}

impl FlatRouteError {
    /// The setting of the route's `[[flat]]` table that is wrong.
    pub fn setting(&self) -> &'static str {
        match self {
            Self::PriceAboveCMax { .. } => "price",
            Self::RelativePrefix { .. } => "prefix",
            Self::BadBaseUrl { .. } | Self::UnsupportedScheme { .. } | Self::Client { .. } => {
                "base_url"
            }
        }
    }
}

/// Forwards to one HTTP base URL at a flat price.
#[derive(Debug)]
pub struct FlatUpstream {
    prefix: String,
    base_url: String,
    price: u64,
    timeout: Duration,
    client: reqwest::Client,
}

impl FlatUpstream {
    /// A route checked against `c_max`; `default_timeout` applies unless the route sets
    /// its own.
    pub fn new(
        config: &FlatConfig,
        c_max: u64,
        default_timeout: Duration,
    ) -> Result<Self, FlatRouteError> {
        Self::with_tls(config, c_max, default_timeout, &Tls::default())
    }

    /// As [`FlatUpstream::new`], trusting what `tls` says for an `https://` base URL.
    pub fn with_tls(
        config: &FlatConfig,
        c_max: u64,
        default_timeout: Duration,
        tls: &Tls,
    ) -> Result<Self, FlatRouteError> {
        if config.price > c_max {
            return Err(FlatRouteError::PriceAboveCMax {
                prefix: config.prefix.clone(),
                price: config.price,
                c_max,
            });
        }
        let prefix = || config.prefix.clone();
        if !config.prefix.starts_with('/') {
            return Err(FlatRouteError::RelativePrefix { prefix: prefix() });
        }
        let base =
            reqwest::Url::parse(&config.base_url).map_err(|source| FlatRouteError::BadBaseUrl {
                prefix: prefix(),
                source,
            })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(FlatRouteError::UnsupportedScheme {
                prefix: prefix(),
                scheme: base.scheme().to_owned(),
            });
        }
        let timeout = config
            .timeout_secs
            .map_or(default_timeout, Duration::from_secs);
        let client = tls
            .client_builder()
            .timeout(timeout)
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|source| FlatRouteError::Client {
                prefix: prefix(),
                source,
            })?;
        Ok(Self {
            prefix: config.prefix.trim_end_matches('/').to_owned(),
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            price: config.price,
            timeout,
            client,
        })
    }

    fn target(&self, path_and_query: &str) -> String {
        let rest = path_and_query
            .strip_prefix(&self.prefix)
            .unwrap_or(path_and_query);
        if rest.is_empty() || rest.starts_with('?') {
            format!("{}/{rest}", self.base_url)
        } else {
            format!("{}{rest}", self.base_url)
        }
    }
}

/// Headers that describe one connection, not the message: never forwarded.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

#[async_trait]
impl Upstream for FlatUpstream {
    fn prepare(&self, request: &PaidRequest) -> Result<(), Refusal> {
        zkcredits_api::check::flat_cost(self.price, request.c_max.get()).map(drop)
    }

    async fn forward(&self, request: PaidRequest) -> Result<UpstreamReply, UpstreamError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            if !hop_by_hop(name) && name != header::AUTHORIZATION {
                headers.append(name.clone(), value.clone());
            }
        }
        let sent = self
            .client
            .request(request.method, self.target(&request.path_and_query))
            .headers(headers)
            .body(request.body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(UpstreamError::Timeout(self.timeout)),
            Err(e) => return Err(UpstreamError::Unreachable(super::relay::describe(e))),
        };
        let status = response.status();
        if status.is_server_error() {
            return Err(UpstreamError::ServerError(status));
        }
        let mut out = HeaderMap::new();
        for (name, value) in response.headers() {
            if !hop_by_hop(name) {
                out.append(name.clone(), value.clone());
            }
        }
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return Err(UpstreamError::Timeout(self.timeout)),
            Err(e) => return Err(UpstreamError::Unreachable(super::relay::describe(e))),
        };
        Ok(UpstreamReply::Complete {
            status,
            headers: out,
            body,
            cost: Credits::new(self.price),
        })
    }

    fn prices(&self) -> RoutePrices {
        RoutePrices::Flat(FlatPrices {
            per_request: self.price,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, base: &str) -> FlatUpstream {
        FlatUpstream::new(
            &FlatConfig {
                prefix: prefix.into(),
                base_url: base.into(),
                price: 5,
                timeout_secs: None,
            },
            10,
            Duration::from_secs(1),
        )
        .expect("valid")
    }

    #[test]
    fn the_prefix_is_replaced_by_the_base_url() {
        let r = route("/api", "http://h:9/v2/");
        assert_eq!(r.target("/api/x/y?q=1"), "http://h:9/v2/x/y?q=1");
        assert_eq!(r.target("/api"), "http://h:9/v2/");
        assert_eq!(r.target("/api?q"), "http://h:9/v2/?q");
    }

    #[test]
    fn a_price_above_c_max_is_refused() {
        let e = FlatUpstream::new(
            &FlatConfig {
                prefix: "/a".into(),
                base_url: "http://h".into(),
                price: 11,
                timeout_secs: None,
            },
            10,
            Duration::from_secs(1),
        )
        .expect_err("too expensive");
        assert!(matches!(e, FlatRouteError::PriceAboveCMax { .. }));
    }
}
