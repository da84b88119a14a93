//! The HTTP client for one gateway (`docs/PROTOCOL.md §8`): discovery, paid requests,
//! receipts by nullifier, close clearances.
//!
//! All traffic to the gateway goes through one [`reqwest::Client`]; with a SOCKS5 proxy
//! configured (`socks5h://127.0.0.1:9050` for Tor) every request, discovery and
//! receipt look-ups included, goes through it, and names are resolved by the proxy.
//! The environment's `HTTP_PROXY` variables are ignored on purpose: a paid request must
//! never take a route the user did not name. Redirects are never followed: a credential
//! sent on to another address would be a share handed to whoever is there, and a
//! gateway that redirects is misconfigured. A plain `http://` gateway is refused unless
//! it is on loopback, a `.onion` name reached through SOCKS5, or the user says so
//! ([`GatewayClientConfig::allow_plain_http`]): anyone on the path could read the
//! answers and spend the credentials first.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use zkcredits_api::prices::RoutePrices;
use zkcredits_chain::alloy::primitives::Address;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::eddsa::PublicKey;
use zkcredits_protocol::merkle::Root;
use zkcredits_protocol::rln::Nullifier;
use zkcredits_protocol::{Fr, field};

use crate::gateway_constants::{GatewayConstants, ServerKey};

pub use zkcredits_api::{
    CLOSE_CLEARANCE_PATH, CLOSE_RELAY_PATH, DISCOVERY_PATH, DiscoveryKey, RECEIPT_HEADER,
    RECEIPTS_PATH, RelayOffer,
};

/// Why talking to the gateway failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The connection could not be made (refused, DNS, TLS, SOCKS): nothing was sent.
    #[error(
        "cannot connect to the gateway at {url}: {}; check the URL, the network and the SOCKS5 proxy",
        describe(source)
    )]
    Connect {
        /// The gateway's base URL.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// Before paying, the gateway could not be asked whether the next ticket of some
    /// notes is already spent, so none of them is used blind: nothing was sent.
    #[error(
        "cannot ask the gateway at {url} whether the next ticket of {notes} note(s) is already spent; check the URL, the network and the SOCKS5 proxy"
    )]
    TicketsUnchecked {
        /// The gateway's base URL.
        url: String,
        /// How many notes could not be checked.
        notes: usize,
    },
    /// The request may have been sent, but no complete answer came back (timeout,
    /// broken connection).
    #[error(
        "the gateway's answer was lost ({}); the request may have reached it",
        describe(.0)
    )]
    AnswerLost(#[source] reqwest::Error),
    /// The gateway answered something this client cannot use (described).
    #[error("the gateway answered unexpectedly: {0}")]
    Unexpected(String),
    /// The gateway's answer is not the JSON expected.
    #[error("the gateway answered unexpectedly: {what}: {source}")]
    UnexpectedJson {
        /// Which answer.
        what: &'static str,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// The clearance's signer is not an address.
    #[error("the gateway answered unexpectedly: clearance signer: {0}")]
    ClearanceSigner(#[source] zkcredits_chain::alloy::primitives::hex::FromHexError),
    /// The discovery document is not one the client can use.
    #[error("the gateway answered unexpectedly: discovery: {0}")]
    Discovery(#[source] DiscoveryProblem),
    /// No discovery document was saved in the client home.
    #[error(
        "the gateway answered unexpectedly: no saved discovery document at {} ({source}): the gateway was never reached from this home",
        path.display()
    )]
    NoSavedDiscovery {
        /// Where it should be.
        path: std::path::PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The gateway answered with an error.
    #[error("the gateway refused: {status} {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error's stable code.
        code: String,
        /// The gateway's message.
        message: String,
    },
    /// The client could not be built (bad proxy URL, TLS backend, a plain-http gateway
    /// off loopback).
    #[error("bad gateway client configuration: {0}")]
    Config(#[source] ConfigError),
    /// The gateway answered with a redirect, which is never followed.
    #[error(
        "the gateway at {url} redirects to {location}; nothing was sent on. Use the address it names, if it is the provider's, as the gateway URL"
    )]
    Redirected {
        /// The gateway's base URL.
        url: String,
        /// Where it redirects to.
        location: String,
    },
}

