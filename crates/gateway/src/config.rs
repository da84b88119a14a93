//! `gateway.toml`: everything a provider sets, parsed in one place.
//!
//! Unknown keys are refused (a misspelt setting must not silently fall back to a
//! default). Relative paths are resolved against the directory of the config file.
//! Secrets (the provider's Ethereum key, the receipt keys) are read from files or an
//! environment variable, never written in the config itself. The sections of the
//! upstream adapters and of the policy are kept opaque here (`toml::Value`) and parsed
//! by their own modules, so this file does not change when an adapter does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zkcredits_protocol::credits::Credits;

use serde::{Deserialize, Serialize};
use zkcredits_chain::Deployment;
use zkcredits_chain::alloy::signers::local::PrivateKeySigner;
use zkcredits_protocol::eddsa::{PrivateKey, PublicKey};

use crate::duties::DutiesConfig;
use crate::service::Settings;

/// Why the configuration cannot be used. Each variant has a stable code
/// ([`ConfigError::code`]) and says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or has unknown or missing keys.
    #[error("{path} is not a valid gateway config: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A value is out of its allowed range or inconsistent with another.
    #[error("invalid setting `{key}`: {message}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// No upstream section (`[[flat]]`, `[openai]`, `[jsonrpc]`) is configured.
    #[error("no paid route is configured; add a [[flat]] (or adapter) section")]
    NoRoute,
    /// A setting of an adapter or policy section cannot work; names its line.
    #[error("{file}{}: `{key}`: {message}", .line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Setting {
        /// The config file.
        file: String,
        /// The 1-based line of the key, when found.
        line: Option<usize>,
        /// The key, dotted.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A key file or key variable does not hold a usable key.
    #[error("bad key in {what}: {message}")]
    Key {
        /// Which key.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The deployment file cannot be used.
    #[error("cannot use the deployment file {path}: {message}")]
    Deployment {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Unreadable { .. } => "config_unreadable",
            ConfigError::Syntax { .. } => "config_syntax",
            ConfigError::Invalid { .. } | ConfigError::Setting { .. } | ConfigError::NoRoute => {
                "config_invalid"
            }
            ConfigError::Key { .. } => "config_key",
            ConfigError::Deployment { .. } => "config_deployment",
        }
    }
}

/// The whole `gateway.toml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The pool's deployment JSON (what `zkcredits devnet` or a deploy writes).
    pub deployment: PathBuf,
    /// JSON-RPC URL to read the chain through (default: the deployment's `rpc_url`).
    #[serde(default)]
    pub rpc_url: Option<String>,
    /// Directory with the request verifying key (`zkcredits setup`).
    pub keys_dir: PathBuf,
    /// Nullifier and receipt store: `sqlite:PATH`, `sqlite:///abs/path` or
    /// `postgres://user@host:port/db[?schema=name]`.
    pub store: String,
    /// Where the chain indexer persists the note tree (default: memory only, so each
    /// start re-reads the pool's events).
    #[serde(default)]
    pub indexer_state: Option<PathBuf>,
    /// The provider's Ethereum key (clearances, violations, slashes, key acceptance).
    pub provider: ProviderKeyConfig,
    /// Receipt-signing keys.
    pub server_keys: ServerKeysConfig,
    /// Admission settings, as the service takes them (but for the roots poll: see
    /// [`GatewayConfig::settings`]).
    #[serde(default)]
    pub admission: Settings,
    /// Chain polling and the on-chain duties, as the duties take them (but for the least
    /// values: see [`GatewayConfig::duties_config`]).
    #[serde(default)]
    pub chain: DutiesConfig,
    /// The close relay.
    #[serde(default)]
    pub relay: RelayConfig,
    /// Flat-price HTTP upstreams.
    #[serde(default)]
    pub flat: Vec<crate::upstream::flat::FlatConfig>,
    /// OpenAI-compatible upstream (parsed by its adapter).
    #[serde(default)]
    pub openai: Option<toml::Value>,
    /// Ethereum JSON-RPC upstream (parsed by its adapter).
    #[serde(default)]
    pub jsonrpc: Option<toml::Value>,
    /// Policy (parsed by the policy module).
    #[serde(default)]
    pub policy: Option<toml::Value>,
    /// Which CAs outgoing `https://` calls trust (upstreams, moderation, chain RPC).
    #[serde(default)]
    pub tls: crate::tls::TlsConfig,
    /// The file and text this was parsed from, to name the line of a bad setting.
    #[serde(skip)]
    pub source: ConfigSource,
}

