//! Where a pool's money went, read back from its own events: what came in as deposits
//! and how it left (to users at close, to the provider, burned, to slashers, to the
//! relayers that sent closes). The
//! demo's closing table and the conservation checks use it, so a figure printed there
//! is the chain's, not the client's bookkeeping.

use alloy::primitives::U256;
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;

use zkcredits_protocol::credits::Credits;

use crate::bindings::ZkCreditsPool;
use crate::client::PoolClient;
use crate::error::Result;

/// Token amounts (base units) that moved through a pool, from its events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Ledger {
    /// Sum of `Deposited` amounts.
    pub deposited: U256,
    /// Paid to users' payout addresses by closes.
    pub to_users: U256,
    /// Paid to the provider by closes, slashes and expiry claims.
    pub to_provider: U256,
    /// Sent to the burn address by closes (policy penalties).
    pub burned: U256,
    /// Bounties paid to whoever slashed.
    pub to_slashers: U256,
    /// Relay fees paid by closes to whoever sent them for the user.
    pub to_relayers: U256,
    /// What the pool holds now (its token balance).
    pub held: U256,
}

impl Ledger {
    /// Whether every token that came in is accounted for: paid out or still held.
    pub fn balances(&self) -> bool {
        self.to_users
            + self.to_provider
            + self.burned
            + self.to_slashers
            + self.to_relayers
            + self.held
            == self.deposited
    }
}

/// How many blocks one `eth_getLogs` page covers.
const PAGE_BLOCKS: u64 = 50_000;

impl PoolClient {
    /// Reads the pool's events from `from_block` (its deployment block) to the latest
    /// block and its token balance, and sums them into a [`Ledger`].
    pub async fn ledger(&self, from_block: u64) -> Result<Ledger> {
        let provider = self.provider();
        let latest = provider.get_block_number().await?;
        let mut ledger = Ledger::default();
        let mut from = from_block;
        while from <= latest {
            let to = from.saturating_add(PAGE_BLOCKS - 1).min(latest);
            let filter = Filter::new()
                .address(self.pool_address())
                .event_signature(vec![
                    ZkCreditsPool::Deposited::SIGNATURE_HASH,
                    ZkCreditsPool::Closed::SIGNATURE_HASH,
                    ZkCreditsPool::Slashed::SIGNATURE_HASH,
                    ZkCreditsPool::ExpiredClaimed::SIGNATURE_HASH,
                ])
                .from_block(from)
                .to_block(to);
            for log in provider.get_logs(&filter).await? {
                let data = log.data();
                if let Ok(e) = ZkCreditsPool::Deposited::decode_log_data(data) {
                    ledger.deposited += self.token_amount(Credits::new(e.amount));
                } else if let Ok(e) = ZkCreditsPool::Closed::decode_log_data(data) {
                    ledger.to_users += e.toPayout;
                    ledger.to_provider += e.toProvider;
                    ledger.burned += e.burned;
                    ledger.to_relayers += e.toRelayer;
                } else if let Ok(e) = ZkCreditsPool::Slashed::decode_log_data(data) {
                    ledger.to_slashers += e.bounty;
                    ledger.to_provider += e.toProvider;
                } else if let Ok(e) = ZkCreditsPool::ExpiredClaimed::decode_log_data(data) {
                    ledger.to_provider += e.amount;
                }
            }
            from = to + 1;
        }
        ledger.held = self.token_balance(self.pool_address()).await?;
        Ok(ledger)
    }
}
