//! An external moderation service speaking the OpenAI moderation API: `POST {url}` with
//! `{"input": text}` (and `model` when configured) answers `results[0].flagged`. Any
//! failure (unreachable, timeout, an error status, an answer of another shape) is a
//! [`PolicyError`]: the gateway then refuses the request with a full refund rather than
//! forwarding something nobody checked (fail closed).

use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderValue, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::blocklist::{evidence_hash, request_text};
use super::{Policy, PolicyError, Verdict};
use crate::tls::Tls;
use crate::upstream::PaidRequest;
use crate::upstream::setting_error::SettingError;
use zkcredits_protocol::credits::Credits;

const SECTION: &str = "policy.moderation";

fn default_timeout_ms() -> u64 {
    10_000
}

/// Configuration of the moderation check (`[policy.moderation]`).
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModerationConfig {
    /// The moderation endpoint (`https://api.openai.com/v1/moderations`).
    pub url: String,
    /// Bearer token for it, if needed. Never logged.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Moderation model to ask for, if the service wants one.
    #[serde(default)]
    pub model: Option<String>,
    /// Penalty in credit units for flagged content (clamped to `P_max` by the gateway).
    pub penalty: Credits,
    /// Time allowed for the service's answer, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl std::fmt::Debug for ModerationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModerationConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("penalty", &self.penalty)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// The moderation policy.
#[derive(Debug)]
pub struct ModerationPolicy {
    config: ModerationConfig,
    url: reqwest::Url,
    auth: Option<HeaderValue>,
    timeout: Duration,
    client: reqwest::Client,
}

impl ModerationPolicy {
    /// Checks the configuration and builds the policy.
    pub fn new(config: ModerationConfig) -> Result<Self, SettingError> {
        Self::with_tls(config, &Tls::default())
    }

    /// As [`ModerationPolicy::new`], trusting what `tls` says for an `https://` service.
    pub fn with_tls(config: ModerationConfig, tls: &Tls) -> Result<Self, SettingError> {
        let url = crate::upstream::relay::check_url(SECTION, &config.url)?;
        if config.timeout_ms == 0 {
            return Err(SettingError::new(SECTION, "timeout_ms must be above 0"));
        }
        let auth = crate::upstream::relay::bearer(SECTION, config.api_key.as_deref())?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = crate::upstream::relay::client(SECTION, timeout, tls)?;
        Ok(Self {
            config,
            url,
            auth,
            timeout,
            client,
        })
    }

    async fn flagged(&self, text: String) -> Result<(bool, Vec<String>), PolicyError> {
        let mut body = json!({"input": text});
        if let Some(model) = &self.config.model {
            body["model"] = json!(model);
        }
        let mut call = self
            .client
            .post(self.url.clone())
            .json(&body)
            .timeout(self.timeout);
        if let Some(auth) = &self.auth {
            call = call.header(header::AUTHORIZATION, auth.clone());
        }
        let fail = |what: String| PolicyError(format!("moderation service: {what}"));
        let response = call
            .send()
            .await
            .map_err(|e| fail(crate::upstream::relay::describe(e)))?;
        if !response.status().is_success() {
            return Err(fail(format!("answered {}", response.status())));
        }
        let answer: Value = response
            .json()
            .await
            .map_err(|e| fail(format!("unreadable answer: {}", e.without_url())))?;
        let result = &answer["results"][0];
        let flagged = result["flagged"]
            .as_bool()
            .ok_or_else(|| fail("answer has no results[0].flagged".into()))?;
        let mut categories: Vec<String> = result["categories"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.as_bool() == Some(true))
            .map(|(k, _)| k.clone())
            .collect();
        categories.sort();
        Ok((flagged, categories))
    }
}

#[async_trait]
impl Policy for ModerationPolicy {
    async fn check(&self, request: &PaidRequest) -> Result<Verdict, PolicyError> {
        let (flagged, categories) = self.flagged(request_text(request)).await?;
        if !flagged {
            return Ok(Verdict::Allow);
        }
        let rule = if categories.is_empty() {
            "moderation".to_owned()
        } else {
            format!("moderation:{}", categories.join(","))
        };
        Ok(Verdict::Violation {
            penalty: self.config.penalty,
            rule,
            evidence_hash: evidence_hash(request),
        })
    }
}