/// Where a [`GatewayConfig`] came from.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    /// The file's name as the operator gave it (`<config>` for text).
    pub file: String,
    /// Its text.
    pub text: String,
}

impl ConfigSource {
    /// The 1-based line of the key at `path` in the text, or of the deepest key of the
    /// path that exists (a whole section, when the fault is in its shape).
    pub fn line_of(&self, path: &[String]) -> Option<usize> {
        use toml::de::{DeTable, DeValue};
        let document = DeTable::parse(&self.text).ok()?;
        let mut table: &DeTable<'_> = document.get_ref();
        let mut found = None;
        let mut parts = path.iter().peekable();
        while let Some(part) = parts.next() {
            let Some((key, value)) = table
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == part.as_str())
            else {
                break;
            };
            found = Some(key.span().start);
            let mut value = value;
            // An array of tables (`[[flat]]`): the next part is the element's index.
            if let DeValue::Array(items) = value.get_ref() {
                let Some(item) = parts
                    .peek()
                    .and_then(|i| i.parse::<usize>().ok())
                    .and_then(|i| items.get(i))
                else {
                    break;
                };
                parts.next();
                found = Some(item.span().start);
                value = item;
            }
            match value.get_ref() {
                DeValue::Table(t) => table = t,
                _ => break,
            }
        }
        found.map(|offset| self.line_at(offset))
    }

    /// The path of the first key named `field` inside the section `section` (at any
    /// depth, in the order of the text), for a parser's message that names only the
    /// field (`unknown field `x``).
    pub fn find_key(&self, section: &str, field: &str) -> Option<Vec<String>> {
        use toml::de::{DeTable, DeValue};
        fn walk(table: &DeTable<'_>, field: &str, path: &mut Vec<String>) -> bool {
            for (key, value) in table.iter() {
                path.push(key.get_ref().to_string());
                if key.get_ref().as_ref() == field {
                    return true;
                }
                let found = match value.get_ref() {
                    DeValue::Table(t) => walk(t, field, path),
                    DeValue::Array(items) => items.iter().enumerate().any(|(i, item)| {
                        path.push(i.to_string());
                        let found =
                            matches!(item.get_ref(), DeValue::Table(t) if walk(t, field, path));
                        if !found {
                            path.pop();
                        }
                        found
                    }),
                    _ => false,
                };
                if found {
                    return true;
                }
                path.pop();
            }
            false
        }
        let document = DeTable::parse(&self.text).ok()?;
        let (_, value) = document
            .get_ref()
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == section)?;
        let mut path = vec![section.to_owned()];
        let found = match value.get_ref() {
            DeValue::Table(t) => walk(t, field, &mut path),
            DeValue::Array(items) => items.iter().enumerate().any(|(i, item)| {
                path.push(i.to_string());
                let found =
                    matches!(item.get_ref(), DeValue::Table(t) if walk(t, field, &mut path));
                if !found {
                    path.pop();
                }
                found
            }),
            _ => false,
        };
        found.then_some(path)
    }

    /// The 1-based line of byte `offset` of the text.
    pub fn line_at(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text[..offset].matches('\n').count() + 1
    }

    /// An adapter's or policy's configuration error, with its line.
    pub fn setting_error(&self, e: &crate::upstream::setting_error::SettingError) -> ConfigError {
        ConfigError::Setting {
            file: self.file.clone(),
            line: self.line_of(&e.key),
            key: e.key.join("."),
            message: e.message.clone(),
        }
    }
}

/// Where the provider's secp256k1 key is.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderKeyConfig {
    /// A file holding the key as hex (with or without `0x`), mode 0600 advised.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name of an environment variable holding the key as hex.
    #[serde(default)]
    pub key_env: Option<String>,
}

