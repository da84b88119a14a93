//! `zkcredits gateway check`: everything the gateway would refuse at startup, found
//! without starting it, and the effective settings (defaults filled in, secrets hidden).
//!
//! The checks are the startup's own (the same parsers, the adapters built against the
//! deployment's `C_max`, the same key readers), run one after the other so that every
//! problem is reported at once, each with the file, the line and the key at fault. The
//! chain is not contacted: `C_max` comes from the deployment file. The store is not
//! opened: only its URL is checked.

use std::fmt;
use std::path::Path;

use serde_json::Value;

use crate::config::{ConfigError, ConfigSource, GatewayConfig};

/// One problem of a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The stable code (`config_syntax`, `config_invalid`, `config_key`...).
    pub code: &'static str,
    /// The config file.
    pub file: String,
    /// The 1-based line at fault, when known.
    pub line: Option<usize>,
    /// The key at fault, dotted (empty when the file as a whole is at fault).
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": `{}`", self.key)?;
        }
        write!(f, ": {} [{}]", self.message, self.code)
    }
}

/// What [`check_file`] found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every problem, in the order of the checks.
    pub findings: Vec<Finding>,
    /// The effective settings as `(dotted key, value)`, when the file parsed: defaults
    /// filled in, relative paths resolved, secrets replaced by `(set, not shown)`.
    pub effective: Vec<(String, String)>,
}

impl Report {
    /// True when the gateway would start with this configuration (as far as can be
    /// known without the chain and the store).
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// The effective settings, one `key = value` per line.
    pub fn effective_text(&self) -> String {
        self.effective
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect()
    }
}

/// Checks the configuration file at `path`.
pub fn check_file(path: &Path) -> Report {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => check_text(&text, path.parent().unwrap_or(Path::new(".")), &file),
        Err(e) => Report {
            findings: vec![Finding {
                code: "config_unreadable",
                file,
                line: None,
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }],
            effective: Vec::new(),
        },
    }
}

/// Checks config `text` named `file`, whose relative paths are relative to `base`.
pub fn check_text(text: &str, base: &Path, file: &str) -> Report {
    let source = ConfigSource {
        file: file.to_owned(),
        text: text.to_owned(),
    };
    let mut report = Report::default();
    let mut config = match GatewayConfig::parse_unchecked(text, base) {
        Ok(config) => config,
        Err(_) => {
            report.findings = shape_findings(&source);
            return report;
        }
    };
    config.source = source;
    let source = &config.source;
    let mut files = vec![
        (config.deployment.display().to_string(), "deployment"),
        (
            config.server_keys.current.file.display().to_string(),
            "server_keys.current.file",
        ),
    ];
    if let Some(p) = &config.provider.key_file {
        files.push((p.display().to_string(), "provider.key_file"));
    }
    if let Some(p) = &config.tls.ca_file {
        files.push((p.display().to_string(), "tls.ca_file"));
    }
    let mut push = |e: ConfigError| report.findings.push(finding(source, &files, &e));
    for e in config.problems() {
        push(e);
    }
    let tls = match config.tls() {
        Ok(tls) => tls,
        Err(e) => {
            push(e);
            crate::tls::Tls::default()
        }
    };
    let deployment = match config.load_deployment() {
        Ok(d) => Some(d),
        Err(ConfigError::Deployment { path, message }) => {
            push(ConfigError::Deployment {
                path,
                message: format!(
                    "{message} (until it can be read, prices are not checked against C_max)"
                ),
            });
            None
        }
        Err(e) => {
            push(e);
            None
        }
    };
    // Without the deployment the prices cannot be checked against C_max, but the
    // adapters' sections still are.
    let c_max = deployment
        .as_ref()
        .map_or(u64::MAX, |d| d.constants.c_max.get());
    for e in crate::routes::build_all(&config, c_max, &tls).1 {
        push(e);
    }
    if let Err(e) = crate::routes::build_policy(&config, &tls) {
        push(e);
    }
    // Exactly one key source is a problem reported above; the key itself is read here.
    if config.provider.key_file.is_some() != config.provider.key_env.is_some()
        && let Err(e) = config.provider_signer()
    {
        push(e);
    }
    if let Err(e) = config.server_keys() {
        push(e);
    }
    if let Err(e) = zkcredits_circuits::keys::load_verifying_key(&config.keys_dir) {
        push(ConfigError::Invalid {
            key: "keys_dir",
            message: format!(
                "no usable request verifying key in {}: {e}; run `zkcredits setup` or fix \
                 keys_dir",
                config.keys_dir.display()
            ),
        });
    }
    if let Err(e) = crate::store::check_url(&config.store) {
        push(ConfigError::Invalid {
            key: "store",
            message: e.to_string(),
        });
    }
    report.effective = effective(&config, deployment.as_ref());
    report
}

