//! The gateway's receipt keys (`docs/PROTOCOL.md §8`, rotation): the current key signs
//! every new receipt; older keys stay accepted as the server key of a credential, because
//! a client's last receipt may have been signed by one of them.

use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::eddsa::{PrivateKey, PublicKey};
use zkcredits_protocol::state::{Receipt, receipt_message};

/// The current signing key and the older accepted public keys, each with its id.
#[derive(Clone)]
pub struct ServerKeys {
    current_id: u32,
    current: PrivateKey,
    current_public: PublicKey,
    accepted: Vec<(u32, PublicKey)>,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKeys")
            .field("current_id", &self.current_id)
            .field("current_public", &self.current_public)
            .field("accepted", &self.accepted)
            .finish_non_exhaustive()
    }
}

impl ServerKeys {
    /// The current key `current` named `current_id`, and the older `accepted` keys.
    /// An accepted entry with the current id is ignored.
    pub fn new(current_id: u32, current: PrivateKey, accepted: Vec<(u32, PublicKey)>) -> Self {
        let current_public = current.public_key();
        let accepted = accepted
            .into_iter()
            .filter(|(id, _)| *id != current_id)
            .collect();
        Self {
            current_id,
            current,
            current_public,
            accepted,
        }
    }

    /// The id of the signing key.
    pub fn current_id(&self) -> u32 {
        self.current_id
    }

    /// The signing key's public key.
    pub fn current_public(&self) -> PublicKey {
        self.current_public
    }

    /// The older keys still accepted.
    pub fn accepted(&self) -> &[(u32, PublicKey)] {
        &self.accepted
    }

    /// The public key a credential names, if accepted.
    pub fn by_id(&self, id: u32) -> Option<PublicKey> {
        if id == self.current_id {
            return Some(self.current_public);
        }
        self.accepted
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, k)| *k)
    }

    /// Signs the receipt `m = H(RECEIPT, T_next, r, p)` with the current key.
    pub fn sign_receipt(&self, next_commitment: Fr, refund: Credits, penalty: Credits) -> Receipt {
        Receipt {
            refund,
            penalty,
            signature: self
                .current
                .sign(receipt_message(next_commitment, refund, penalty)),
        }
    }
}

/// 32 bytes from hex with or without `0x`.
pub(crate) fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    hex::decode(text).ok()?.try_into().ok()
}
