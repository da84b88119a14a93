//! Which upstream serves which path prefix, and which policy applies, as
//! `gateway.toml` says.
//!
//! Each adapter parses its own section: `[[flat]]` (each with its prefix), `[openai]`
//! (served under `/v1`), `[jsonrpc]` (under its `prefix`, `/rpc` by default); `[policy]`
//! builds the policy.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, GatewayConfig};
use crate::policy::Policy;
use crate::policy::config::PolicyConfig;
use crate::upstream::Upstream;
use crate::upstream::config_error::ConfigError as UpstreamConfigError;
use crate::upstream::flat::FlatUpstream;
use crate::upstream::jsonrpc::{JsonRpcConfig, JsonRpcUpstream};
use crate::upstream::openai::{OpenAiConfig, OpenAiUpstream};

/// A paid route: its path prefix and the upstream serving it.
pub type PaidRoute = (String, Arc<dyn Upstream>);

/// The paid routes: `(path prefix, upstream)`. `c_max` is the deployment's, against which
/// every route's prices are checked at startup.
pub fn build_routes(config: &GatewayConfig, c_max: u64) -> Result<Vec<PaidRoute>, ConfigError> {
    let timeout = Duration::from_secs(config.admission.upstream_timeout_secs);
    let mut routes: Vec<PaidRoute> = Vec::new();
    for flat in &config.flat {
        let upstream = FlatUpstream::new(flat, c_max, timeout).map_err(|e| {
            config
                .source
                .setting_error(&UpstreamConfigError::new("flat", e.to_string()))
        })?;
        routes.push((flat.prefix.clone(), Arc::new(upstream)));
    }
    if let Some(section) = &config.openai {
        let parsed: OpenAiConfig = section.clone().try_into().map_err(|e| {
            config
                .source
                .setting_error(&UpstreamConfigError::new("openai", e.to_string()))
        })?;
        let upstream =
            OpenAiUpstream::new(parsed, c_max).map_err(|e| config.source.setting_error(&e))?;
        // The adapter serves the OpenAI paths themselves (/v1/chat/completions...).
        routes.push(("/v1".to_owned(), Arc::new(upstream)));
    }
    if let Some(section) = &config.jsonrpc {
        let parsed: JsonRpcConfig = section.clone().try_into().map_err(|e| {
            config
                .source
                .setting_error(&UpstreamConfigError::new("jsonrpc", e.to_string()))
        })?;
        let prefix = parsed.prefix.clone();
        let upstream =
            JsonRpcUpstream::new(parsed, c_max).map_err(|e| config.source.setting_error(&e))?;
        routes.push((prefix, Arc::new(upstream)));
    }
    let mut prefixes: Vec<&str> = routes.iter().map(|(p, _)| p.as_str()).collect();
    prefixes.sort_unstable();
    if let Some(w) = prefixes.windows(2).find(|w| w[0] == w[1]) {
        return Err(ConfigError::Invalid {
            key: "flat",
            message: format!("two routes share the prefix {}", w[0]),
        });
    }
    for p in &prefixes {
        if p.starts_with("/zkcredit/") || p.starts_with("/.well-known/") {
            return Err(ConfigError::Invalid {
                key: "flat",
                message: format!("the prefix {p} is reserved for the gateway's own endpoints"),
            });
        }
    }
    if routes.is_empty() {
        return Err(ConfigError::Invalid {
            key: "flat",
            message: "no paid route is configured; add a [[flat]] (or adapter) section".into(),
        });
    }
    Ok(routes)
}

/// The policy from `[policy]`, if any.
pub fn build_policy(config: &GatewayConfig) -> Result<Option<Arc<dyn Policy>>, ConfigError> {
    match &config.policy {
        None => Ok(None),
        Some(section) => {
            let parsed: PolicyConfig = section.clone().try_into().map_err(|e| {
                config
                    .source
                    .setting_error(&UpstreamConfigError::new("policy", e.to_string()))
            })?;
            let policy = parsed
                .build()
                .map_err(|e| config.source.setting_error(&e))?;
            Ok(Some(policy))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::EXAMPLE;

    /// The example config with `extra` appended, built against `C_max = 1000`; the
    /// error's text and the line `extra`'s `needle` is on.
    fn refused(extra: &str, needle: &str) -> (String, usize) {
        let text = format!("{EXAMPLE}\n{extra}");
        let line = text
            .lines()
            .position(|l| l.contains(needle))
            .expect("needle in the config")
            + 1;
        let config = GatewayConfig::parse(&text, Path::new(".")).expect("parses");
        let e = build_routes(&config, 1000).err().expect("refused");
        assert_eq!(e.code(), "config_invalid");
        (e.to_string(), line)
    }

    #[test]
    fn a_json_rpc_price_above_c_max_is_refused_naming_its_line() {
        let (e, line) = refused(
            "[jsonrpc]\nurl = \"http://127.0.0.1:8545\"\n\n[jsonrpc.prices]\neth_blockNumber = 1\neth_call = 2000\n",
            "eth_call",
        );
        assert!(e.contains(&format!("line {line}")), "{e}");
        assert!(e.contains("jsonrpc.prices.eth_call"), "{e}");
        assert!(e.contains("C_max of 1000"), "{e}");
        let (e, line) = refused(
            "[jsonrpc]\nurl = \"http://127.0.0.1:8545\"\ndefault_price = 1001\nprices = { eth_call = 3 }\n",
            "default_price",
        );
        assert!(e.contains(&format!("line {line}")), "{e}");
    }

    #[test]
    fn an_advertised_model_without_a_price_is_refused_naming_its_line() {
        let (e, line) = refused(
            "[openai]\nbase_url = \"http://127.0.0.1:8000/v1\"\n\n[openai.models.\"gpt-4.1-mini\"]\ninput_per_1k = 1\noutput_per_1k = 2\n\n[openai.models.\"llama-3.1\"]\n",
            "llama-3.1",
        );
        assert!(e.contains(&format!("line {line}")), "{e}");
        assert!(e.contains("openai.models.llama-3.1"), "{e}");
        assert!(e.contains("no price"), "{e}");
    }

    #[test]
    fn a_flat_or_models_price_above_c_max_is_refused() {
        let text = EXAMPLE.replace("price = 10 ", "price = 1001 ");
        let config = GatewayConfig::parse(&text, Path::new(".")).expect("parses");
        let e = build_routes(&config, 1000)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("exceeds C_max"), "{e}");
        let (e, line) = refused(
            "[openai]\nbase_url = \"http://127.0.0.1:8000/v1\"\nmodels_price = 5000\n[openai.models.m]\ninput_per_1k = 1\n",
            "models_price",
        );
        assert!(e.contains(&format!("line {line}")), "{e}");
    }

    #[test]
    fn a_section_of_the_wrong_shape_names_its_line() {
        let (e, line) = refused(
            "[jsonrpc]\nurl = \"http://127.0.0.1:8545\"\nprices = { eth_call = 3 }\nmax_batchh = 5\n",
            "[jsonrpc]",
        );
        assert!(e.contains(&format!("line {line}")), "{e}");
        assert!(e.contains("max_batchh"), "{e}");
    }
}