impl GatewayError {
    /// The stable code the local proxy reports.
    pub fn code(&self) -> &str {
        match self {
            Self::Connect { .. } | Self::TicketsUnchecked { .. } => "gateway_unreachable",
            Self::AnswerLost(_) => "gateway_answer_lost",
            Self::Unexpected(_)
            | Self::UnexpectedJson { .. }
            | Self::ClearanceSigner(_)
            | Self::Discovery(_)
            | Self::NoSavedDiscovery { .. } => "gateway_unexpected_answer",
            Self::Refused { code, .. } => code,
            Self::Config(_) => "bad_gateway_config",
            Self::Redirected { .. } => "gateway_redirects",
        }
    }
}

/// Why the gateway client could not be built or a request could not be made
/// (`bad_gateway_config`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting is refused (described, with what to do instead).
    #[error("{0}")]
    Refused(String),
    /// The gateway URL does not parse.
    #[error("the gateway URL {url:?} is not a URL: {source}")]
    Url {
        /// The URL given.
        url: String,
        /// Why it does not parse.
        #[source]
        source: <reqwest::Url as std::str::FromStr>::Err,
    },
    /// reqwest refused the proxy or could not build its client (TLS backend).
    #[error("{}", describe(.0))]
    Build(#[source] reqwest::Error),
    /// The credential is not a valid header value.
    #[error("authorization header: {0}")]
    AuthorizationHeader(#[source] reqwest::header::InvalidHeaderValue),
}

/// What is wrong with a discovery document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryProblem {
    /// It is not the JSON document expected.
    #[error("discovery document: {0}")]
    Json(#[source] serde_json::Error),
    /// `verifying_key_hash` is not 32 bytes of hex.
    #[error("verifying_key_hash is not 32 bytes of hex")]
    VerifyingKeyHash,
    /// A server key's `public_key` is not 32 bytes of hex.
    #[error("server key {id}: public_key is not 32 bytes of hex")]
    KeyNotHex {
        /// The key id.
        id: u32,
    },
    /// A server key's `public_key` is not a point of the subgroup.
    #[error("server key {id}: {source}")]
    KeyNotAPoint {
        /// The key id.
        id: u32,
        /// Why.
        #[source]
        source: zkcredits_protocol::babyjubjub::PointError,
    },
    /// A value is not a field element.
    #[error("{what} is not a field element")]
    NotAFieldElement {
        /// Which value.
        what: String,
    },
    /// A server key's `x` and `y` are not the point its `public_key` encodes.
    #[error("server key {id}: x and y are not the point public_key encodes")]
    KeyCoordinates {
        /// The key id.
        id: u32,
    },
    /// The current key is listed among the accepted ones too.
    #[error("the current key {id} is repeated in accepted_keys")]
    CurrentKeyRepeated {
        /// The key id.
        id: u32,
    },
}

impl From<DiscoveryProblem> for GatewayError {
    fn from(e: DiscoveryProblem) -> Self {
        Self::Discovery(e)
    }
}

impl From<ConfigError> for GatewayError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

/// How to reach the gateway.
#[derive(Clone, Debug)]
pub struct GatewayClientConfig {
    /// The gateway's base URL (`https://gateway.example`, no trailing path needed).
    pub base_url: String,
    /// A SOCKS5 proxy for all gateway traffic (`socks5h://127.0.0.1:9050` for Tor).
    pub socks5: Option<String>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for short calls (discovery, receipts, clearances).
    pub short_timeout: Duration,
    /// Time allowed between two chunks of a paid answer (upstreams can be slow, streams
    /// long; a whole-request timeout would cut healthy streams).
    pub read_timeout: Duration,
    /// Accept a plain `http://` gateway off loopback (`--allow-plain-http`). Anyone on
    /// the path then reads every answer and can spend a credential before the gateway
    /// sees it.
    pub allow_plain_http: bool,
}

impl GatewayClientConfig {
    /// Defaults for `base_url`: 20 s to connect (Tor circuits are slow), 30 s for short
    /// calls, 300 s of silence allowed on a paid answer.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            socks5: None,
            connect_timeout: Duration::from_secs(20),
            short_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(300),
            allow_plain_http: false,
        }
    }
}

/// A paid request's answer with its body still to read.
#[derive(Debug)]
pub struct GatewayResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers (the receipt header included).
    pub headers: HeaderMap,
    response: reqwest::Response,
}

impl GatewayResponse {
    /// The receipt header's value, if any.
    pub fn receipt(&self) -> Option<String> {
        receipt_of(&self.headers)
    }

