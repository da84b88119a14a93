//! What a gateway publishes that the spender relies on: the chain, the pool, the
//! pool's limits, the verifying key's hash and the receipt-signing keys, checked against
//! the deployment before a note is spent.

use zkcredits_chain::Deployment;
use zkcredits_chain::alloy::primitives::Address;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::eddsa::PublicKey;

use crate::error::ClientError;

/// One of the gateway's receipt-signing keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerKey {
    /// The key id a credential names.
    pub id: u32,
    /// The BabyJubJub public key.
    pub key: PublicKey,
}

/// What the gateway's discovery document says, as the spender needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConstants {
    /// The chain the pool lives on.
    pub chain_id: u64,
    /// The pool.
    pub pool: Address,
    /// `C_max`.
    pub c_max: Credits,
    /// `P_max`.
    pub p_max: Credits,
    /// SHA-256 of the verifying key the gateway checks proofs with, when published.
    pub verifying_key_hash: Option<[u8; 32]>,
    /// The key that signs new receipts.
    pub current_key: ServerKey,
    /// Older keys whose receipts the gateway still accepts in a credential.
    pub accepted_keys: Vec<ServerKey>,
    /// Refunds are multiples of this, when published.
    pub refund_granularity: Option<u64>,
}

impl GatewayConstants {
    pub(crate) fn key(&self, id: u32) -> Option<PublicKey> {
        std::iter::once(&self.current_key)
            .chain(&self.accepted_keys)
            .find(|k| k.id == id)
            .map(|k| k.key)
    }

    /// Checks the gateway against the deployment and the local verifying key.
    pub fn check(&self, deployment: &Deployment, vk_hash: [u8; 32]) -> Result<(), ClientError> {
        let mismatch = |what, expected: String, published: String| {
            Err(ClientError::GatewayConstantsMismatch {
                what,
                expected,
                published,
            })
        };
        if self.chain_id != deployment.chain_id {
            return mismatch(
                "chain id",
                deployment.chain_id.to_string(),
                self.chain_id.to_string(),
            );
        }
        if self.pool != deployment.pool {
            return mismatch("pool", deployment.pool.to_string(), self.pool.to_string());
        }
        if self.c_max != deployment.constants.c_max {
            return mismatch(
                "C_max",
                deployment.constants.c_max.to_string(),
                self.c_max.to_string(),
            );
        }
        if self.p_max != deployment.constants.p_max {
            return mismatch(
                "P_max",
                deployment.constants.p_max.to_string(),
                self.p_max.to_string(),
            );
        }
        if let Some(published) = self.verifying_key_hash
            && published != vk_hash
        {
            return mismatch(
                "verifying key hash",
                hex::encode(vk_hash),
                hex::encode(published),
            );
        }
        Ok(())
    }
}
