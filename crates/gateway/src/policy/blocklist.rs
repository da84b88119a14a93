//! A blocklist policy: regular expressions over the request's text, each with a
//! penalty. The first rule (in configuration order) that matches decides.
//!
//! The text checked is the body's decoded JSON strings (so an escaped `\u0041` or a
//! word split by `\n` in the JSON source cannot slip past a pattern), joined by
//! newlines; a body that is not JSON is checked as (lossy) UTF-8 text. The `regex`
//! crate runs in time linear in the text, so a pattern cannot be turned into a denial of
//! service by a crafted request.

use async_trait::async_trait;
use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Policy, PolicyError, Verdict};
use crate::upstream::PaidRequest;
use crate::upstream::setting_error::SettingError;
use zkcredits_protocol::credits::Credits;

/// One rule of the blocklist (`[[policy.blocklist]]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRule {
    /// Name reported to the client and logged (never the matched text).
    pub name: String,
    /// A `regex` crate pattern; use `(?i)` for case-insensitive matching.
    pub pattern: String,
    /// Penalty in credit units (the gateway clamps it to `P_max`).
    pub penalty: Credits,
}

/// The compiled blocklist.
#[derive(Debug)]
pub struct BlocklistPolicy {
    rules: Vec<BlockRule>,
    set: RegexSet,
}

impl BlocklistPolicy {
    /// Compiles the rules; a bad pattern or a duplicate name is a configuration error.
    pub fn new(rules: Vec<BlockRule>) -> Result<Self, SettingError> {
        for (i, rule) in rules.iter().enumerate() {
            let index = i.to_string();
            let section = ["policy", "blocklist", index.as_str()];
            if rule.name.trim().is_empty() {
                return Err(SettingError::at(&section, "every rule needs a name"));
            }
            if rules[..i].iter().any(|r| r.name == rule.name) {
                return Err(SettingError::at(
                    &section,
                    format!("rule name {:?} is used twice", rule.name),
                ));
            }
            Regex::new(&rule.pattern).map_err(|e| {
                SettingError::at(
                    &["policy", "blocklist", index.as_str(), "pattern"],
                    format!("pattern of {:?}: {e}", rule.name),
                )
            })?;
        }
        let set = RegexSet::new(rules.iter().map(|r| &r.pattern))
            .map_err(|e| SettingError::new("policy.blocklist", e.to_string()))?;
        Ok(Self { rules, set })
    }

    /// The first rule matching `text`.
    fn first_match(&self, text: &str) -> Option<&BlockRule> {
        self.set.matches(text).iter().next().map(|i| &self.rules[i])
    }
}

/// SHA-256 of the request body: the evidence hash logged on chain for a violation.
pub fn evidence_hash(request: &PaidRequest) -> [u8; 32] {
    Sha256::digest(&request.body).into()
}

/// The text a policy looks at: every string in the JSON body (keys excluded), one per
/// line; or the body itself when it is not JSON.
pub fn request_text(request: &PaidRequest) -> String {
    fn walk(value: &Value, out: &mut String) {
        match value {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(value) => {
            let mut out = String::new();
            walk(&value, &mut out);
            out
        }
        Err(_) => String::from_utf8_lossy(&request.body).into_owned(),
    }
}

#[async_trait]
impl Policy for BlocklistPolicy {
    async fn check(&self, request: &PaidRequest) -> Result<Verdict, PolicyError> {
        let text = request_text(request);
        Ok(match self.first_match(&text) {
            None => Verdict::Allow,
            Some(rule) => Verdict::Violation {
                penalty: rule.penalty,
                rule: rule.name.clone(),
                evidence_hash: evidence_hash(request),
            },
        })
    }
}
