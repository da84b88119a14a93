//! The OpenAI-compatible adapter (vLLM, Ollama, llama.cpp, hosted APIs): chat
//! completions (plain and streamed), completions, embeddings and the model list, metered
//! from a price table per model (protocol section 7).
//!
//! Before anything is spent, [`Upstream::prepare`] checks that the model is known and
//! priced and that the estimated prompt leaves room for at least one output token within
//! `C_max`. [`Upstream::forward`] then caps `max_tokens` so that the prompt plus the
//! worst-case output fits `C_max`, forces usage reporting on streams, and charges the
//! upstream's `usage`; a stream cut before its usage is charged for the text actually
//! relayed.

mod stream;

pub use zkcredits_api::meter;
pub use zkcredits_api::prices::Endpoint;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use zkcredits_api::check::OpenAiPlan as Plan;
use zkcredits_api::prices::{OpenAiPrices, RoutePrices};
use zkcredits_protocol::credits::Credits;

use self::meter::{ModelPrice, Tokenizer};
use super::relay;
use super::setting_error::SettingError;
use super::{PaidRequest, Refusal, Upstream, UpstreamError, UpstreamReply};
use crate::tls::Tls;

const SECTION: &str = "openai";

/// Which field caps a chat completion's length when the client set none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CapField {
    /// `max_tokens`: understood by every OpenAI-compatible server.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: required by OpenAI's reasoning models.
    MaxCompletionTokens,
}

fn default_timeout_ms() -> u64 {
    60_000
}

fn default_endpoints() -> Vec<Endpoint> {
    Endpoint::ALL.to_vec()
}

/// Configuration of the OpenAI-compatible adapter (`[openai]` in the gateway's
/// TOML). Prices are credit units per 1,000 tokens.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The upstream's base URL including its `/v1`, as OpenAI SDKs take it
    /// (`http://127.0.0.1:8000/v1`, `https://api.openai.com/v1`).
    pub base_url: String,
    /// Bearer token for the upstream, if it needs one. Never logged.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Time allowed to connect and for a complete answer (for a stream: until its
    /// response headers), in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Longest silence allowed between two events of a stream, in milliseconds
    /// (default: `timeout_ms`). A stream silent for longer is cut and charged for what
    /// it relayed.
    #[serde(default)]
    pub stream_idle_timeout_ms: Option<u64>,
    /// Encoding used to estimate prompt sizes and count cut streams.
    #[serde(default)]
    pub tokenizer: Tokenizer,
    /// Endpoints served (default: all four).
    #[serde(default = "default_endpoints")]
    pub endpoints: Vec<Endpoint>,
    /// Field set on chat requests that have no length cap of their own.
    #[serde(default)]
    pub chat_cap_field: CapField,
    /// Price of `GET /v1/models` in credit units (default 0).
    #[serde(default)]
    pub models_price: u64,
    /// Price table: model name -> prices. Only these models are served.
    pub models: BTreeMap<String, ModelPrice>,
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout_ms", &self.timeout_ms)
            .field("stream_idle_timeout_ms", &self.stream_idle_timeout_ms)
            .field("tokenizer", &self.tokenizer)
            .field("endpoints", &self.endpoints)
            .field("chat_cap_field", &self.chat_cap_field)
            .field("models_price", &self.models_price)
            .field("models", &self.models)
            .finish()
    }
}

/// The adapter; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct OpenAiUpstream {
    config: OpenAiConfig,
    prices: OpenAiPrices,
    base: String,
    auth: Option<HeaderValue>,
    timeout: Duration,
    idle: Duration,
    client: reqwest::Client,
}

impl OpenAiUpstream {
    /// Checks the configuration against the deployment's `c_max` and builds the adapter
    /// (and loads the tokenizer). A model with no price at all, or a price above
    /// `C_max`, is refused naming its key: it would be advertised and then refuse every
    /// request.
    pub fn new(config: OpenAiConfig, c_max: u64) -> Result<Self, SettingError> {
        Self::with_tls(config, c_max, &Tls::default())
    }