/// A [`ConfigError`] as a finding: the line of its key when the error does not carry
/// one. `files` names the key behind each file path of the config.
fn finding(source: &ConfigSource, files: &[(String, &'static str)], e: &ConfigError) -> Finding {
    let file_key = |path: &str| {
        files
            .iter()
            .find(|(p, _)| p == path)
            .map_or("", |(_, key)| *key)
    };
    let key: String = match e {
        ConfigError::Setting { key, .. } => key.clone(),
        ConfigError::Invalid { key, .. } => (*key).to_owned(),
        ConfigError::NoRoute => "flat".into(),
        ConfigError::Deployment { .. } => "deployment".into(),
        ConfigError::Key { what, .. } if what.starts_with("server_keys.accepted") => {
            "server_keys.accepted".into()
        }
        ConfigError::Key { what, .. } if what.starts_with('$') => "provider.key_env".into(),
        ConfigError::Key { what, .. } => file_key(what).into(),
        ConfigError::Unreadable { path, .. } => file_key(&path.display().to_string()).into(),
        ConfigError::Syntax { .. } => String::new(),
    };
    let line = match e {
        ConfigError::Setting { line, .. } => *line,
        _ if key.is_empty() => None,
        _ => line_of_dotted(source, &key),
    };
    let message = match e {
        ConfigError::Setting { message, .. } | ConfigError::Invalid { message, .. } => {
            message.clone()
        }
        other => other.to_string(),
    };
    Finding {
        code: e.code(),
        file: source.file.clone(),
        line,
        key,
        message,
    }
}

fn line_of_dotted(source: &ConfigSource, key: &str) -> Option<usize> {
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    source.line_of(&path)
}

/// The findings of a file that does not parse: its TOML syntax, or the shape of each
/// section checked on its own (so that a mistake in one section does not hide those in
/// the others).
fn shape_findings(source: &ConfigSource) -> Vec<Finding> {
    let at = |line: Option<usize>, key: &str, code: &'static str, message: String| Finding {
        code,
        file: source.file.clone(),
        line,
        key: key.to_owned(),
        message,
    };
    let table: toml::Table = match toml::from_str(&source.text) {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map(|s| source.line_at(s.start));
            return vec![at(line, "", "config_syntax", e.message().trim().to_owned())];
        }
    };
    let mut out = Vec::new();
    for (name, value) in &table {
        let result = match name.as_str() {
            "listen" => shape::<std::net::SocketAddr>(value),
            "deployment" | "keys_dir" | "indexer_state" => shape::<std::path::PathBuf>(value),
            "rpc_url" | "store" => shape::<String>(value),
            "provider" => shape::<crate::config::ProviderKeyConfig>(value),
            "server_keys" => shape::<crate::config::ServerKeysConfig>(value),
            "admission" => shape::<crate::service::Settings>(value),
            "chain" => shape::<crate::duties::DutiesConfig>(value),
            "relay" => shape::<crate::config::RelayConfig>(value),
            "flat" => shape::<Vec<crate::upstream::flat::FlatConfig>>(value),
            "openai" => shape::<crate::upstream::openai::OpenAiConfig>(value),
            "jsonrpc" => shape::<crate::upstream::jsonrpc::JsonRpcConfig>(value),
            "policy" => shape::<crate::policy::config::PolicyConfig>(value),
            "tls" => shape::<crate::tls::TlsConfig>(value),
            _ => Err(format!("unknown key `{name}`")),
        };
        if let Err(message) = result {
            let key = named_key(&message)
                .and_then(|field| source.find_key(name, &field))
                .unwrap_or_else(|| vec![name.clone()]);
            out.push(at(
                source.line_of(&key),
                &key.join("."),
                "config_syntax",
                message,
            ));
        }
    }
    // The whole file as the gateway reads it: its error carries the exact position, in
    // case the sections on their own missed it.
    if let Err(e) = toml::from_str::<GatewayConfig>(&source.text) {
        let line = e.span().map(|s| source.line_at(s.start));
        if line.is_none() || !out.iter().any(|f| f.line == line) {
            let key = named_key(e.message()).unwrap_or_default();
            out.push(at(
                line,
                &key,
                "config_syntax",
                e.message().trim().to_owned(),
            ));
        }
    }
    for required in [
        "listen",
        "deployment",
        "keys_dir",
        "store",
        "provider",
        "server_keys",
    ] {
        if !table.contains_key(required) {
            let message = format!("missing key `{required}`");
            if !out
                .iter()
                .any(|f| f.message.contains(&format!("`{required}`")))
            {
                out.push(at(None, required, "config_syntax", message));
            }
        }
    }
    out
}

