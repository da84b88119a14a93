//! Every revert the pool client can reach comes back as the contract's named error.
//!
//! Not reachable with `TestToken` (they need a hostile token): `Reentrancy`,
//! `TransferAmountMismatch` (fee-on-transfer) and `TokenCallFailed` (a token returning false).

use alloy::primitives::U256;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use zkcredits_chain::bindings::field_modulus;
use zkcredits_chain::testing::{DEPLOYER, PROVIDER, TestChain};
use zkcredits_chain::{ContractError, Error, PoolConfig, Violation, deploy};
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::note::note_id;

use crate::{assert_refused, random_fr};

#[tokio::test]
async fn every_revert_the_client_can_reach_is_named() -> zkcredits_chain::Result<()> {
    let chain = TestChain::start().await?;
    let d = chain.deployment().clone();
    let unit = d.constants.unit;
    let user = chain.client(2).await?;
    let provider = chain.client(PROVIDER).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let fresh = |rng: &mut ChaCha8Rng| note_id(random_fr(rng));
    let fresh_u = |id| zkcredits_chain::bindings::fr_to_u256(&id);
    user.approve(U256::MAX).await?;

    // InvalidConfig, at deployment.
    let mut bad = PoolConfig::dev(chain.address(PROVIDER));
    bad.token = Some(d.token);
    // One level more than the circuits prove: deposits there could never be spent.
    bad.constants.tree_depth = zkcredits_circuits::request::TREE_LEVELS as u8 + 1;
    assert_refused(
        deploy(chain.url(), chain.signer(DEPLOYER), &bad).await,
        ContractError::InvalidConfig("treeDepth".into()),
    );

    // Amounts.
    assert_refused(
        user.deposit_raw(fresh_u(fresh(&mut rng)), U256::ZERO).await,
        ContractError::ZeroAmount,
    );
    assert_refused(
        user.deposit_raw(fresh_u(fresh(&mut rng)), unit + U256::from(1))
            .await,
        ContractError::AmountNotMultipleOfUnit(unit + U256::from(1)),
    );
    let too_many = U256::from(1u8) << 64;
    user.mint_test_tokens(user.sender(), too_many * unit)
        .await?;
    assert_refused(
        user.deposit_raw(fresh_u(fresh(&mut rng)), too_many * unit)
            .await,
        ContractError::AmountTooLarge(too_many),
    );

    // Note IDs.
    let p = field_modulus();
    assert_refused(
        user.deposit_raw(p, unit).await,
        ContractError::NotAFieldElement(p),
    );
    let id = fresh(&mut rng);
    user.deposit(id, Credits::new(10)).await?;
    assert_refused(
        user.deposit(id, Credits::new(10)).await,
        ContractError::NoteAlreadyDeposited(fresh_u(id)),
    );

    // Batches.
    assert_refused(
        user.deposit_many_raw(vec![], vec![]).await,
        ContractError::EmptyBatch,
    );
    assert_refused(
        user.deposit_many_raw(vec![fresh_u(fresh(&mut rng))], vec![])
            .await,
        ContractError::LengthMismatch,
    );
    let dup = fresh(&mut rng);
    assert_refused(
        user.deposit_many(&[(dup, Credits::new(1)), (dup, Credits::new(1))])
            .await,
        ContractError::NoteAlreadyDeposited(fresh_u(dup)),
    );

    // The token's own errors come through the pool unchanged.
    let stranger = chain.client(7).await?;
    assert!(matches!(
        stranger.deposit_raw(fresh_u(fresh(&mut rng)), unit).await,
        Err(Error::Contract(ContractError::InsufficientAllowance { spender, .. })) if spender == d.pool
    ));
    stranger.approve(U256::MAX).await?;
    let balance = stranger.token_balance(stranger.sender()).await?;
    let over = (balance / unit + U256::from(1)) * unit;
    assert!(matches!(
        stranger.deposit_raw(fresh_u(fresh(&mut rng)), over).await,
        Err(Error::Contract(ContractError::InsufficientBalance { needed, .. })) if needed == over
    ));

    // Slashing.
    assert_refused(user.slash_raw(p).await, ContractError::NotAFieldElement(p));
    assert_refused(
        user.slash(random_fr(&mut rng)).await,
        ContractError::UnknownNote,
    );
    let k = random_fr(&mut rng);
    let out = user.deposit(note_id(k), Credits::new(10)).await?;
    user.slash(k).await?;
    assert_refused(user.slash(k).await, ContractError::NoteAlreadySettled);

    // Provider role.
    let v = [Violation {
        nullifier: zkcredits_protocol::rln::Nullifier::from_field(random_fr(&mut rng)),
        evidence_hash: Default::default(),
        penalty: Credits::new(1),
    }];
    assert_refused(user.record_violations(&v).await, ContractError::NotProvider);
    let mut over_p = v;
    over_p[0].penalty = Credits::new(d.constants.p_max.get() + 1);
    assert_refused(
        provider.record_violations(&over_p).await,
        ContractError::PenaltyTooLarge {
            index: U256::ZERO,
            penalty: d.constants.p_max.get() + 1,
        },
    );
    assert_refused(
        user.transfer_provider(user.sender()).await,
        ContractError::NotProvider,
    );
    assert_refused(
        user.accept_provider().await,
        ContractError::NotPendingProvider,
    );

    // Expiry.
    let epoch = out.notes[0].expiry_epoch;
    assert_refused(user.claim_expired(epoch).await, ContractError::NotProvider);
    assert_refused(
        provider.claim_expired(epoch).await,
        ContractError::EpochNotExpired,
    );
    let c = &d.constants;
    chain
        .advance(c.genesis_time + (epoch + 1) * c.epoch_len + c.grace - chain.now().await?)
        .await?;
    provider.claim_expired(epoch).await?;
    assert_refused(
        provider.claim_expired(epoch).await,
        ContractError::EpochClaimed,
    );

    // Denominations and a full tree, on pools with other constants.
    let small = chain
        .deploy_pool(|c| {
            c.constants.tree_depth = 1;
            c.constants.denominations = vec![Credits::new(100), Credits::new(500)];
        })
        .await?;
    let u2 = chain.client_for(&small, 2).await?;
    u2.approve(U256::MAX).await?;
    assert_refused(
        u2.deposit(fresh(&mut rng), Credits::new(300)).await,
        ContractError::DenominationNotAllowed(U256::from(300)),
    );
    assert_refused(
        u2.deposit_many(&[
            (fresh(&mut rng), Credits::new(100)),
            (fresh(&mut rng), Credits::new(300)),
        ])
        .await,
        ContractError::DenominationNotAllowed(U256::from(300)),
    );
    u2.deposit(fresh(&mut rng), Credits::new(100)).await?;
    assert_refused(
        u2.deposit_many(&[
            (fresh(&mut rng), Credits::new(100)),
            (fresh(&mut rng), Credits::new(500)),
        ])
        .await,
        ContractError::TreeFull,
    );
    u2.deposit(fresh(&mut rng), Credits::new(500)).await?;
    assert_refused(
        u2.deposit(fresh(&mut rng), Credits::new(100)).await,
        ContractError::TreeFull,
    );
    Ok(())
}

#[tokio::test]
async fn the_provider_role_moves_in_two_steps() -> zkcredits_chain::Result<()> {
    let chain = TestChain::start().await?;
    let provider = chain.client(PROVIDER).await?;
    let next = chain.client(5).await?;
    provider.transfer_provider(next.sender()).await?;
    assert_eq!(provider.pending_provider().await?, next.sender());
    assert_refused(
        chain.client(2).await?.accept_provider().await,
        ContractError::NotPendingProvider,
    );
    next.accept_provider().await?;
    assert_eq!(provider.provider_address().await?, next.sender());
    assert_refused(
        provider.record_violations(&[]).await,
        ContractError::NotProvider,
    );
    Ok(())
}
