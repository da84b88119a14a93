//! The entry points the CLI calls: `bench_gas` and `devnet`.

use alloy::primitives::U256;
use alloy::providers::Provider;
use zkcredits_chain::anvil::dev_address;
use zkcredits_chain::devnet::{DEVNET_FUNDED_ACCOUNTS, DEVNET_MINT};
use zkcredits_chain::{Deployment, PoolClient, bench_gas, devnet};

use crate::TempDir;
use zkcredits_protocol::credits::Credits;

#[tokio::test]
async fn bench_gas_measures_every_figure_from_receipts_within_the_bars()
-> zkcredits_chain::Result<()> {
    let report = bench_gas().await?;
    let json = serde_json::to_value(report).expect("serialise");
    let keys: Vec<_> = json.as_object().expect("object").keys().cloned().collect();
    let names = [
        "deposit_gas",
        "deposit10_gas",
        "slash_gas",
        "record10_gas",
        "commit_root_gas",
        "close_coop_gas",
        "close_relayed_gas",
        "close_unilateral_gas",
        "finalize_gas",
        "challenge_gas",
    ];
    assert_eq!(keys.len(), names.len(), "{names:?}: {keys:?}");
    for k in names {
        assert!(json[k].as_u64().is_some_and(|v| v > 21_000), "{k}: {json}");
    }
    println!("gas: {json}");
    // The bars of docs/ARCHITECTURE.md.
    assert!(report.deposit_gas <= 250_000, "{report:?}");
    assert!(report.slash_gas <= 120_000, "{report:?}");
    assert!(report.close_coop_gas <= 400_000, "{report:?}");
    // A relay adds one transfer (its fee) to an account that already holds tokens.
    assert!(
        report.close_relayed_gas <= report.close_coop_gas + 10_000,
        "{report:?}"
    );
    assert!(report.deposit10_gas < 10 * report.deposit_gas, "{report:?}");
    Ok(())
}

#[tokio::test]
async fn devnet_deploys_funds_and_writes_a_deployment_that_reads_back()
-> zkcredits_chain::Result<()> {
    let dir = TempDir::new("devnet");
    let out = dir.path().join("devnet.json");
    let (anvil, deployment) = devnet(&out, 0).await?;
    assert_eq!(Deployment::load(&out)?, deployment);
    assert_eq!(deployment.rpc_url, anvil.url());
    assert_eq!(deployment.chain_id, anvil.provider()?.get_chain_id().await?);
    let c = &deployment.constants;
    assert_eq!(c.unit, U256::from(10u64).pow(U256::from(12u64)));
    assert_eq!(
        (
            c.c_max.get(),
            c.p_max.get(),
            c.epoch_len,
            c.note_lifetime,
            c.grace,
            c.challenge_window
        ),
        (1_000, 5_000, 86_400, 30, 86_400, 3_600)
    );
    assert_eq!(
        (c.bounty_bps, c.tree_depth, c.root_history_size),
        (0, 20, 64)
    );
    assert!(c.denominations.is_empty());
    let client = PoolClient::connect(&deployment, zkcredits_chain::anvil::dev_signer(1)).await?;
    for i in 0..DEVNET_FUNDED_ACCOUNTS {
        assert_eq!(
            client.token_balance(dev_address(i)).await?,
            U256::from(DEVNET_MINT)
        );
    }
    assert_eq!(
        client
            .token_balance(dev_address(DEVNET_FUNDED_ACCOUNTS))
            .await?,
        U256::ZERO
    );
    // A user deposits right away.
    let out = client
        .deposit(zkcredits_protocol::Fr::from(123u64), Credits::new(1_000))
        .await?;
    assert_eq!(out.notes[0].leaf_index, 0);
    Ok(())
}