/// Receipt keys: the current one signs; older ones are still accepted in credentials.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerKeysConfig {
    /// The key that signs new receipts.
    pub current: CurrentKeyConfig,
    /// Older keys whose receipts clients may still hold.
    #[serde(default)]
    pub accepted: Vec<AcceptedKeyConfig>,
}

/// The current receipt key.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CurrentKeyConfig {
    /// The id credentials name it by.
    pub id: u32,
    /// A file holding the 32-byte EdDSA secret as hex.
    pub file: PathBuf,
}

/// An older receipt key, public part only.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedKeyConfig {
    /// The id credentials name it by.
    pub id: u32,
    /// The compressed BabyJubJub public key as `0x` + 64 hex digits.
    pub public_key: String,
}

/// The close relay: cooperative closes sent from the provider's account for users who
/// have no other funded account (`docs/PROTOCOL.md §6`, "Relayed close").
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Relay closes (`POST /zkcredit/close-relay`).
    pub enabled: bool,
    /// What a relayed close pays the provider's account, credit units out of the user's
    /// payout: set it to cover the gas of a close (about 400,000 gas, more when the relay
    /// commits the root first) at the chain's usual gas price.
    pub fee: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            fee: 0,
        }
    }
}

impl GatewayConfig {
    /// Reads and checks `path`; relative paths inside are resolved against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Self::parse(&text, base).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        config.source.file = path.display().to_string();
        Ok(config)
    }

    /// Parses config text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let config = Self::parse_unchecked(text, base)?;
        match config.problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(config),
        }
    }

    /// Parses config text and resolves relative paths against `base`, without the
    /// checks of values against each other ([`GatewayConfig::problems`]).
    pub fn parse_unchecked(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::from("<config>"),
            message: e.to_string(),
        })?;
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        config.source = ConfigSource {
            file: "<config>".to_owned(),
            text: text.to_owned(),
        };
        resolve(&mut config.deployment);
        resolve(&mut config.keys_dir);
        if let Some(p) = config.indexer_state.as_mut() {
            resolve(p);
        }
        if let Some(p) = config.provider.key_file.as_mut() {
            resolve(p);
        }
        resolve(&mut config.server_keys.current.file);
        if let Some(p) = config.tls.ca_file.as_mut() {
            resolve(p);
        }
        if let Some(rest) = config.store.strip_prefix("sqlite:")
            && !rest.starts_with("//")
        {
            let mut p = PathBuf::from(rest);
            resolve(&mut p);
            config.store = format!("sqlite://{}", p.display());
        }
        Ok(config)
    }

    /// Every value out of its range or inconsistent with another (no file is read).
    pub fn problems(&self) -> Vec<ConfigError> {
        let a = &self.admission;
        let mut out = Vec::new();
        let mut invalid = |key, message: &str| {
            out.push(ConfigError::Invalid {
                key,
                message: message.into(),
            });
        };
        if a.refund_granularity == Credits::ZERO {
            invalid(
                "admission.refund_granularity",
                "must be at least 1 (1 refunds to the unit)",
            );
        }
        if a.body_limit == 0 {
            invalid("admission.body_limit_bytes", "must be at least 1");
        }
        if a.verify_batch_max == 0 {
            invalid("admission.verify_batch_max", "must be at least 1");
        }
        if a.upstream_timeout.is_zero() {
            invalid("admission.upstream_timeout_secs", "must be at least 1");
        }
        if self.provider.key_file.is_some() == self.provider.key_env.is_some() {
            invalid(
                "provider",
                "set exactly one of provider.key_file and provider.key_env",
            );
        }
        if let Some(url) = &self.rpc_url
            && !matches!(reqwest::Url::parse(url), Ok(u) if matches!(u.scheme(), "http" | "https"))
        {
            invalid("rpc_url", "must be an http:// or https:// URL");
        }
        let mut ids = vec![self.server_keys.current.id];
        for k in &self.server_keys.accepted {
            if ids.contains(&k.id) {
                out.push(ConfigError::Invalid {
                    key: "server_keys",
                    message: format!("key id {} is used twice; give each key its own id", k.id),
                });
            }
            ids.push(k.id);
        }
        out
    }

    /// The TLS settings of outgoing calls, with the private CA (if any) read.
    pub fn tls(&self) -> Result<crate::tls::Tls, ConfigError> {
        crate::tls::Tls::load(&self.tls).map_err(|e| {
            let key = if matches!(e, crate::tls::TlsError::NoRoots) {
                "tls.platform_roots"
            } else {
                "tls.ca_file"
            };
            ConfigError::Setting {
                file: self.source.file.clone(),
                line: self
                    .source
                    .line_of(&key.split('.').map(str::to_owned).collect::<Vec<_>>()),
                key: key.to_owned(),
                message: format!("[{}] {e}", e.code()),
            }
        })
    }

    /// The deployment, with the RPC URL override applied.
    pub fn load_deployment(&self) -> Result<Deployment, ConfigError> {
        let mut d = Deployment::load(&self.deployment).map_err(|e| ConfigError::Deployment {
            path: self.deployment.clone(),
            message: e.to_string(),
        })?;
        if let Some(url) = &self.rpc_url {
            d.rpc_url = url.clone();
        }
        Ok(d)
    }

    /// The provider's Ethereum key.
    pub fn provider_signer(&self) -> Result<PrivateKeySigner, ConfigError> {
        let (what, text) = match (&self.provider.key_file, &self.provider.key_env) {
            (Some(file), _) => (
                file.display().to_string(),
                std::fs::read_to_string(file).map_err(|source| ConfigError::Unreadable {
                    path: file.clone(),
                    source,
                })?,
            ),
            (None, Some(var)) => (
                format!("${var}"),
                std::env::var(var).map_err(|_| ConfigError::Key {
                    what: format!("${var}"),
                    message: "the variable is not set".into(),
                })?,
            ),
            (None, None) => {
                return Err(ConfigError::Invalid {
                    key: "provider",
                    message: "set provider.key_file or provider.key_env".into(),
                });
            }
        };
        let bytes = crate::keys::decode_hex32(text.trim()).ok_or_else(|| ConfigError::Key {
            what: what.clone(),
            message: "expected a secp256k1 private key as 64 hex digits".into(),
        })?;
        PrivateKeySigner::from_slice(&bytes).map_err(|e| ConfigError::Key {
            what,
            message: e.to_string(),
        })
    }

    /// The receipt keys.
    pub fn server_keys(&self) -> Result<crate::keys::ServerKeys, ConfigError> {
        let current = &self.server_keys.current;
        let text =
            std::fs::read_to_string(&current.file).map_err(|source| ConfigError::Unreadable {
                path: current.file.clone(),
                source,
            })?;
        let bytes = crate::keys::decode_hex32(text.trim()).ok_or_else(|| ConfigError::Key {
            what: current.file.display().to_string(),
            message: "expected a receipt (EdDSA) secret as 64 hex digits".into(),
        })?;
        let mut accepted = Vec::new();
        for k in &self.server_keys.accepted {
            let bytes =
                crate::keys::decode_hex32(&k.public_key).ok_or_else(|| ConfigError::Key {
                    what: format!("server_keys.accepted id {}", k.id),
                    message: "expected 0x + 64 hex digits (a compressed BabyJubJub point)".into(),
                })?;
            let key = PublicKey::from_bytes(&bytes).map_err(|e| ConfigError::Key {
                what: format!("server_keys.accepted id {}", k.id),
                message: e.to_string(),
            })?;
            accepted.push((k.id, key));
        }
        Ok(crate::keys::ServerKeys::new(
            current.id,
            PrivateKey::from_bytes(bytes),
            accepted,
        ))
    }

    /// The admission settings as the service takes them: `[admission]`, with the roots
    /// poll of `[chain]` (the file keeps it with the chain polling, the service with the
    /// admission settings) and the least values of both.
    pub fn settings(&self) -> Settings {
        Settings {
            // Polling faster than every 10 ms would only load the RPC node.
            roots_poll: self.chain.roots_poll.max(Duration::from_millis(10)),
            // 0 would refund every ticket still being answered.
            orphan_refund_after: self
                .admission
                .orphan_refund_after
                .max(Duration::from_secs(1)),
            ..self.admission.clone()
        }
    }

    /// The duties' settings as the duties take them: `[chain]` with its intervals and
    /// batch raised to their least (an interval of 0 would spin; a batch holds at least
    /// one violation).
    pub fn duties_config(&self) -> DutiesConfig {
        let c = &self.chain;
        let ms = Duration::from_millis(1);
        DutiesConfig {
            slash_poll: c.slash_poll.max(ms),
            slash_backoff: c.slash_backoff.max(ms),
            violation_batch: c.violation_batch.max(1),
            watch_poll: c.watch_poll.max(ms),
            claim_poll: c.claim_poll.max(Duration::from_secs(1)),
            ..c.clone()
        }
    }
}