fn shape<T: serde::de::DeserializeOwned>(value: &toml::Value) -> Result<(), String> {
    T::deserialize(value.clone())
        .map(drop)
        .map_err(|e: toml::de::Error| e.message().trim().to_owned())
}

/// The key a serde message names between backquotes (`unknown field `x``).
fn named_key(message: &str) -> Option<String> {
    message
        .split('`')
        .nth(1)
        .filter(|k| !k.is_empty() && !k.contains(' '))
        .map(str::to_owned)
}

/// Keys whose values are secrets: shown as `(set, not shown)`.
const SECRET_KEYS: [&str; 2] = ["openai.api_key", "policy.moderation.api_key"];

/// URLs whose path may carry an API key (hosted RPC nodes put it there).
const KEYED_URLS: [&str; 3] = ["jsonrpc.url", "rpc_url", "deployment.rpc_url"];

/// The effective settings: every key after defaults, secrets hidden, then what the
/// deployment file says.
fn effective(
    config: &GatewayConfig,
    deployment: Option<&zkcredits_chain::Deployment>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    flatten("", &effective_value(config), &mut out);
    if let Some(d) = deployment {
        let mut derived = |key: &str, value: Value| {
            let shown = show(key, &value);
            out.push((key.to_owned(), shown));
        };
        derived("deployment.rpc_url", Value::String(d.rpc_url.clone()));
        derived("deployment.chain_id", d.chain_id.into());
        derived("deployment.pool", Value::String(d.pool.to_string()));
        derived("deployment.c_max", d.constants.c_max.get().into());
        derived("deployment.p_max", d.constants.p_max.get().into());
    }
    out
}

/// The configuration as a JSON tree, the adapters' sections parsed (so that their
/// defaults show). Secrets are still in it: only [`effective`] may show it.
pub(crate) fn effective_value(config: &GatewayConfig) -> Value {
    let mut root = serde_json::to_value(config).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut root {
        let parsed = [
            (
                "openai",
                crate::routes::openai_config(config)
                    .ok()
                    .flatten()
                    .and_then(|c| serde_json::to_value(c).ok()),
            ),
            (
                "jsonrpc",
                crate::routes::jsonrpc_config(config)
                    .ok()
                    .flatten()
                    .and_then(|c| serde_json::to_value(c).ok()),
            ),
            (
                "policy",
                crate::routes::policy_config(config)
                    .ok()
                    .flatten()
                    .and_then(|c| serde_json::to_value(c).ok()),
            ),
        ];
        for (name, value) in parsed {
            if let Some(value) = value {
                map.insert(name.to_owned(), value);
            }
        }
    }
    root
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    let child = |key: &str| {
        let bare = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let key = if bare {
            key.to_owned()
        } else {
            format!("{key:?}")
        };
        if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&child(k), v, out);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        leaf => out.push((prefix.to_owned(), show(prefix, leaf))),
    }
}

fn show(key: &str, value: &Value) -> String {
    match value {
        Value::Null => "(unset)".to_owned(),
        _ if SECRET_KEYS.contains(&key) => "(set, not shown)".to_owned(),
        Value::String(url) if KEYED_URLS.contains(&key) => format!("{:?}", redact_url(url, true)),
        Value::String(url) if key == "store" || key.ends_with("url") => {
            format!("{:?}", redact_url(url, false))
        }
        other => other.to_string(),
    }
}

