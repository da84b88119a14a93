//! Which upstream serves which path prefix, and which policy applies, as
//! `gateway.toml` says.
//!
//! Each adapter parses its own section: `[[flat]]` here; `[openai]` and `[jsonrpc]` are
//! wired in by their adapters (`value.clone().try_into::<OpenAiConfig>()`). Until then a
//! config naming them is refused rather than served without them.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, GatewayConfig};
use crate::policy::Policy;
use crate::upstream::Upstream;
use crate::upstream::flat::FlatUpstream;

/// A paid route: its path prefix and the upstream serving it.
pub type PaidRoute = (String, Arc<dyn Upstream>);

/// The paid routes: `(path prefix, upstream)`. `c_max` is the deployment's, against which
/// every route's prices are checked at startup.
pub fn build_routes(config: &GatewayConfig, c_max: u64) -> Result<Vec<PaidRoute>, ConfigError> {
    let timeout = Duration::from_secs(config.admission.upstream_timeout_secs);
    let mut routes: Vec<PaidRoute> = Vec::new();
    for flat in &config.flat {
        let upstream =
            FlatUpstream::new(flat, c_max, timeout).map_err(|e| ConfigError::Invalid {
                key: "flat",
                message: e.to_string(),
            })?;
        routes.push((flat.prefix.clone(), Arc::new(upstream)));
    }
    for (key, section) in [("openai", &config.openai), ("jsonrpc", &config.jsonrpc)] {
        if section.is_some() {
            return Err(ConfigError::Invalid {
                key,
                message: format!("this build has no [{key}] adapter yet; remove the section"),
            });
        }
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
        Some(_) => Err(ConfigError::Invalid {
            key: "policy",
            message: "this build has no policy implementation yet; remove the [policy] section"
                .into(),
        }),
    }
}
