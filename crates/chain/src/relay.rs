//! Relayed closes (`docs/PROTOCOL.md §6`, "Relayed close"): a cooperative close that the
//! gateway sends for the user, so that no transaction of the close comes from the account
//! that deposited (or from any account of the user's).
//!
//! The user hands over the exact `closeCooperative` calldata: the proof, its public
//! values, the payout, the relay fee with its recipient, and the clearance. Nothing in it
//! can be changed by the relayer: the payout, the fee and the fee's recipient are bound
//! into `x_w` (the pool recomputes it), every other value is a public input of the proof,
//! and the clearance signs `(NC, N_j)`. What the relayer checks before paying gas is
//! that the fee is its own ([`RelayedClose::decode`] gives the values), and the pool
//! checks the rest (the relayer simulates the call first, so a close the pool refuses
//! costs it nothing).

use alloy::primitives::{Address, Bytes, U256};
use alloy::sol_types::SolCall;
use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::merkle::Root;
use zkcredits_protocol::rln::Nullifier;

use crate::Result;
use crate::bindings::{CloseVerifier, ZkCreditsPool, u256_to_fr};
use crate::clearance::Clearance;
use crate::client::PoolClient;
use crate::close::{CloseOutcome, PreparedClose};

/// A decoded `closeCooperative` call, as a relayer receives it.
#[derive(Clone, Debug)]
pub struct RelayedClose {
    call: ZkCreditsPool::closeCooperativeCall,
    root: Root,
    nc: Fr,
    nullifier: Nullifier,
}

/// Why calldata is not a relayable close.
#[derive(Debug, thiserror::Error)]
pub enum RelayDecodeError {
    /// Not an ABI-encoded `closeCooperative` call.
    #[error("not a closeCooperative call: {0}")]
    NotACooperativeClose(#[source] alloy::sol_types::Error),
    /// A `closeCooperative` call with bytes after it: what is relayed must be exactly
    /// what was checked.
    #[error("{extra} trailing bytes after the closeCooperative call")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A public value is not a canonical field element.
    #[error("{what} is not below the BN254 field modulus")]
    NotAFieldElement {
        /// Which value.
        what: &'static str,
    },
}

impl RelayedClose {
    /// The calldata of `closeCooperative(close, clearance)`, what the user sends the relay.
    pub fn encode(close: &PreparedClose, clearance: &Clearance) -> Bytes {
        ZkCreditsPool::closeCooperativeCall {
            c: close.args(),
            proof: close.proof_words(),
            clearance: clearance.to_vec().into(),
        }
        .abi_encode()
        .into()
    }

    /// Decodes calldata strictly (the selector, then every word, with no trailing bytes):
    /// what is relayed is exactly what was checked.
    pub fn decode(calldata: &[u8]) -> std::result::Result<Self, RelayDecodeError> {
        let call = ZkCreditsPool::closeCooperativeCall::abi_decode_validate(calldata)
            .map_err(RelayDecodeError::NotACooperativeClose)?;
        let used = call.abi_encoded_size() + 4;
        if used != calldata.len() {
            return Err(RelayDecodeError::TrailingBytes {
                extra: calldata.len().saturating_sub(used),
            });
        }
        let field = |what, value| {
            u256_to_fr(value).map_err(|_| RelayDecodeError::NotAFieldElement { what })
        };
        Ok(Self {
            root: Root::from_field(field("root", call.c.root)?),
            nc: field("nc", call.c.nc)?,
            nullifier: Nullifier::from_field(field("nullifier", call.c.nullifier)?),
            call,
        })
    }

    /// `NC`.
    pub fn nc(&self) -> Fr {
        self.nc
    }

    /// `N_j`.
    pub fn nullifier(&self) -> Nullifier {
        self.nullifier
    }

    /// The root the proof is made under.
    pub fn root(&self) -> Root {
        self.root
    }

    /// Who gets the relay fee.
    pub fn relayer(&self) -> Address {
        self.call.c.relayer
    }

    /// The relay fee, credit units.
    pub fn relay_fee(&self) -> Credits {
        Credits::new(self.call.c.relayFee)
    }

    /// `U`, credit units (the fee comes out of it).
    pub fn payout_amount(&self) -> Credits {
        Credits::new(self.call.c.payoutAmount)
    }