    /// As [`OpenAiUpstream::new`], trusting what `tls` says for an `https://` upstream.
    pub fn with_tls(config: OpenAiConfig, c_max: u64, tls: &Tls) -> Result<Self, SettingError> {
        relay::check_url(SECTION, &config.base_url)?;
        if config.timeout_ms == 0 || config.stream_idle_timeout_ms == Some(0) {
            return Err(SettingError::new(SECTION, "timeouts must be above 0 ms"));
        }
        if config.endpoints.is_empty() {
            return Err(SettingError::new(SECTION, "enable at least one endpoint"));
        }
        if config.models.is_empty() {
            return Err(SettingError::new(
                SECTION,
                "the price table is empty: add [openai.models.\"MODEL\"] entries",
            ));
        }
        for (model, price) in &config.models {
            if price.input_per_1k.is_none() && price.output_per_1k.is_none() {
                return Err(SettingError::at(
                    &["openai", "models", model],
                    "the model has no price: set input_per_1k (and output_per_1k for chat and \
                     completions), or remove it",
                ));
            }
        }
        if config.models_price > c_max {
            return Err(SettingError::new(
                "openai.models_price",
                format!(
                    "{} credit units is above the deployment's C_max of {c_max}: no ticket could \
                     pay for it; lower the price",
                    config.models_price
                ),
            ));
        }
        let auth = relay::bearer(SECTION, config.api_key.as_deref())?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let idle =
            Duration::from_millis(config.stream_idle_timeout_ms.unwrap_or(config.timeout_ms));
        let client = relay::client(SECTION, timeout, tls)?;
        // Load the encoder now rather than on the first paid request.
        config.tokenizer.bpe();
        Ok(Self {
            prices: OpenAiPrices::new(
                config.tokenizer,
                config.endpoints.clone(),
                config.models_price,
                config.models.clone(),
            ),
            base: config.base_url.trim_end_matches('/').to_owned(),
            auth,
            timeout,
            idle,
            client,
            config,
        })
    }

    /// Everything `prepare` checks, and what `forward` needs to rewrite and meter.
    fn plan(&self, request: &PaidRequest) -> Result<Plan, Refusal> {
        zkcredits_api::check::plan_openai(&self.prices, request.view())
    }

    /// The body sent upstream: output capped, usage forced on streams.
    fn rewrite(&self, plan: &Plan, mut body: Map<String, Value>) -> Map<String, Value> {
        if let Some(cap) = plan.output_cap {
            let mut capped = false;
            for key in ["max_tokens", "max_completion_tokens"] {
                if let Some(v) = body.get(key).and_then(Value::as_u64) {
                    body.insert(key.to_owned(), json!(v.min(cap)));
                    capped = true;
                }
            }
            if !capped {
                let key = match (plan.endpoint, self.config.chat_cap_field) {
                    (Endpoint::Chat, CapField::MaxCompletionTokens) => "max_completion_tokens",
                    _ => "max_tokens",
                };
                body.insert(key.to_owned(), json!(cap));
            }
        }
        if plan.stream {
            let options = body.entry("stream_options").or_insert_with(|| json!({}));
            if !options.is_object() {
                *options = json!({});
            }
            if let Some(o) = options.as_object_mut() {
                o.insert("include_usage".to_owned(), Value::Bool(true));
            }
        }
        body
    }

