//! Which upstream serves which path prefix, and which policy applies, as
//! `gateway.toml` says.
//!
//! Each adapter parses its own section: `[[flat]]` (each with its prefix), `[openai]`
//! (served under `/v1`), `[jsonrpc]` (under its `prefix`, `/rpc` by default); `[policy]`
//! builds the policy.

use std::sync::Arc;

use crate::config::{ConfigError, GatewayConfig};
use crate::policy::Policy;
use crate::policy::config::PolicyConfig;
use crate::tls::Tls;
use crate::upstream::Upstream;
use crate::upstream::flat::FlatUpstream;
use crate::upstream::jsonrpc::{JsonRpcConfig, JsonRpcUpstream};
use crate::upstream::openai::{OpenAiConfig, OpenAiUpstream};
use crate::upstream::setting_error::SettingError;

/// A paid route: its path prefix and the upstream serving it.
pub type PaidRoute = (String, Arc<dyn Upstream>);

/// The paid routes: `(path prefix, upstream)`. `c_max` is the deployment's, against which
/// every route's prices are checked at startup; `tls` is what `https://` upstreams are
/// trusted by.
pub fn build_routes(
    config: &GatewayConfig,
    c_max: u64,
    tls: &Tls,
) -> Result<Vec<PaidRoute>, ConfigError> {
    let (routes, mut errors) = build_all(config, c_max, tls);
    if errors.is_empty() {
        Ok(routes)
    } else {
        Err(errors.swap_remove(0))
    }
}

/// Every route that can be built, and the error of every one that cannot (in the
/// order of the config), so that `zkcredits gateway check` reports them all at once.
pub fn build_all(
    config: &GatewayConfig,
    c_max: u64,
    tls: &Tls,
) -> (Vec<PaidRoute>, Vec<ConfigError>) {
    let timeout = config.admission.upstream_timeout;
    let mut routes: Vec<PaidRoute> = Vec::new();
    let mut errors = Vec::new();
    for (i, flat) in config.flat.iter().enumerate() {
        let index = i.to_string();
        match FlatUpstream::with_tls(flat, c_max, timeout, tls) {
            Ok(upstream) => routes.push((flat.prefix.clone(), Arc::new(upstream))),
            Err(e) => {
                let key = e.setting();
                errors.push(
                    config
                        .source
                        .setting_error(&SettingError::at(&["flat", &index, key], e.to_string())),
                );
            }
        }
    }
    match openai_config(config) {
        Ok(None) => {}
        Ok(Some(parsed)) => match OpenAiUpstream::with_tls(parsed, c_max, tls) {
            // The adapter serves the OpenAI paths themselves (/v1/chat/completions...).
            Ok(upstream) => routes.push(("/v1".to_owned(), Arc::new(upstream))),
            Err(e) => errors.push(config.source.setting_error(&e)),
        },
        Err(e) => errors.push(e),
    }
    match jsonrpc_config(config) {
        Ok(None) => {}
        Ok(Some(parsed)) => {
            let prefix = parsed.prefix.clone();
            match JsonRpcUpstream::with_tls(parsed, c_max, tls) {
                Ok(upstream) => routes.push((prefix, Arc::new(upstream))),
                Err(e) => errors.push(config.source.setting_error(&e)),
            }
        }
        Err(e) => errors.push(e),
    }
    let mut prefixes: Vec<&str> = routes.iter().map(|(p, _)| p.as_str()).collect();
    prefixes.sort_unstable();
    if let Some(w) = prefixes.windows(2).find(|w| w[0] == w[1]) {
        errors.push(ConfigError::Invalid {
            key: "flat",
            message: format!("two routes share the prefix {}", w[0]),
        });
    }
    for p in &prefixes {
        if p.starts_with(zkcredits_api::ENDPOINT_PREFIX) || p.starts_with("/.well-known/") {
            errors.push(ConfigError::Invalid {
                key: "flat",
                message: format!("the prefix {p} is reserved for the gateway's own endpoints"),
            });
        }
    }
    if routes.is_empty() && errors.is_empty() {
        errors.push(ConfigError::NoRoute);
    }
    (routes, errors)
}

/// `[openai]`, parsed (defaults filled in), if present.
pub fn openai_config(config: &GatewayConfig) -> Result<Option<OpenAiConfig>, ConfigError> {
    section(config, "openai", config.openai.as_ref())
}

/// `[jsonrpc]`, parsed (defaults filled in), if present.
pub fn jsonrpc_config(config: &GatewayConfig) -> Result<Option<JsonRpcConfig>, ConfigError> {
    section(config, "jsonrpc", config.jsonrpc.as_ref())
}

/// `[policy]`, parsed (defaults filled in), if present.
pub fn policy_config(config: &GatewayConfig) -> Result<Option<PolicyConfig>, ConfigError> {
    section(config, "policy", config.policy.as_ref())
}

fn section<T: serde::de::DeserializeOwned>(
    config: &GatewayConfig,
    name: &str,
    value: Option<&toml::Value>,
) -> Result<Option<T>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    value
        .clone()
        .try_into()
        .map(Some)
        .map_err(|e: toml::de::Error| {
            // The message names the key at fault (`unknown field `x``): point at it when it
            // is in this section, else at the section.
            let message = e.message().trim().to_owned();
            let key = message
                .split('`')
                .nth(1)
                .and_then(|field| config.source.find_key(name, field))
                .unwrap_or_else(|| vec![name.to_owned()]);
            config.source.setting_error(&SettingError { key, message })
        })
}

/// The policy from `[policy]`, if any; a moderation service over `https://` trusts what
/// `tls` says.
pub fn build_policy(
    config: &GatewayConfig,
    tls: &Tls,
) -> Result<Option<Arc<dyn Policy>>, ConfigError> {
    match policy_config(config)? {
        None => Ok(None),
        Some(parsed) => {
            let policy = parsed
                .build_with_tls(tls)
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
        // The example shows every section commented out: look in `extra` only.
        let line = EXAMPLE.lines().count()
            + 1
            + extra
                .lines()
                .position(|l| l.contains(needle))
                .expect("needle in the config")
            + 1;
        let config = GatewayConfig::parse(&text, Path::new(".")).expect("parses");
        let e = build_routes(&config, 1000, &Tls::default())
            .err()
            .expect("refused");
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
        let e = build_routes(&config, 1000, &Tls::default())
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
            "max_batchh",
        );
        assert!(e.contains(&format!("line {line}")), "{e}");
        assert!(e.contains("max_batchh"), "{e}");
    }
}