    /// The clearance bytes as given (the pool checks them).
    pub fn clearance(&self) -> &[u8] {
        &self.call.clearance
    }
}

impl PoolClient {
    /// Sends a relayed close from this client's account: commits the pool's current root
    /// first when the proof is made under a root the pool has not committed yet (a user
    /// whose note is newer than the last commit cannot commit it without a funded
    /// account), then simulates the close and sends it. A close the pool would refuse is
    /// refused here with the pool's named error, and costs no gas.
    pub async fn relay_close(&self, close: &RelayedClose) -> Result<CloseOutcome> {
        if !self.is_known_root(close.root).await? {
            // The commit costs this account gas: only for a close whose proof verifies,
            // so that committing takes a real note (which then closes, paying the fee).
            self.verify_close_proof(close).await?;
            self.commit_root().await?;
            if !self.is_known_root(close.root).await? {
                // A deposit landed after the user's sync: the commit made another root.
                return Err(crate::Error::Contract(crate::ContractError::UnknownRoot(
                    close.call.c.root,
                )));
            }
        }
        let tx = self
            .pool_contract()
            .closeCooperative(
                close.call.c.clone(),
                close.call.proof,
                close.call.clearance.clone(),
            )
            .into_transaction_request();
        let receipt = self.send_tx(tx).await?;
        self.closed_outcome(&receipt)
    }

    /// Runs the pool's close verifier on the close's proof with the public inputs the pool
    /// would give it (a call, nothing sent): the pool's `InvalidProof` when it fails.
    async fn verify_close_proof(&self, close: &RelayedClose) -> Result<()> {
        let pool = self.pool_contract();
        let c = &close.call.c;
        let verifier = CloseVerifier::new(pool.closeVerifier().call().await?, self.provider());
        let x_w = pool
            .withdrawalX(c.payout, c.relayer, c.relayFee)
            .call()
            .await?;
        let c_max = pool.cMax().call().await?;
        let p_max = pool.pMax().call().await?;
        let input = [
            c.root,
            c.nc,
            c.nullifier,
            x_w,
            c.yw,
            U256::from(c.deposit),
            U256::from(c.expiryEpoch),
            U256::from(c.payoutAmount),
            U256::from(c.burn),
            U256::from(u8::from(c.lostLastReceipt)),
            U256::from(c_max),
            U256::from(p_max),
            c.serverKeyX,
            c.serverKeyY,
        ];
        verifier.verifyProof(close.call.proof, input).call().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calldata of a relayed close with `root` (every other value small and valid).
    fn calldata(root: U256) -> Vec<u8> {
        ZkCreditsPool::closeCooperativeCall {
            c: ZkCreditsPool::CloseArgs {
                root,
                nc: U256::from(2),
                nullifier: U256::from(3),
                yw: U256::from(4),
                deposit: 100,
                expiryEpoch: 7,
                payoutAmount: 60,
                burn: 0,
                lostLastReceipt: false,
                payout: Address::repeat_byte(1),
                relayer: Address::repeat_byte(2),
                relayFee: 5,
                serverKeyX: U256::from(8),
                serverKeyY: U256::from(9),
            },
            proof: Default::default(),
            clearance: vec![0xaa; 65].into(),
        }
        .abi_encode()
    }

    #[test]
    fn exact_calldata_decodes() {
        let close = RelayedClose::decode(&calldata(U256::from(1))).expect("decodes");
        assert_eq!(close.root(), Root::from_field(Fr::from(1u64)));
        assert_eq!(close.relay_fee(), Credits::new(5));
        assert_eq!(close.payout_amount(), Credits::new(60));
        assert_eq!(close.clearance(), &[0xaa; 65][..]);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut data = calldata(U256::from(1));
        data.extend_from_slice(&[0; 3]);
        assert!(matches!(
            RelayedClose::decode(&data),
            Err(RelayDecodeError::TrailingBytes { extra: 3 })
        ));
    }

    #[test]
    fn other_calls_and_short_data_are_refused() {
        let mut data = calldata(U256::from(1));
        data[0] ^= 1;
        assert!(matches!(
            RelayedClose::decode(&data),
            Err(RelayDecodeError::NotACooperativeClose(_))
        ));
        let data = calldata(U256::from(1));
        assert!(matches!(
            RelayedClose::decode(&data[..data.len() - 64]),
            Err(RelayDecodeError::NotACooperativeClose(_))
        ));
    }

    #[test]
    fn a_root_above_the_field_is_refused() {
        assert!(matches!(
            RelayedClose::decode(&calldata(U256::MAX)),
            Err(RelayDecodeError::NotAFieldElement { what: "root" })
        ));
    }
}
