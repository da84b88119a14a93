//! Close clearances (`docs/PROTOCOL.md §6`): the provider's secp256k1 signature that lets
//! a cooperative close finalize at once.
//!
//! The gateway signs only after it has recorded the close's ticket nullifier `N_j` as
//! spent, so a note closed cooperatively can never spend that ticket again. The signature
//! is EIP-712 over `CloseClearance(uint256 nc, uint256 nullifier)` in the domain
//! `{name: "zkcredits", version: "1", chainId, verifyingContract: pool}`: the digest that
//! `ZkCreditsPool.clearanceDigest(nc, nullifier)` computes, so it covers the chain id, the
//! pool, `NC` and `N_j`, and nothing else can be passed off as one.

use alloy::primitives::{Address, B256, Signature};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolStruct, eip712_domain};
use zkcredits_protocol::Fr;
use zkcredits_protocol::rln::Nullifier;

use crate::bindings::fr_to_u256;

alloy::sol! {
    /// The EIP-712 struct the provider signs.
    #[allow(missing_docs)]
    struct CloseClearance {
        uint256 nc;
        uint256 nullifier;
    }
}

/// A clearance: 65 bytes `r || s || v` (v = 27 or 28), as `closeCooperative` takes it.
pub type Clearance = [u8; 65];

/// Why a clearance cannot be made or is not valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClearanceError {
    /// The signer failed (should not happen with a local key).
    #[error("signing the clearance failed: {0}")]
    Sign(String),
    /// The bytes are not a signature, or it recovers to no address.
    #[error("the clearance is not a valid secp256k1 signature")]
    Malformed,
    /// The signature is by another key than the provider's.
    #[error("the clearance is signed by {signer}, not by the provider {provider}")]
    WrongSigner {
        /// Who signed it.
        signer: Address,
        /// Who had to.
        provider: Address,
    },
}

/// The digest a clearance signs: EIP-712 of `CloseClearance(nc, nullifier)` for `pool` on
/// chain `chain_id` (equal to the pool's `clearanceDigest`).
pub fn clearance_digest(chain_id: u64, pool: Address, nc: Fr, nullifier: Nullifier) -> B256 {
    let domain = eip712_domain! {
        name: "zkcredits",
        version: "1",
        chain_id: chain_id,
        verifying_contract: pool,
    };
    CloseClearance {
        nc: fr_to_u256(&nc),
        nullifier: fr_to_u256(&nullifier.field()),
    }
    .eip712_signing_hash(&domain)
}

/// Signs the clearance of the close `(nc, nullifier)` with the provider's key. The caller
/// (the gateway) must have recorded `nullifier` as spent first.
pub fn sign_clearance(
    provider_key: &PrivateKeySigner,
    chain_id: u64,
    pool: Address,
    nc: Fr,
    nullifier: Nullifier,
) -> Result<Clearance, ClearanceError> {
    let digest = clearance_digest(chain_id, pool, nc, nullifier);
    let sig = provider_key
        .sign_hash_sync(&digest)
        .map_err(|e| ClearanceError::Sign(e.to_string()))?;
    // k256 signs with a low s, which the pool requires.
    Ok(sig.as_bytes())
}

/// Checks that `clearance` is `provider`'s clearance of the close `(nc, nullifier)`, as
/// the pool will (low s, v of 27 or 28).
pub fn verify_clearance(
    clearance: &Clearance,
    provider: Address,
    chain_id: u64,
    pool: Address,
    nc: Fr,
    nullifier: Nullifier,
) -> Result<(), ClearanceError> {
    if !matches!(clearance[64], 27 | 28) {
        return Err(ClearanceError::Malformed);
    }
    let sig = Signature::from_raw_array(clearance).map_err(|_| ClearanceError::Malformed)?;
    if sig.normalize_s().is_some() {
        // A high s: the pool refuses malleable signatures.
        return Err(ClearanceError::Malformed);
    }
    let signer = sig
        .recover_address_from_prehash(&clearance_digest(chain_id, pool, nc, nullifier))
        .map_err(|_| ClearanceError::Malformed)?;
    if signer != provider {
        return Err(ClearanceError::WrongSigner { signer, provider });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clearance_verifies_only_for_its_close_pool_and_chain() {
        let key = PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).expect("key");
        let pool = Address::repeat_byte(9);
        let (nc, nj) = (Fr::from(11u64), Nullifier::from_field(Fr::from(12u64)));
        let nc_as_nj = Nullifier::from_field(nc);
        let c = sign_clearance(&key, 31337, pool, nc, nj).expect("sign");
        verify_clearance(&c, key.address(), 31337, pool, nc, nj).expect("valid");
        for (chain, p, n1, n2) in [
            (1, pool, nc, nj),
            (31337, Address::repeat_byte(8), nc, nj),
            (31337, pool, nj.field(), nj),
            (31337, pool, nc, nc_as_nj),
        ] {
            assert!(matches!(
                verify_clearance(&c, key.address(), chain, p, n1, n2),
                Err(ClearanceError::WrongSigner { .. } | ClearanceError::Malformed)
            ));
        }
        assert!(matches!(
            verify_clearance(&c, Address::repeat_byte(1), 31337, pool, nc, nj),
            Err(ClearanceError::WrongSigner { .. })
        ));
    }
}