    /// Whether the body is a server-sent-event stream.
    pub fn is_event_stream(&self) -> bool {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
    }

    /// Reads the whole body.
    pub async fn bytes(self) -> Result<Bytes, GatewayError> {
        self.response
            .bytes()
            .await
            .map_err(GatewayError::AnswerLost)
    }

    /// The body as a stream of chunks.
    pub fn stream(self) -> impl Stream<Item = Result<Bytes, GatewayError>> + Send + 'static {
        use futures::StreamExt;
        self.response
            .bytes_stream()
            .map(|r| r.map_err(GatewayError::AnswerLost))
    }
}

/// The receipt header's value in `headers`.
pub fn receipt_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(RECEIPT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// An OpenAI-style error body's `code` and `message`.
pub fn error_code(body: &[u8]) -> Option<(String, String)> {
    zkcredits_api::code::parse_error_body(body)
}

/// Whether `url` may carry credentials: https, or http to loopback, or http to a
/// `.onion` name through SOCKS5 (Tor authenticates and encrypts the path), or http
/// allowed by the user.
fn check_transport(config: &GatewayClientConfig) -> Result<(), GatewayError> {
    let url = reqwest::Url::parse(&config.base_url).map_err(|source| ConfigError::Url {
        url: config.base_url.clone(),
        source,
    })?;
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = url.host_str().unwrap_or_default();
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            let onion = config.socks5.is_some()
                && url
                    .host_str()
                    .is_some_and(|h| h.to_ascii_lowercase().ends_with(".onion"));
            if loopback || onion || config.allow_plain_http {
                Ok(())
            } else {
                Err(ConfigError::Refused(format!(
                    "the gateway URL {} is plain http:// off this machine: anyone on the path \
                     could read the answers and spend a credential first; use https://, a \
                     .onion address through --socks5, or pass --allow-plain-http if the path \
                     is yours",
                    config.base_url
                ))
                .into())
            }
        }
        other => Err(ConfigError::Refused(format!(
            "the gateway URL must be https:// (or http:// on loopback), not {other}://"
        ))
        .into()),
    }
}

fn describe(e: &reqwest::Error) -> String {
    // reqwest's Display omits the cause chain, which is where the useful part is.
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A signed clearance as the gateway returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClearanceReply {
    /// `r || s || v`.
    pub signature: [u8; 65],
    /// The address that signed.
    pub signer: Address,
}

/// The client for one gateway. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GatewayClient {
    http: reqwest::Client,
    base: String,
    short_timeout: Duration,
    read_timeout: Duration,
}