/// A commented example configuration (`zkcredits gateway init-config`): every section
/// and key. Optional settings and sections are commented out as `# key = value` (remove
/// the `# ` to use them; the tests do, and parse the result); `# or: key = value` marks an
/// alternative to the line above it.
pub const EXAMPLE: &str = r#"# zkcredits gateway configuration (docs/GATEWAY.md is the full reference).
# Relative paths are relative to this file. Check it with
#   zkcredits gateway check --config gateway.toml

# Where the gateway listens (put a TLS-terminating proxy in front of it).
listen = "127.0.0.1:8080"
# The pool's deployment file (written by a deploy or `zkcredits devnet`).
deployment = "deployment.json"
# Optional: read the chain through another JSON-RPC URL than the deployment's.
# rpc_url = "https://eth.example.net/rpc"
# The request verifying key (`zkcredits setup` writes it).
keys_dir = "keys"
# Spent tickets and issued receipts: an SQLite file, or PostgreSQL shared by replicas.
store = "sqlite:gateway.db"
# or: store = "postgres://gateway@127.0.0.1:5432/zkcredits?schema=gateway"
# Optional: keep the indexed note tree across restarts (default: memory only).
# indexer_state = "gateway-tree.bin"

[provider]
# The provider's Ethereum key (64 hex digits, mode 0600): signs close clearances,
# violations, slashes and claims. Exactly one of key_file and key_env.
key_file = "provider.key"
# or: key_env = "ZKCREDITS_PROVIDER_KEY"