/// `url` without its user info and query (and, for `keyed`, its path), which may carry
/// credentials; unchanged when it has none of them.
fn redact_url(url: &str, keyed: bool) -> String {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return "(not a URL, not shown)".to_owned();
    };
    let userinfo = !parsed.username().is_empty() || parsed.password().is_some();
    let path = keyed && !matches!(parsed.path(), "" | "/");
    if !userinfo && parsed.query().is_none() && !path {
        return url.to_owned();
    }
    let mut text = format!("{}://", parsed.scheme());
    if userinfo {
        text.push_str("(credentials not shown)@");
    }
    text.push_str(parsed.host_str().unwrap_or_default());
    if let Some(port) = parsed.port() {
        text.push_str(&format!(":{port}"));
    }
    text.push_str(if path {
        "/(path not shown)"
    } else {
        parsed.path()
    });
    if parsed.query().is_some() {
        text.push_str("?(query not shown)");
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::EXAMPLE;
    use crate::routes::{build_all, build_policy};
    use crate::tls::Tls;

    /// The `C_max` the examples of the docs and of init-config are checked against (the
    /// default pool's).
    const C_MAX: u64 = 1000;

    /// `text` with every optional setting switched on: `# key = value` and `# [section]`
    /// lines lose their `# ` (alternatives, `# or: key = value`, stay commented).
    fn uncomment(text: &str) -> String {
        let optional = regex::Regex::new(r#"^# ?(\[|[A-Za-z_][A-Za-z0-9_.\-]* = )"#).unwrap();
        text.lines()
            .map(|line| {
                if optional.is_match(line) {
                    line.trim_start_matches('#').trim_start().to_owned()
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Parses `text` as the gateway does at startup, short of reading files: the config,
    /// every adapter against [`C_MAX`], the policy.
    fn accepted(text: &str, what: &str) -> GatewayConfig {
        let config = GatewayConfig::parse(text, Path::new("/etc/zkcredits"))
            .unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
        let (_, errors) = build_all(&config, C_MAX, &Tls::default());
        assert!(errors.is_empty(), "{what}: {errors:?}\n{text}");
        if let Err(e) = build_policy(&config, &Tls::default()) {
            panic!("{what}: {e}\n{text}");
        }
        config
    }

    /// The keys of `json` (the parsed config, defaults filled in) missing from `toml`
    /// (the text): a key the example does not show.
    fn missing(json: &Value, toml: &toml::Value, path: &str, out: &mut Vec<String>) {
        match (json, toml) {
            (Value::Object(map), toml::Value::Table(table)) => {
                for (k, v) in map {
                    match table.get(k) {
                        Some(t) => missing(v, t, &format!("{path}.{k}"), out),
                        None => out.push(format!("{path}.{k}")),
                    }
                }
            }
            (Value::Array(items), toml::Value::Array(tables)) => {
                for (i, (v, t)) in items.iter().zip(tables).enumerate() {
                    missing(v, t, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }

    /// `text` with each `# or: key = value` alternative in place of the line above it.
    fn alternatives(text: &str) -> String {
        let mut out: Vec<String> = Vec::new();
        for line in text.lines() {
            match line.strip_prefix("# or: ") {
                Some(alternative) => {
                    if let Some(last) = out.last_mut() {
                        *last = format!("# {last}");
                    }
                    out.push(alternative.to_owned());
                }
                None => out.push(line.to_owned()),
            }
        }
        out.join("\n")
    }

    #[test]
    fn init_config_parses_and_shows_every_section_and_key() {
        let plain = accepted(EXAMPLE, "init-config as written");
        assert_eq!(plain.flat.len(), 1);
        let full_text = uncomment(EXAMPLE);
        let full = accepted(&full_text, "init-config with every optional setting on");
        for section in [&full.openai, &full.jsonrpc, &full.policy] {
            assert!(section.is_some(), "a section stayed commented out");
        }
        assert!(full.tls.ca_file.is_some() && full.rpc_url.is_some());
        let alt_text = alternatives(&full_text);
        let alt = accepted(&alt_text, "init-config with the alternatives");
        assert!(alt.provider.key_env.is_some() && alt.store.starts_with("postgres://"));
        // A key is shown if either variant sets it.
        let shown = |config: &GatewayConfig, text: &str| {
            let text: toml::Value = toml::from_str(text).unwrap();
            let mut out = Vec::new();
            missing(&effective_value(config), &text, "", &mut out);
            out
        };
        let alt_missing = shown(&alt, &alt_text);
        let out: Vec<String> = shown(&full, &full_text)
            .into_iter()
            .filter(|k| alt_missing.contains(k))
            .collect();
        assert!(out.is_empty(), "init-config does not show {out:?}");
    }

    #[test]
    fn every_toml_example_of_the_docs_is_accepted() {
        let docs = concat!(
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../docs/GATEWAY.md"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../docs/METERING.md"
            )),
        );
        // A fragment (a section or two) is checked inside the smallest whole config.
        const BASE: &str = "listen = \"127.0.0.1:8080\"\ndeployment = \"deployment.json\"\n\
            keys_dir = \"keys\"\nstore = \"sqlite:gateway.db\"\n\
            provider = { key_file = \"provider.key\" }\n\
            server_keys = { current = { id = 1, file = \"receipt-1.key\" } }\n";
        let mut blocks = 0;
        let mut rest = docs;
        while let Some(start) = rest.find("```toml\n") {
            let body = &rest[start + 8..];
            let end = body.find("```").expect("a closed ```toml block");
            let block = &body[..end];
            rest = &body[end + 3..];
            blocks += 1;
            let whole = block.lines().any(|l| l.starts_with("listen ="));
            let text = if whole {
                block.to_owned()
            } else {
                format!("{BASE}{block}")
            };
            let what = format!("toml block {blocks} of docs/GATEWAY.md then METERING.md");
            for text in [text.clone(), uncomment(&text)] {
                let mut config = GatewayConfig::parse(&text, Path::new("/etc/zkcredits"))
                    .unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
                // A price table shown on its own is checked under a stand-in upstream.
                if let Some(toml::Value::Table(openai)) = config.openai.as_mut() {
                    openai
                        .entry("base_url")
                        .or_insert_with(|| "http://127.0.0.1:8000/v1".into());
                }
                let has_route =
                    !config.flat.is_empty() || config.openai.is_some() || config.jsonrpc.is_some();
                let (_, errors) = build_all(&config, C_MAX, &Tls::default());
                // A fragment without a route: everything but the missing route.
                let errors: Vec<_> = errors
                    .into_iter()
                    .filter(|e| has_route || !matches!(e, ConfigError::NoRoute))
                    .collect();
                assert!(errors.is_empty(), "{what}: {errors:?}\n{text}");
                if let Err(e) = build_policy(&config, &Tls::default()) {
                    panic!("{what}: {e}\n{text}");
                }
            }
        }
        assert!(blocks >= 10, "only {blocks} toml blocks in the docs");
    }

    /// A config with a mistake in each of several places.
    const BROKEN: &str = r#"listen = "127.0.0.1:8080"
deployment = "no-such-deployment.json"
keys_dir = "no-such-keys"
store = "mysql://db/zk"

[provider]
key_file = "no-such-provider.key"

[server_keys]
current = { id = 1, file = "no-such-receipt.key" }

[admission]
refund_granularity = 0

[tls]
ca_file = "no-such-ca.pem"

[[flat]]
prefix = "api"
base_url = "http://127.0.0.1:9000"
price = 1

[jsonrpc]
url = "http://127.0.0.1:8545"
timeout_ms = 0

[jsonrpc.prices]
eth_call = 5

[policy]
[[policy.blocklist]]
name = "bad"
pattern = "(unclosed"
penalty = 1
"#;

    fn line(needle: &str, text: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .expect("in the text")
            + 1
    }

    #[test]
    fn check_names_the_line_and_key_of_every_error() {
        let dir = tempfile::tempdir().unwrap();
        let report = check_text(BROKEN, dir.path(), "gw.toml");
        assert!(!report.ok());
        let text: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
        let expect = [
            ("admission.refund_granularity", "refund_granularity = 0"),
            ("tls.ca_file", "ca_file ="),
            ("deployment", "deployment ="),
            ("flat.0.prefix", "prefix = \"api\""),
            ("jsonrpc.timeout_ms", "timeout_ms = 0"),
            ("policy.blocklist.0.pattern", "pattern ="),
            ("provider.key_file", "key_file ="),
            ("server_keys.current.file", "current ="),
            ("keys_dir", "keys_dir ="),
            ("store", "store ="),
        ];
        for (key, needle) in expect {
            let want = format!("gw.toml:{}: `{key}`", line(needle, BROKEN));
            assert!(
                text.iter().any(|t| t.starts_with(&want)),
                "no finding {want}: {text:#?}"
            );
        }
        // Parsed: the effective settings are shown, with defaults filled in.
        let shown = report.effective_text();
        assert!(
            shown.contains("admission.body_limit_bytes = 1048576"),
            "{shown}"
        );
        assert!(shown.contains("jsonrpc.max_batch = 100"), "{shown}");
    }

    #[test]
    fn check_reports_a_mistake_in_each_section_when_the_shape_is_wrong() {
        let text = EXAMPLE
            .replace("realm = ", "realmm = ")
            .replace("watch_poll_ms = ", "watch_pol_ms = ")
            .replace("price = 10 ", "price = \"ten\" ");
        let report = check_text(&text, Path::new("."), "gw.toml");
        let shown: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
        for (key, needle) in [
            ("admission.realmm", "realmm ="),
            ("chain.watch_pol_ms", "watch_pol_ms ="),
        ] {
            let want = format!("gw.toml:{}: `{key}`", line(needle, &text));
            assert!(
                shown.iter().any(|t| t.starts_with(&want)),
                "no {want}: {shown:#?}"
            );
        }
        assert!(
            shown
                .iter()
                .any(|t| t.starts_with("gw.toml:") && t.contains("`flat")),
            "{shown:#?}"
        );
        assert!(report.effective.is_empty());
        // Every section of the file is one `check` knows: none is called unknown when
        // another section's mistake sends it through the shape checks.
        assert!(
            !shown.iter().any(|t| t.contains("unknown key")),
            "{shown:#?}"
        );
        // A misspelt key deep in an adapter's section is named with its whole path.
        let text = format!(
            "{EXAMPLE}\n[openai]\nbase_url = \"http://127.0.0.1:8000/v1\"\n\
             [openai.models.\"m-1\"]\ninput_per_1k = 1\noutput_per_1kk = 2\n"
        );
        let report = check_text(&text, Path::new("."), "gw.toml");
        let want = format!(
            "gw.toml:{}: `openai.models.m-1.output_per_1kk`",
            text.lines().count()
        );
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.to_string().starts_with(&want)),
            "no {want}: {:#?}",
            report.findings
        );
        let report = check_text("listen = [", Path::new("."), "gw.toml");
        assert_eq!(report.findings.len(), 1);
        assert!(
            report.findings[0].to_string().starts_with("gw.toml:1: "),
            "{:?}",
            report.findings
        );
        assert_eq!(report.findings[0].code, "config_syntax");
    }

    #[test]
    fn secrets_are_not_shown() {
        let text = format!(
            "{EXAMPLE}\n[openai]\nbase_url = \"https://api.openai.com/v1\"\napi_key = \"sk-SECRET1\"\n\
             [openai.models.\"gpt-4o-mini\"]\ninput_per_1k = 1\noutput_per_1k = 2\n\
             [jsonrpc]\nurl = \"https://mainnet.infura.io/v3/SECRET2\"\nprices = {{ eth_call = 1 }}\n"
        )
        .replace("store = \"sqlite:gateway.db\"", "store = \"postgres://gw:SECRET3@db/zk\"");
        let report = check_text(&text, Path::new("."), "gw.toml");
        let shown = report.effective_text();
        assert!(
            shown.contains("openai.api_key = (set, not shown)"),
            "{shown}"
        );
        assert!(
            shown.contains("openai.models.gpt-4o-mini.input_per_1k = 1"),
            "{shown}"
        );
        assert!(!shown.contains("SECRET"), "{shown}");
        let errors: String = report.findings.iter().map(ToString::to_string).collect();
        assert!(!errors.contains("SECRET"), "{errors}");
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact_url("https://mainnet.infura.io/v3/SECRET", true),
            "https://mainnet.infura.io/(path not shown)"
        );
        assert_eq!(
            redact_url("postgres://gw:SECRET@db:5432/zk?schema=g", false),
            "postgres://(credentials not shown)@db:5432/zk?(query not shown)"
        );
        assert_eq!(
            redact_url("https://api.openai.com/v1", false),
            "https://api.openai.com/v1"
        );
    }
}