impl GatewayClient {
    /// Builds the client. Fails on a malformed gateway or proxy URL, and on a plain-http
    /// gateway that is not allowed.
    pub fn new(config: &GatewayClientConfig) -> Result<Self, GatewayError> {
        check_transport(config)?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("zkcredits/", env!("CARGO_PKG_VERSION")));
        if let Some(url) = &config.socks5 {
            if !(url.starts_with("socks5://") || url.starts_with("socks5h://")) {
                return Err(ConfigError::Refused(format!(
                    "the SOCKS5 proxy URL must start with socks5h:// (names resolved by the proxy, as Tor needs) or socks5://, got {url}"
                ))
                .into());
            }
            let proxy = reqwest::Proxy::all(url).map_err(ConfigError::Build)?;
            builder = builder.proxy(proxy);
        }
        let http = builder.build().map_err(ConfigError::Build)?;
        Ok(Self {
            http,
            base: config.base_url.trim_end_matches('/').to_owned(),
            short_timeout: config.short_timeout,
            read_timeout: config.read_timeout,
        })
    }

    /// The gateway's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    fn send_error(&self, e: reqwest::Error) -> GatewayError {
        if e.is_connect() {
            GatewayError::Connect {
                url: self.base.clone(),
                source: e,
            }
        } else {
            GatewayError::AnswerLost(e)
        }
    }

    /// Sends a short unpaid exchange (discovery, clearance) and returns the body of a
    /// successful answer; any other status becomes the gateway's refusal.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<bytes::Bytes, GatewayError> {
        self.exchange_within(request, self.short_timeout).await
    }

    /// [`GatewayClient::exchange`] with another deadline for the whole answer.
    async fn exchange_within(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<bytes::Bytes, GatewayError> {
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(self.redirected(response.headers()));
        }
        let body = response.bytes().await.map_err(GatewayError::AnswerLost)?;
        if !status.is_success() {
            return Err(refused(status, &body));
        }
        Ok(body)
    }

    /// The error for a redirect answer.
    pub fn redirected(&self, headers: &HeaderMap) -> GatewayError {
        GatewayError::Redirected {
            url: self.base.clone(),
            location: headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(no location)")
                .to_owned(),
        }
    }

    /// `GET /.well-known/zkcredits`.
    pub async fn discover(&self) -> Result<Discovery, GatewayError> {
        let body = self
            .exchange(self.http.get(self.url(DISCOVERY_PATH)))
            .await?;
        Discovery::parse(&body)
    }

    /// `GET /.well-known/zkcredits`, keeping the document at `path` (the client home's
    /// [`crate::home::ClientHome::discovery`]): its server keys are what a unilateral
    /// close names, and that exit must work when the gateway is gone. A copy that
    /// cannot be written is only warned about.
    pub async fn discover_and_save(
        &self,
        path: &std::path::Path,
    ) -> Result<Discovery, GatewayError> {
        let body = self
            .exchange(self.http.get(self.url(DISCOVERY_PATH)))
            .await?;
        let discovery = Discovery::parse(&body)?;
        let saved = path
            .parent()
            .map_or(Ok(()), crate::wallet::create_private_dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                crate::wallet::write_private_atomic(path, &body).map_err(|e| e.to_string())
            });
        if let Err(e) = saved {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep a copy of the discovery document");
        }
        Ok(discovery)
    }

    /// Sends a paid request: `body` goes out byte for byte (the credential's `x` binds
    /// it). `headers` are the caller's (content type, accept); the credential is added.
    pub async fn send_paid(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Bytes,
        authorization: &str,
    ) -> Result<GatewayResponse, GatewayError> {
        let mut value =
            HeaderValue::from_str(authorization).map_err(ConfigError::AuthorizationHeader)?;
        value.set_sensitive(true);
        let response = self
            .http
            .request(method, self.url(path_and_query))
            .headers(headers)
            .header(AUTHORIZATION, value)
            .body(body)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        Ok(GatewayResponse {
            status: response.status(),
            headers: response.headers().clone(),
            response,
        })
    }

    /// `GET /zkcredit/receipts/{N}`: `Ok(None)` while the gateway has none.
    pub async fn receipt(&self, nullifier: Nullifier) -> Result<Option<String>, GatewayError> {
        let response = self
            .http
            .get(self.url(&format!("{RECEIPTS_PATH}{nullifier}")))
            .timeout(self.short_timeout)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_redirection() {
            return Err(self.redirected(&headers));
        }
        let body = response.bytes().await.map_err(GatewayError::AnswerLost)?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(refused(status, &body));
        }
        if let Some(r) = receipt_of(&headers) {
            return Ok(Some(r));
        }
        Ok(Some(parse_receipt_body(&body)?))
    }

    /// `POST /zkcredit/close-clearance`: the provider's signature allowing a cooperative
    /// close of `(NC, N_j)`. A `409 ticket_spent` comes back as
    /// [`GatewayError::Refused`].
    pub async fn close_clearance(
        &self,
        close_nullifier: Fr,
        nullifier: Nullifier,
    ) -> Result<ClearanceReply, GatewayError> {
        let body =
            self.exchange(self.http.post(self.url(CLOSE_CLEARANCE_PATH)).json(
                &serde_json::json!({
                    "close_nullifier": field::to_hex(&close_nullifier),
                    "nullifier": nullifier.to_string(),
                }),
            ))
            .await?;
        #[derive(Deserialize)]
        struct Reply {
            signature: String,
            signer: String,
        }
        let reply: Reply =
            serde_json::from_slice(&body).map_err(|source| GatewayError::UnexpectedJson {
                what: "clearance body",
                source,
            })?;
        let bytes = decode_hex(&reply.signature)
            .ok_or_else(|| GatewayError::Unexpected("clearance signature is not hex".into()))?;
        let signature: [u8; 65] = bytes
            .try_into()
            .map_err(|_| GatewayError::Unexpected("a clearance signature has 65 bytes".into()))?;
        let signer = reply
            .signer
            .parse::<Address>()
            .map_err(GatewayError::ClearanceSigner)?;
        Ok(ClearanceReply { signature, signer })
    }

    /// `POST /zkcredit/close-relay`: the gateway sends the close (its `closeCooperative`
    /// calldata) from its own account and answers once it is mined, so this waits as long
    /// as a streamed answer may.
    pub async fn close_relay(&self, calldata: &[u8]) -> Result<RelayReply, GatewayError> {
        let body = self
            .exchange_within(
                self.http
                    .post(self.url(CLOSE_RELAY_PATH))
                    .json(&serde_json::json!({
                        "calldata": format!("0x{}", hex::encode(calldata)),
                    })),
                self.read_timeout,
            )
            .await?;
        serde_json::from_slice(&body).map_err(|source| GatewayError::UnexpectedJson {
            what: "relay answer",
            source,
        })
    }
}

