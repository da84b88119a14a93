//! The policy section of the gateway's configuration and what it builds: no policy
//! ([`AllowAll`]), a blocklist, a moderation service, or both (blocklist first: it is
//! local and free, so a request it refuses never reaches the moderation service).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::blocklist::{BlockRule, BlocklistPolicy};
use super::moderation::{ModerationConfig, ModerationPolicy};
use super::{Policy, PolicyError, Verdict};
use crate::tls::Tls;
use crate::upstream::PaidRequest;
use crate::upstream::setting_error::SettingError;

/// `[policy]` in the gateway's TOML. Empty (the default) means no policy.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Blocklist rules, checked in order.
    #[serde(default)]
    pub blocklist: Vec<BlockRule>,
    /// Optional external moderation service.
    #[serde(default)]
    pub moderation: Option<ModerationConfig>,
}

impl PolicyConfig {
    /// Builds the configured policy (a moderation service over `https://` trusts the
    /// platform's roots).
    pub fn build(&self) -> Result<Arc<dyn Policy>, SettingError> {
        self.build_with_tls(&Tls::default())
    }

    /// Builds the configured policy, trusting what `tls` says for the moderation service.
    pub fn build_with_tls(&self, tls: &Tls) -> Result<Arc<dyn Policy>, SettingError> {
        let blocklist = if self.blocklist.is_empty() {
            None
        } else {
            Some(BlocklistPolicy::new(self.blocklist.clone())?)
        };
        let moderation = self
            .moderation
            .clone()
            .map(|m| ModerationPolicy::with_tls(m, tls))
            .transpose()?;
        Ok(match (blocklist, moderation) {
            (None, None) => Arc::new(AllowAll),
            (Some(b), None) => Arc::new(b),
            (None, Some(m)) => Arc::new(m),
            (Some(b), Some(m)) => Arc::new(Both(b, m)),
        })
    }
}

/// No policy: every request is forwarded.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

#[async_trait]
impl Policy for AllowAll {
    async fn check(&self, _request: &PaidRequest) -> Result<Verdict, PolicyError> {
        Ok(Verdict::Allow)
    }
}

/// The blocklist, then (if it allowed the request) the moderation service.
#[derive(Debug)]
struct Both(BlocklistPolicy, ModerationPolicy);

#[async_trait]
impl Policy for Both {
    async fn check(&self, request: &PaidRequest) -> Result<Verdict, PolicyError> {
        match self.0.check(request).await? {
            Verdict::Allow => self.1.check(request).await,
            violation => Ok(violation),
        }
    }
}