    fn client_wants_usage(body: &Map<String, Value>) -> bool {
        body.get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    async fn send(
        &self,
        endpoint: Endpoint,
        body: Option<&Map<String, Value>>,
        deadline: tokio::time::Instant,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = format!("{}{}", self.base, endpoint.path());
        let mut builder = self.client.request(endpoint.method(), url);
        if let Some(auth) = &self.auth {
            builder = builder.header(header::AUTHORIZATION, auth.clone());
        }
        if let Some(body) = body {
            builder = builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        let response = tokio::time::timeout_at(deadline, builder.send())
            .await
            .map_err(|_| UpstreamError::Timeout(self.timeout))?
            .map_err(|e| relay::transport_error(e, self.timeout))?;
        if response.status().is_server_error() {
            return Err(UpstreamError::ServerError(response.status()));
        }
        Ok(response)
    }

    async fn read_body(
        &self,
        response: reqwest::Response,
        deadline: tokio::time::Instant,
    ) -> Result<Bytes, UpstreamError> {
        tokio::time::timeout_at(deadline, response.bytes())
            .await
            .map_err(|_| UpstreamError::Timeout(self.timeout))?
            .map_err(|e| relay::transport_error(e, self.timeout))
    }

    /// Cost of a complete (non-streamed) answer.
    fn complete_cost(&self, plan: &Plan, status: StatusCode, body: &[u8], c_max: u64) -> u64 {
        if plan.endpoint == Endpoint::Models {
            return self.config.models_price.min(c_max);
        }
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        if let Some((input, output)) = parsed.as_ref().and_then(meter::usage) {
            return meter::price(plan.rates, input, output, c_max);
        }
        if !status.is_success() {
            // The upstream refused the request (4xx) and did no work: nothing to charge.
            return 0;
        }
        let mut text = String::new();
        match parsed {
            Some(v)
                if plan.endpoint != Endpoint::Embeddings && meter::collect_text(&v, &mut text) =>
            {
                let output = self.config.tokenizer.count(&text);
                meter::price(plan.rates, plan.input_tokens, output, c_max)
            }
            Some(_) if plan.endpoint == Endpoint::Embeddings => {
                meter::price(plan.rates, plan.input_tokens, 0, c_max)
            }
            // A success we cannot read: we cannot meter it, so it costs what was paid.
            _ => c_max,
        }
    }

    /// Keeps only the priced models in the upstream's model list.
    fn filter_models(&self, body: Bytes) -> Bytes {
        let Ok(mut list) = serde_json::from_slice::<Value>(&body) else {
            return body;
        };
        if let Some(data) = list.get_mut("data").and_then(Value::as_array_mut) {
            data.retain(|m| {
                m.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| self.config.models.contains_key(id))
            });
            return Bytes::from(list.to_string());
        }
        body
    }
}

#[async_trait]
impl Upstream for OpenAiUpstream {
    fn prepare(&self, request: &PaidRequest) -> Result<(), Refusal> {
        self.plan(request).map(drop)
    }

    async fn forward(&self, request: PaidRequest) -> Result<UpstreamReply, UpstreamError> {
        // The meter prices in the API's plain numbers; the reply carries an amount.
        let c_max = request.c_max.get();
        let mut plan = match self.plan(&request) {
            Ok(plan) => plan,
            // `prepare` accepted this request; it can only fail here if the pipeline
            // skipped it. Answer as the upstream would have, without charging.
            Err(e) => {
                let body = e.body();
                let mut headers = HeaderMap::new();
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
        let body = plan.body.take().map(|b| {
            let wants_usage = Self::client_wants_usage(&b);
            (self.rewrite(&plan, b), wants_usage)
        });
        // One deadline for the whole answer (for a stream: until its headers).
        let deadline = tokio::time::Instant::now() + self.timeout;
        let response = self
            .send(plan.endpoint, body.as_ref().map(|(b, _)| b), deadline)
            .await?;
        let status = response.status();
        let headers = relay::pass_headers(response.headers());
        let is_sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if plan.stream && status.is_success() && is_sse {
            let wants_usage = body.as_ref().is_some_and(|(_, w)| *w);
            let meter = stream::StreamMeter {
                tokenizer: self.config.tokenizer,
                rates: plan.rates,
                input_tokens: plan.input_tokens,
                c_max,
                relay_usage_only_chunks: wants_usage,
            };
            let (events, cost) = stream::relay(response, meter, self.idle);
            return Ok(UpstreamReply::Stream {
                status,
                headers,
                events,
                cost,
            });
        }
        let mut body = self.read_body(response, deadline).await?;
        if plan.endpoint == Endpoint::Models && status.is_success() {
            body = self.filter_models(body);
        }
        let cost = self.complete_cost(&plan, status, &body, c_max);
        Ok(UpstreamReply::Complete {
            status,
            headers,
            body,
            cost: Credits::new(cost),
        })
    }

    fn prices(&self) -> RoutePrices {
        RoutePrices::Openai(self.prices.clone())
    }
}