[server_keys]
# The receipt-signing key (32 bytes hex) and the id credentials name it by.
current = { id = 1, file = "receipt-1.key" }
# After a rotation, the older keys whose receipts clients still hold:
# accepted = [{ id = 0, public_key = "0x0000000000000000000000000000000000000000000000000000000000000000" }]

[admission]
refund_granularity = 1          # refunds rounded down to a multiple of this
body_limit_bytes = 1048576      # largest request body
upstream_timeout_secs = 120     # longest wait for an upstream answer
verify_batch_max = 32           # proofs checked in one multi-pairing
verify_batch_wait_us = 0        # wait to fill a batch (0: take what is queued)
verify_threads = 0              # 0: one per two cores
realm = "zkcredits"             # the realm of WWW-Authenticate
orphan_refund_after_secs = 3600 # a ticket unanswered this long is refunded in full

[chain]
roots_poll_ms = 2000            # refresh of the accepted roots
duties = true                   # slash double spenders, log violations, watch closes
accept_server_key = true        # make the pool accept the current receipt key
slash_poll_ms = 2000
slash_backoff_ms = 5000
violation_batch = 64
violation_interval_secs = 10
watch = true                    # record closes' tickets, challenge stale closes, block slashed notes
watch_poll_ms = 2000
watch_confirmations = 0         # act on the newest block (every action is idempotent)
watch_rescan_blocks = 64        # read this many blocks again each round (reorgs)
claim_expired = true            # claim what expired notes leave, for the provider
claim_poll_secs = 600

[relay]
# Send users' cooperative closes from the provider's account, so that a user needs no
# funded account besides the deposit one and the close never comes from it.
enabled = true
fee = 0                         # credit units out of each relayed close's payout, for gas