/// A receipt fetched as a body: plain base64url text, or JSON `{"receipt": "..."}`.
fn parse_receipt_body(body: &[u8]) -> Result<String, GatewayError> {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(r) = v.get("receipt").and_then(|r| r.as_str())
    {
        return Ok(r.to_owned());
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| GatewayError::Unexpected("the receipt body is not text".into()))?
        .trim();
    if text.is_empty() {
        return Err(GatewayError::Unexpected("an empty receipt".into()));
    }
    Ok(text.trim_matches('"').to_owned())
}

fn refused(status: StatusCode, body: &[u8]) -> GatewayError {
    match error_code(body) {
        Some((code, message)) => GatewayError::Refused {
            status: status.as_u16(),
            code,
            message,
        },
        None => GatewayError::Refused {
            status: status.as_u16(),
            code: format!("http_{}", status.as_u16()),
            message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        },
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).ok()
}

/// The discovery document (`GET /.well-known/zkcredits`) as the client uses it: the
/// constants it checks, the server keys decoded, and the rest kept as published. Parsed
/// from the one wire type, [`zkcredits_api::Discovery`], which the gateway serves.
#[derive(Clone, Debug, PartialEq)]
pub struct Discovery {
    /// What the spender checks and uses.
    pub constants: GatewayConstants,
    /// The roots the gateway accepts.
    pub accepted_roots: Vec<Root>,
    /// What the gateway checks a request against before it spends a ticket: the client
    /// checks the same before it proves.
    pub rules: RequestRules,
    /// The credential and receipt format version.
    pub protocol_version: u8,
    /// `unit`, token base units per credit unit, as published (decimal).
    pub unit: String,
    /// The pool's deployment as the gateway publishes it (no RPC URL): what
    /// `zkcredits join` checks against the chain and saves.
    pub deployment: zkcredits_chain::Deployment,
    /// The gateway's close relay, when it runs one: who a relayed close pays, and how
    /// much (credit units out of the payout).
    pub relay: Option<RelayOffer>,
}

/// The discovery document on the wire: the type the gateway serves.
pub type WireDiscovery = zkcredits_api::Discovery<zkcredits_chain::Deployment>;

/// What the relay answered: the close, paid (token base units, as the `Closed` event).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RelayReply {
    /// The close transaction (sent by the relay's account).
    pub tx_hash: String,
    /// The payout address.
    pub payout: String,
    /// Paid to it.
    pub to_payout: String,
    /// Paid to the relay.
    pub to_relayer: String,
    /// Paid to the provider.
    pub to_provider: String,
    /// Burned.
    pub burned: String,
}

/// What a gateway publishes about the requests it takes: the price table of each route
/// prefix and the largest body. [`RequestRules::check`] refuses locally, with the very
/// code and message the gateway would answer, every request its adapters would refuse
/// before admission (`zkcredits_api::check`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestRules {
    /// Route prefix -> prices.
    pub prices: BTreeMap<String, RoutePrices>,
    /// The largest request body, in bytes, when published.
    pub body_limit: Option<usize>,
}

impl RequestRules {
    /// Checks a request as the gateway's adapters will, before a ticket is spent on it.
    pub fn check(
        &self,
        method: &Method,
        path_and_query: &str,
        body: &[u8],
        c_max: u64,
    ) -> Result<(), zkcredits_api::Refusal> {
        zkcredits_api::check::check(
            &self.prices,
            self.body_limit,
            zkcredits_api::check::RequestView {
                method,
                path_and_query,
                body,
                c_max,
            },
        )
    }

