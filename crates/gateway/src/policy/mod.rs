//! The provider's policy hook: decides, before a request is forwarded, whether it
//! violates the provider's terms. A violation is answered with 403 `policy_violation`,
//! charges `C_max`, puts a penalty `p <= P_max` in the receipt (burned at close, never
//! paid to the provider) and is logged on chain with `recordViolations`.

pub mod blocklist;
pub mod config;
pub mod moderation;

use async_trait::async_trait;

use crate::upstream::PaidRequest;
use zkcredits_protocol::credits::Credits;

/// The policy's decision on one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward the request.
    Allow,
    /// Refuse it with a penalty.
    Violation {
        /// Penalty in credit units, `<= P_max` (the gateway clamps it).
        penalty: Credits,
        /// Which rule matched (never the request content), for the answer and the log.
        rule: String,
        /// SHA-256 of the evidence the provider keeps (the request body), logged on
        /// chain.
        evidence_hash: [u8; 32],
    },
}

/// Why the policy could not decide. The gateway fails closed with 503
/// `policy_unavailable` and a full refund, and does not record a violation.
#[derive(Debug, thiserror::Error)]
#[error("policy check failed: {0}")]
pub struct PolicyError(pub String);

/// A policy check.
#[async_trait]
pub trait Policy: Send + Sync + 'static {
    /// Checks one admitted request.
    async fn check(&self, request: &PaidRequest) -> Result<Verdict, PolicyError>;
}