[tls]
# https:// upstreams, the moderation service and the chain RPC are verified against the
# platform's roots. A private CA (PEM, one or more certificates) is trusted in addition:
# ca_file = "private-ca.pem"
# false: trust only ca_file.
platform_roots = true

# A flat price per request in front of any HTTP API (repeat for more routes).
[[flat]]
prefix = "/api"                 # requests under this path are paid and forwarded
base_url = "http://127.0.0.1:9000"
price = 10                      # credit units per request, at most C_max
# timeout_secs = 30             # default: admission.upstream_timeout_secs

# An OpenAI-compatible upstream (OpenAI, vLLM, Ollama, llama.cpp), served under /v1.
# [openai]
# base_url = "http://127.0.0.1:8000/v1"    # with its /v1, as OpenAI SDKs take it
# api_key = "sk-..."                       # if the upstream wants one; never logged
# timeout_ms = 60000                       # connect and answer (a stream: its headers)
# stream_idle_timeout_ms = 60000           # longest silence in a stream (default: timeout_ms)
# tokenizer = "cl100k_base"                # or "o200k_base" (GPT-4o family)
# endpoints = ["chat", "completions", "embeddings", "models"]
# chat_cap_field = "max_tokens"            # or "max_completion_tokens" (OpenAI reasoning models)
# models_price = 0                         # credit units for GET /v1/models
# Credit units per 1,000 tokens; only the models listed here are served.
# [openai.models."meta-llama/Llama-3.1-8B-Instruct"]
# input_per_1k = 100
# output_per_1k = 300

# An Ethereum JSON-RPC node, served under its prefix.
# [jsonrpc]
# url = "http://127.0.0.1:8545"            # may embed an API key; never logged
# prefix = "/rpc"
# timeout_ms = 30000
# default_price = 5                        # methods not listed (unset: refused)
# max_batch = 100                          # most calls in one batch
# [jsonrpc.prices]                         # credit units per call
# eth_blockNumber = 1
# eth_call = 10