    /// The models an OpenAI-compatible route prices, if one does.
    pub fn models(&self) -> Option<Vec<String>> {
        let mut all: Option<Vec<String>> = None;
        for prices in self.prices.values() {
            if let RoutePrices::Openai(table) = prices {
                all.get_or_insert_with(Vec::new)
                    .extend(table.models.keys().cloned());
            }
        }
        all
    }

    /// The prefix of the JSON-RPC route, if there is one.
    pub fn jsonrpc_prefix(&self) -> Option<&str> {
        self.prices
            .iter()
            .find(|(_, p)| matches!(p, RoutePrices::Jsonrpc(_)))
            .map(|(prefix, _)| prefix.as_str())
    }
}

fn fr(s: &str, what: impl FnOnce() -> String) -> Result<Fr, DiscoveryProblem> {
    field::from_hex(s).ok_or_else(|| DiscoveryProblem::NotAFieldElement { what: what() })
}

/// Decodes a published key: its compressed point, which must be the point `x` and `y`
/// name too.
fn server_key(published: &DiscoveryKey) -> Result<ServerKey, DiscoveryProblem> {
    let id = published.id;
    let bytes: [u8; 32] = decode_hex(&published.public_key)
        .and_then(|b| b.try_into().ok())
        .ok_or(DiscoveryProblem::KeyNotHex { id })?;
    let key = PublicKey::from_bytes(&bytes)
        .map_err(|source| DiscoveryProblem::KeyNotAPoint { id, source })?;
    let point = key.point();
    let (x, y) = (
        fr(&published.x, || format!("server key {id}'s x"))?,
        fr(&published.y, || format!("server key {id}'s y"))?,
    );
    if (x, y) != (point.x, point.y) {
        return Err(DiscoveryProblem::KeyCoordinates { id });
    }
    Ok(ServerKey { id, key })
}