# Policy: refuse requests that break the provider's terms, with a penalty.
# [policy]
# [[policy.blocklist]]                     # checked in order; the first match decides
# name = "no-private-keys"
# pattern = "(?i)private key"
# penalty = 100                            # credit units (clamped to P_max)
# [policy.moderation]                      # an OpenAI-compatible moderation API
# url = "https://api.openai.com/v1/moderations"
# api_key = "sk-..."
# model = "omni-moderation-latest"
# penalty = 100
# timeout_ms = 10000
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_and_resolves_paths() {
        let c = GatewayConfig::parse(EXAMPLE, Path::new("/etc/zk")).expect("example");
        assert_eq!(c.deployment, PathBuf::from("/etc/zk/deployment.json"));
        assert_eq!(c.store, "sqlite:///etc/zk/gateway.db");
        assert_eq!(c.flat.len(), 1);
        assert_eq!(c.admission.refund_granularity, Credits::new(1));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = EXAMPLE.replace("realm = ", "realmm = ");
        let e = GatewayConfig::parse(&text, Path::new(".")).expect_err("typo");
        assert_eq!(e.code(), "config_syntax");
        assert!(e.to_string().contains("realmm"), "{e}");
    }

    #[test]
    fn a_zero_granularity_and_two_key_sources_are_refused() {
        let text = EXAMPLE.replace("refund_granularity = 1", "refund_granularity = 0");
        let e = GatewayConfig::parse(&text, Path::new(".")).expect_err("zero");
        assert_eq!(e.code(), "config_invalid");
        let text = EXAMPLE.replace("# or: key_env", "key_env");
        let e = GatewayConfig::parse(&text, Path::new(".")).expect_err("two sources");
        assert!(e.to_string().contains("exactly one"), "{e}");
    }

    /// The keys of `[admission]` and `[chain]` that `init-config` printed when they were
    /// read into plain integers and converted by hand: the file format must not change.
    const SECTION_KEYS: [&str; 21] = [
        "admission.refund_granularity",
        "admission.body_limit_bytes",
        "admission.upstream_timeout_secs",
        "admission.verify_batch_max",
        "admission.verify_batch_wait_us",
        "admission.verify_threads",
        "admission.realm",
        "admission.orphan_refund_after_secs",
        "chain.roots_poll_ms",
        "chain.duties",
        "chain.accept_server_key",
        "chain.slash_poll_ms",
        "chain.slash_backoff_ms",
        "chain.violation_batch",
        "chain.violation_interval_secs",
        "chain.watch",
        "chain.watch_poll_ms",
        "chain.watch_confirmations",
        "chain.watch_rescan_blocks",
        "chain.claim_expired",
        "chain.claim_poll_secs",
    ];

    /// The dotted keys of `value`'s `[admission]` and `[chain]` tables, sorted.
    fn section_keys(value: &toml::Value) -> Vec<String> {
        let mut keys: Vec<String> = ["admission", "chain"]
            .into_iter()
            .flat_map(|section| {
                value
                    .get(section)
                    .and_then(toml::Value::as_table)
                    .into_iter()
                    .flat_map(move |t| t.keys().map(move |k| format!("{section}.{k}")))
            })
            .collect();
        keys.sort();
        keys
    }

    fn expected_keys() -> Vec<String> {
        let mut keys: Vec<String> = SECTION_KEYS.iter().map(|k| (*k).to_owned()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn init_config_shows_the_same_keys_and_they_are_the_ones_read_and_shown() {
        let printed: toml::Value = toml::from_str(EXAMPLE).expect("example");
        assert_eq!(section_keys(&printed), expected_keys());
        // What `check` shows (the parsed config written back) has the same keys, in
        // the same units: the example's values are the defaults.
        let c = GatewayConfig::parse(EXAMPLE, Path::new(".")).expect("example");
        let shown = toml::Value::try_from(&c).expect("serialises");
        assert_eq!(section_keys(&shown), expected_keys());
        for key in SECTION_KEYS {
            let (section, field) = key.split_once('.').expect("dotted");
            assert_eq!(shown[section][field], printed[section][field], "{key}");
        }
    }

    #[test]
    fn no_sections_means_the_defaults_of_the_types_the_code_uses() {
        let text = EXAMPLE
            .split("\n[admission]")
            .next()
            .expect("the top of the example")
            .to_owned()
            + "\n[[flat]]\nprefix = \"/api\"\nbase_url = \"http://127.0.0.1:9000\"\nprice = 10\n";
        let c = GatewayConfig::parse(&text, Path::new(".")).expect("no sections");
        assert_eq!(c.admission, Settings::default());
        assert_eq!(c.chain, DutiesConfig::default());
        assert_eq!(c.settings(), Settings::default());
        assert_eq!(c.duties_config(), DutiesConfig::default());
        // The example shows every default.
        let c = GatewayConfig::parse(EXAMPLE, Path::new(".")).expect("example");
        assert_eq!(c.admission, Settings::default());
        assert_eq!(c.chain, DutiesConfig::default());
    }

    /// `EXAMPLE` with `key = value` set in place of the key's line.
    fn with(text: &str, key: &str, value: &str) -> String {
        text.lines()
            .map(|line| {
                if line.starts_with(&format!("{key} = ")) {
                    format!("{key} = {value}")
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn every_duration_key_reads_into_its_exact_duration() {
        let mut text = EXAMPLE.to_owned();
        for (key, value) in [
            ("upstream_timeout_secs", "7"),
            ("verify_batch_wait_us", "1500"),
            ("orphan_refund_after_secs", "90"),
            ("roots_poll_ms", "250"),
            ("slash_poll_ms", "1001"),
            ("slash_backoff_ms", "3"),
            ("violation_interval_secs", "11"),
            ("watch_poll_ms", "999"),
            ("claim_poll_secs", "61"),
        ] {
            let next = with(&text, key, value);
            assert_ne!(next, text, "{key} is not in the example");
            text = next;
        }
        let c = GatewayConfig::parse(&text, Path::new(".")).expect("durations");
        let a = &c.admission;
        assert_eq!(a.upstream_timeout, Duration::from_secs(7));
        assert_eq!(a.verify_batch_wait, Duration::from_micros(1500));
        assert_eq!(a.orphan_refund_after, Duration::from_secs(90));
        let d = &c.chain;
        assert_eq!(d.roots_poll, Duration::from_millis(250));
        assert_eq!(d.slash_poll, Duration::from_millis(1001));
        assert_eq!(d.slash_backoff, Duration::from_millis(3));
        assert_eq!(d.violation_interval, Duration::from_secs(11));
        assert_eq!(d.watch_poll, Duration::from_millis(999));
        assert_eq!(d.claim_poll, Duration::from_secs(61));
        assert_eq!(c.settings().roots_poll, Duration::from_millis(250));
        // Written back, each is the integer it was read from.
        let shown = toml::Value::try_from(&c).expect("serialises");
        assert_eq!(
            shown["admission"]["verify_batch_wait_us"].as_integer(),
            Some(1500)
        );
        assert_eq!(shown["chain"]["slash_poll_ms"].as_integer(), Some(1001));
        assert_eq!(shown["chain"]["claim_poll_secs"].as_integer(), Some(61));
        // Still integers only: a duration in another form is refused.
        let text = with(EXAMPLE, "roots_poll_ms", "\"2s\"");
        let e = GatewayConfig::parse(&text, Path::new(".")).expect_err("a string");
        assert_eq!(e.code(), "config_syntax");
        let text = with(EXAMPLE, "upstream_timeout_secs", "-1");
        let e = GatewayConfig::parse(&text, Path::new(".")).expect_err("negative");
        assert_eq!(e.code(), "config_syntax");
    }

    #[test]
    fn unknown_chain_keys_and_the_code_only_settings_are_refused() {
        for (from, to) in [
            ("watch_poll_ms = ", "watch_pol_ms = "),
            // The field's name without its unit is not a key.
            ("roots_poll_ms = ", "roots_poll = "),
            ("upstream_timeout_secs = ", "upstream_timeout = "),
            // Settings the file has no key for stay the code's.
            ("watch_rescan_blocks = ", "watch_page_blocks = "),
            ("claim_poll_secs = 600", "lead_poll = 600"),
        ] {
            let text = EXAMPLE.replace(from, to);
            let e = GatewayConfig::parse(&text, Path::new(".")).expect_err(to);
            assert_eq!(e.code(), "config_syntax", "{to}");
            let key = to.trim_end_matches(|c: char| c == ' ' || c == '=' || c.is_ascii_digit());
            assert!(
                e.to_string().contains(&format!("unknown field `{key}`")),
                "{e}"
            );
        }
    }

    #[test]
    fn zeros_keep_their_meaning() {
        // Refused, with the key in the file's name.
        let text = with(EXAMPLE, "upstream_timeout_secs", "0");
        let e = GatewayConfig::parse(&text, Path::new(".")).expect_err("zero");
        assert!(
            matches!(&e, ConfigError::Invalid { key: "admission.upstream_timeout_secs", message } if message == "must be at least 1"),
            "{e}"
        );
        // Raised to the least value where the service and the duties take them.
        let mut text = EXAMPLE.to_owned();
        for key in [
            "orphan_refund_after_secs",
            "verify_batch_wait_us",
            "roots_poll_ms",
            "slash_poll_ms",
            "slash_backoff_ms",
            "violation_batch",
            "violation_interval_secs",
            "watch_poll_ms",
            "claim_poll_secs",
        ] {
            text = with(&text, key, "0");
        }
        let c = GatewayConfig::parse(&text, Path::new(".")).expect("zeros");
        let s = c.settings();
        assert_eq!(s.orphan_refund_after, Duration::from_secs(1));
        assert_eq!(s.verify_batch_wait, Duration::ZERO);
        assert_eq!(s.roots_poll, Duration::from_millis(10));
        let d = c.duties_config();
        assert_eq!(d.slash_poll, Duration::from_millis(1));
        assert_eq!(d.slash_backoff, Duration::from_millis(1));
        assert_eq!(d.violation_batch, 1);
        assert_eq!(d.violation_interval, Duration::ZERO);
        assert_eq!(d.watch_poll, Duration::from_millis(1));
        assert_eq!(d.claim_poll, Duration::from_secs(1));
    }
}