impl Discovery {
    /// The copy [`GatewayClient::discover_and_save`] kept at `path`.
    pub fn load(path: &std::path::Path) -> Result<Self, GatewayError> {
        let body = std::fs::read(path).map_err(|source| GatewayError::NoSavedDiscovery {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&body)
    }

    /// Parses the JSON document ([`WireDiscovery`]) and checks what the client relies on:
    /// the pool address, the verifying key hash, each server key (a point whose two
    /// encodings agree), the roots, and that the current key is not repeated among the
    /// accepted ones.
    pub fn parse(body: &[u8]) -> Result<Self, GatewayError> {
        let wire: WireDiscovery = serde_json::from_slice(body).map_err(DiscoveryProblem::Json)?;
        Self::from_wire(wire)
    }

    /// The client's view of a document already deserialized.
    pub fn from_wire(wire: WireDiscovery) -> Result<Self, GatewayError> {
        let verifying_key_hash: [u8; 32] = decode_hex(&wire.verifying_key_hash)
            .and_then(|b| b.try_into().ok())
            .ok_or(DiscoveryProblem::VerifyingKeyHash)?;
        let current_key = server_key(&wire.current_key)?;
        let accepted_keys = wire
            .accepted_keys
            .iter()
            .map(server_key)
            .collect::<Result<Vec<_>, _>>()?;
        if accepted_keys.iter().any(|k| k.id == current_key.id) {
            return Err(DiscoveryProblem::CurrentKeyRepeated { id: current_key.id }.into());
        }
        let accepted_roots = wire
            .accepted_roots
            .iter()
            .map(|r| fr(r, || "an accepted root".to_owned()).map(Root::from_field))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            constants: GatewayConstants {
                chain_id: wire.chain_id,
                pool: wire.pool,
                c_max: Credits::new(wire.c_max),
                p_max: Credits::new(wire.p_max),
                verifying_key_hash: Some(verifying_key_hash),
                current_key,
                accepted_keys,
                refund_granularity: Some(wire.refund_granularity),
            },
            accepted_roots,
            rules: RequestRules {
                prices: wire.prices,
                body_limit: Some(wire.body_limit),
            },
            protocol_version: wire.protocol_version,
            unit: wire.unit,
            deployment: wire.deployment,
            relay: wire.relay,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use zkcredits_protocol::eddsa::PrivateKey;

    /// A document as the gateway builds it (its type, its key publishing), with keys
    /// `current` (id 2) and `old` (id 1).
    fn served(current: &PublicKey, old: &PublicKey) -> zkcredits_gateway::Discovery {
        use zkcredits_gateway::service::publish_key;
        zkcredits_gateway::Discovery {
            protocol_version: zkcredits_gateway::service::discovery::PROTOCOL_VERSION,
            chain_id: 31337,
            pool: Address::repeat_byte(0x11),
            token: Address::repeat_byte(0x22),
            c_max: 1000,
            p_max: 5000,
            unit: "1000000000000".into(),
            refund_granularity: 10,
            verifying_key_hash: format!("0x{}", hex::encode([9u8; 32])),
            current_key: publish_key(2, current),
            accepted_keys: vec![publish_key(1, old)],
            accepted_roots: vec![field::to_hex(&Fr::from(5u64))],
            prices: BTreeMap::from([(
                "/api".to_owned(),
                RoutePrices::Flat(zkcredits_api::prices::FlatPrices { per_request: 5 }),
            )]),
            body_limit: 1024,
            deployment: zkcredits_chain::testing::offline_deployment(),
            relay: Some(RelayOffer {
                relayer: Address::repeat_byte(0x77),
                fee: 3,
            }),
        }
    }

    /// What the gateway serves is what the client parses: serialized by the gateway's
    /// type, parsed by the client, every field arrives.
    #[test]
    fn a_document_the_gateway_serves_round_trips_through_the_client() {
        let key = PrivateKey::from_bytes([3u8; 32]).public_key();
        let old = PrivateKey::from_bytes([4u8; 32]).public_key();
        let sent = served(&key, &old);
        let d = Discovery::parse(&serde_json::to_vec(&sent).unwrap()).unwrap();
        assert_eq!(
            d.constants,
            GatewayConstants {
                chain_id: sent.chain_id,
                pool: sent.pool,
                c_max: Credits::new(sent.c_max),
                p_max: Credits::new(sent.p_max),
                verifying_key_hash: Some([9u8; 32]),
                current_key: ServerKey { id: 2, key },
                accepted_keys: vec![ServerKey { id: 1, key: old }],
                refund_granularity: Some(sent.refund_granularity),
            }
        );
        assert_eq!(d.accepted_roots, vec![Root::from_field(Fr::from(5u64))]);
        assert_eq!(
            d.rules,
            RequestRules {
                prices: sent.prices.clone(),
                body_limit: Some(sent.body_limit),
            }
        );
        assert_eq!(d.protocol_version, sent.protocol_version);
        assert_eq!(d.unit, sent.unit);
        assert_eq!(d.deployment, sent.deployment);
        assert_eq!(d.relay, sent.relay);
        assert!(d.rules.check(&Method::POST, "/api/x", b"", 5).is_ok());
        assert_eq!(
            d.rules
                .check(&Method::POST, "/other", b"", 5)
                .map_err(|e| e.code),
            Err(zkcredits_api::Code::UnknownRoute)
        );

        let mut without = sent;
        without.relay = None;
        let d = Discovery::parse(&serde_json::to_vec(&without).unwrap()).unwrap();
        assert_eq!(d.relay, None);
    }

    #[test]
    fn a_document_with_a_bad_key_root_or_number_is_refused() {
        let key = PrivateKey::from_bytes([3u8; 32]).public_key();
        let old = PrivateKey::from_bytes([4u8; 32]).public_key();
        let doc = serde_json::to_value(served(&key, &old)).unwrap();
        let current = doc["current_key"].clone();
        let refused = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut bad = doc.clone();
            edit(&mut bad);
            match Discovery::parse(bad.to_string().as_bytes()) {
                Err(GatewayError::Discovery(problem)) => problem,
                other => panic!("expected a refused document, got {other:?}"),
            }
        };
        let json = |edit: &dyn Fn(&mut serde_json::Value)| match refused(edit) {
            DiscoveryProblem::Json(e) => e.classify(),
            other => panic!("expected a JSON refusal, got {other:?}"),
        };
        assert!(matches!(
            refused(&|d| d["current_key"]["public_key"] = "0x1234".into()),
            DiscoveryProblem::KeyNotHex { id: 2 }
        ));
        assert!(matches!(
            refused(&|d| d["current_key"]["x"] = d["accepted_keys"][0]["x"].clone()),
            DiscoveryProblem::KeyCoordinates { id: 2 }
        ));
        assert!(matches!(
            refused(&|d| d["accepted_keys"][0] = current.clone()),
            DiscoveryProblem::CurrentKeyRepeated { id: 2 }
        ));
        assert!(matches!(
            refused(&|d| d["accepted_roots"][0] = "0xzz".into()),
            DiscoveryProblem::NotAFieldElement { what } if what == "an accepted root"
        ));
        assert!(matches!(
            refused(&|d| d["verifying_key_hash"] = "0x12".into()),
            DiscoveryProblem::VerifyingKeyHash
        ));
        // One form only: no aliases, no numbers as text, no key without its coordinates.
        use serde_json::error::Category;
        assert_eq!(json(&|d| d["c_max"] = (-1).into()), Category::Data);
        assert_eq!(json(&|d| d["c_max"] = "1000".into()), Category::Data);
        assert_eq!(
            json(&|d| {
                let k = d["current_key"].clone();
                d.as_object_mut().unwrap().remove("current_key");
                d["server_key"] = k;
            }),
            Category::Data
        );
        assert_eq!(
            json(&|d| {
                d["current_key"].as_object_mut().unwrap().remove("x");
            }),
            Category::Data
        );
    }

    /// The typed causes kept the codes the proxy reports.
    #[test]
    fn typed_causes_keep_their_codes() {
        let not_json = || serde_json::from_slice::<u8>(b"x").unwrap_err();
        let cases: Vec<(GatewayError, &str)> = vec![
            (
                GatewayError::UnexpectedJson {
                    what: "relay answer",
                    source: not_json(),
                },
                "gateway_unexpected_answer",
            ),
            (
                GatewayError::ClearanceSigner("0xzz".parse::<Address>().unwrap_err()),
                "gateway_unexpected_answer",
            ),
            (
                DiscoveryProblem::VerifyingKeyHash.into(),
                "gateway_unexpected_answer",
            ),
            (
                DiscoveryProblem::Json(not_json()).into(),
                "gateway_unexpected_answer",
            ),
            (
                GatewayError::NoSavedDiscovery {
                    path: "/nowhere".into(),
                    source: std::io::ErrorKind::NotFound.into(),
                },
                "gateway_unexpected_answer",
            ),
            (
                ConfigError::Refused("no".into()).into(),
                "bad_gateway_config",
            ),
            (
                ConfigError::Url {
                    url: "::".into(),
                    source: "::".parse::<reqwest::Url>().unwrap_err(),
                }
                .into(),
                "bad_gateway_config",
            ),
            (
                ConfigError::AuthorizationHeader(HeaderValue::from_str("\n").unwrap_err()).into(),
                "bad_gateway_config",
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code, "{e}");
        }
    }

    #[test]
    fn error_bodies_and_receipt_bodies_are_read() {
        let body =
            br#"{"error":{"message":"resync","type":"invalid_request_error","code":"stale_root"}}"#;
        assert_eq!(
            error_code(body),
            Some(("stale_root".to_owned(), "resync".to_owned()))
        );
        assert_eq!(error_code(b"not json"), None);
        assert_eq!(parse_receipt_body(b" abc_-\n").unwrap(), "abc_-");
        assert_eq!(parse_receipt_body(br#"{"receipt":"xyz"}"#).unwrap(), "xyz");
    }

    #[test]
    fn plain_http_is_refused_off_loopback_unless_allowed() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:2",
            "https://gw.example",
        ] {
            GatewayClient::new(&GatewayClientConfig::new(ok)).unwrap();
        }
        let mut config = GatewayClientConfig::new("http://gw.example");
        assert!(matches!(
            GatewayClient::new(&config),
            Err(GatewayError::Config(_))
        ));
        config.allow_plain_http = true;
        GatewayClient::new(&config).unwrap();
        let mut onion = GatewayClientConfig::new("http://abcdef.onion");
        assert!(GatewayClient::new(&onion).is_err());
        onion.socks5 = Some("socks5h://127.0.0.1:9050".into());
        GatewayClient::new(&onion).unwrap();
    }

    #[test]
    fn a_socks_url_must_be_socks5() {
        let mut config = GatewayClientConfig::new("http://127.0.0.1:1");
        config.socks5 = Some("http://127.0.0.1:9050".into());
        assert!(matches!(
            GatewayClient::new(&config),
            Err(GatewayError::Config(_))
        ));
        config.socks5 = Some("socks5h://127.0.0.1:9050".into());
        GatewayClient::new(&config).unwrap();
    }
}
