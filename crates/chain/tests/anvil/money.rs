//! Money: slash with a real RLN double spend, violations, expiry claims, and conservation
//! over a random sequence (what left the pool plus what it holds equals what came in).

use std::collections::BTreeMap;

use alloy::primitives::{B256, U256};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zkcredits_chain::testing::{PROVIDER, TestChain};
use zkcredits_chain::{ContractError, Error, PoolClient, Violation};
use zkcredits_protocol::Fr;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::note::{NoteSecret, note_id};
use zkcredits_protocol::rln::{self, Ticket};

use crate::{assert_refused, random_fr};

#[tokio::test]
async fn a_double_spend_reveals_k_and_slash_pays_bounty_and_provider_to_the_unit()
-> zkcredits_chain::Result<()> {
    // An odd unit and bounty, so that the bounty rounds.
    let unit = U256::from(1_000_003u64);
    let chain = TestChain::with_config(|c| {
        c.constants.unit = unit;
        c.constants.bounty_bps = 1234;
    })
    .await?;
    let user = chain.client(2).await?;
    let slasher = chain.client(3).await?;
    let provider = chain.address(PROVIDER);
    let mut rng = ChaCha8Rng::seed_from_u64(11);

    let k = random_fr(&mut rng);
    let note = NoteSecret::from_field(k);
    let credits = 777u64;
    let deposited = user.deposit(note.id(), Credits::new(credits)).await?;
    let epoch = deposited.notes[0].expiry_epoch;
    assert_eq!(user.outstanding(epoch).await?, credits);

    // Ticket 5 spent twice, for two requests: the two shares give k.
    let ticket = Ticket::new(k, 5);
    let (x1, x2) = (random_fr(&mut rng), random_fr(&mut rng));
    let recovered = rln::recover(ticket.share(k, x1), ticket.share(k, x2)).expect("distinct x");
    assert_eq!(recovered.k, k);
    assert_eq!(rln::nullifier(recovered.slope), ticket.nullifier.field());

    let pool = user.pool_address();
    let before = (
        user.token_balance(slasher.sender()).await?,
        user.token_balance(provider).await?,
        user.token_balance(pool).await?,
    );
    let out = slasher.slash(recovered.k).await?;
    let value = U256::from(credits) * unit;
    let bounty = value * U256::from(1234) / U256::from(10_000);
    assert_eq!(
        bounty,
        U256::from(95_882_087u64),
        "777 * 1000003 * 12.34% rounded down"
    );
    assert_eq!((out.bounty, out.to_provider), (bounty, value - bounty));
    assert_eq!(
        (out.id, out.nc, out.k, out.slasher),
        (note.id(), note.close_nullifier(), k, slasher.sender())
    );
    let after = (
        user.token_balance(slasher.sender()).await?,
        user.token_balance(provider).await?,
        user.token_balance(pool).await?,
    );
    assert_eq!(after.0 - before.0, bounty);
    assert_eq!(after.1 - before.1, value - bounty);
    assert_eq!(before.2 - after.2, value);
    assert!(user.closed_or_slashed(note.close_nullifier()).await?);
    assert_eq!(user.outstanding(epoch).await?, 0);

    assert_refused(slasher.slash(k).await, ContractError::NoteAlreadySettled);
    assert_refused(
        slasher.slash(random_fr(&mut rng)).await,
        ContractError::UnknownNote,
    );

    // A note of a claimed epoch can no longer be slashed.
    let k2 = random_fr(&mut rng);
    let d2 = user.deposit(note_id(k2), Credits::new(50)).await?;
    let e2 = d2.notes[0].expiry_epoch;
    let c = &chain.deployment().constants;
    let claim_at = c.genesis_time + (e2 + 1) * c.epoch_len + c.grace;
    chain.advance(claim_at - chain.now().await?).await?;
    let claimed = chain.client(PROVIDER).await?.claim_expired(e2).await?;
    assert_eq!(claimed.amount, U256::from(50) * unit);
    assert_refused(slasher.slash(k2).await, ContractError::EpochClaimed);
    assert_eq!(user.token_balance(pool).await?, U256::ZERO);
    Ok(())
}

#[tokio::test]
async fn only_the_provider_records_violations_and_the_events_carry_what_was_sent()
-> zkcredits_chain::Result<()> {
    let chain = TestChain::start().await?;
    let user = chain.client(2).await?;
    let provider = chain.client(PROVIDER).await?;
    let p_max = chain.deployment().constants.p_max.get();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let violations: Vec<Violation> = (0..10)
        .map(|i| Violation {
            nullifier: zkcredits_protocol::rln::Nullifier::from_field(random_fr(&mut rng)),
            evidence_hash: B256::from(rng.r#gen::<[u8; 32]>()),
            penalty: Credits::new(if i == 9 {
                p_max
            } else {
                rng.gen_range(0..=p_max)
            }),
        })
        .collect();
    assert_refused(
        user.record_violations(&violations).await,
        ContractError::NotProvider,
    );
    let out = provider.record_violations(&violations).await?;
    assert_eq!(out.recorded, violations);
    let mut too_large = violations.clone();
    too_large[3].penalty = Credits::new(p_max + 1);
    assert_refused(
        provider.record_violations(&too_large).await,
        ContractError::PenaltyTooLarge {
            index: U256::from(3),
            penalty: p_max + 1,
        },
    );
    // An empty list is accepted and records nothing.
    assert!(provider.record_violations(&[]).await?.recorded.is_empty());
    Ok(())
}

#[tokio::test]
async fn claim_expired_waits_for_the_epoch_end_plus_grace_then_pays_outstanding_once()
-> zkcredits_chain::Result<()> {
    let chain = TestChain::start().await?;
    let user = chain.client(2).await?;
    let provider = chain.client(PROVIDER).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let out = user
        .deposit_many(&[
            (note_id(random_fr(&mut rng)), Credits::new(1_500)),
            (note_id(random_fr(&mut rng)), Credits::new(2_500)),
        ])
        .await?;
    let epoch = out.notes[0].expiry_epoch;
    assert_eq!(
        epoch,
        user.current_epoch().await? + chain.deployment().constants.note_lifetime
    );
    assert_eq!(user.outstanding(epoch).await?, 4_000);

    assert_refused(
        provider.claim_expired(epoch).await,
        ContractError::EpochNotExpired,
    );
    assert_refused(user.claim_expired(epoch).await, ContractError::NotProvider);

    let c = &chain.deployment().constants;
    let claim_at = c.genesis_time + (epoch + 1) * c.epoch_len + c.grace;
    // The epoch has ended, the grace period has not: still refused.
    chain
        .advance(claim_at - c.grace + 60 - chain.now().await?)
        .await?;
    assert_refused(
        provider.claim_expired(epoch).await,
        ContractError::EpochNotExpired,
    );
    chain.advance(claim_at - 100 - chain.now().await?).await?;
    assert_refused(
        provider.claim_expired(epoch).await,
        ContractError::EpochNotExpired,
    );
    chain.advance(200).await?;

    let before = provider.token_balance(provider.sender()).await?;
    let claimed = provider.claim_expired(epoch).await?;
    let expected = U256::from(4_000) * c.unit;
    assert_eq!((claimed.epoch, claimed.amount), (epoch, expected));
    assert_eq!(
        provider.token_balance(provider.sender()).await? - before,
        expected
    );
    assert!(provider.epoch_claimed(epoch).await?);
    assert_eq!(
        provider.outstanding(epoch).await?,
        4_000,
        "outstanding keeps its value after the claim"
    );
    assert_refused(
        provider.claim_expired(epoch).await,
        ContractError::EpochClaimed,
    );
    assert_eq!(
        provider.token_balance(provider.pool_address()).await?,
        U256::ZERO
    );
    Ok(())
}

/// A note the conservation test knows the secret of.
struct Known {
    k: Fr,
    expiry: u64,
}

#[tokio::test]
async fn money_is_conserved_over_a_random_sequence_of_deposits_slashes_and_claims()
-> zkcredits_chain::Result<()> {
    let chain = TestChain::with_config(|c| {
        c.constants.epoch_len = 3_600;
        c.constants.note_lifetime = 2;
        c.constants.grace = 600;
        c.constants.bounty_bps = 500;
    })
    .await?;
    let users: Vec<PoolClient> = {
        let mut v = Vec::new();
        for i in 2..5 {
            let c = chain.client(i).await?;
            c.approve(U256::MAX).await?;
            v.push(c);
        }
        v
    };
    let slasher = chain.client(6).await?;
    let provider = chain.client(PROVIDER).await?;
    let c = chain.deployment().constants.clone();
    let pool = provider.pool_address();
    let watched = [provider.sender(), slasher.sender()];
    let balances = |who: Vec<alloy::primitives::Address>| {
        let p = &provider;
        async move {
            let mut out = Vec::new();
            for a in who {
                out.push(p.token_balance(a).await?);
            }
            Ok::<_, Error>(out)
        }
    };
    let start_watched = balances(watched.to_vec()).await?;
    let user_addrs: Vec<_> = users.iter().map(|u| u.sender()).collect();
    let start_users = balances(user_addrs.clone()).await?;

    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let mut notes: Vec<Known> = Vec::new();
    let mut epochs: BTreeMap<u64, bool> = BTreeMap::new(); // expiry epoch -> claimed
    let mut came_in = U256::ZERO;
    let mut went_out = U256::ZERO;
    let (mut slashes, mut claims, mut refusals) = (0, 0, 0);
    for step in 0..70 {
        let roll: f64 = rng.r#gen();
        let user = &users[rng.gen_range(0..users.len())];
        if roll < 0.3 {
            let k = random_fr(&mut rng);
            let credits = rng.gen_range(1..=5_000u64);
            let out = user.deposit(note_id(k), Credits::new(credits)).await?;
            let expiry = out.notes[0].expiry_epoch;
            came_in += U256::from(credits) * c.unit;
            epochs.entry(expiry).or_insert(false);
            notes.push(Known { k, expiry });
        } else if roll < 0.45 {
            let batch: Vec<(Fr, u64)> = (0..rng.gen_range(2..=6))
                .map(|_| (random_fr(&mut rng), rng.gen_range(1..=5_000u64)))
                .collect();
            let ids: Vec<_> = batch
                .iter()
                .map(|(k, d)| (note_id(*k), Credits::new(*d)))
                .collect();
            let out = user.deposit_many(&ids).await?;
            for ((k, d), n) in batch.iter().zip(&out.notes) {
                came_in += U256::from(*d) * c.unit;
                epochs.entry(n.expiry_epoch).or_insert(false);
                notes.push(Known {
                    k: *k,
                    expiry: n.expiry_epoch,
                });
            }
        } else if roll < 0.65 && !notes.is_empty() {
            let note = &notes[rng.gen_range(0..notes.len())];
            match slasher.slash(note.k).await {
                Ok(out) => {
                    went_out += out.bounty + out.to_provider;
                    slashes += 1;
                }
                Err(Error::Contract(ContractError::NoteAlreadySettled)) => refusals += 1,
                Err(Error::Contract(ContractError::EpochClaimed)) => {
                    assert_eq!(epochs.get(&note.expiry), Some(&true));
                    refusals += 1;
                }
                Err(e) => return Err(e),
            }
        } else if roll < 0.8 {
            chain.advance(rng.gen_range(0..=3 * c.epoch_len)).await?;
        } else if roll < 0.95 && !epochs.is_empty() {
            // Half the time the oldest unclaimed epoch (the likeliest to be claimable).
            let keys: Vec<u64> = epochs.keys().copied().collect();
            let oldest = epochs
                .iter()
                .find(|(_, claimed)| !**claimed)
                .map(|(e, _)| *e);
            let epoch = match oldest {
                Some(e) if rng.gen_bool(0.5) => e,
                _ => keys[rng.gen_range(0..keys.len())],
            };
            match provider.claim_expired(epoch).await {
                Ok(out) => {
                    assert_eq!(
                        out.amount,
                        U256::from(provider.outstanding(epoch).await?) * c.unit
                    );
                    went_out += out.amount;
                    epochs.insert(epoch, true);
                    claims += 1;
                }
                Err(Error::Contract(ContractError::EpochNotExpired)) => refusals += 1,
                Err(Error::Contract(ContractError::EpochClaimed)) => {
                    assert_eq!(epochs.get(&epoch), Some(&true));
                    refusals += 1;
                }
                Err(e) => return Err(e),
            }
        } else {
            user.commit_root().await?;
        }
        // What left the contract plus what it holds equals what came in, and what it holds
        // is exactly the outstanding credit of the epochs not yet claimed.
        let held = provider.token_balance(pool).await?;
        assert_eq!(held + went_out, came_in, "step {step}");
        let mut unclaimed = U256::ZERO;
        for (epoch, claimed) in &epochs {
            if !claimed {
                unclaimed += U256::from(provider.outstanding(*epoch).await?) * c.unit;
            }
        }
        assert_eq!(held, unclaimed, "step {step}");
    }
    assert!(
        slashes > 0 && claims > 0 && refusals > 0,
        "{slashes} slashes, {claims} claims, {refusals} refusals"
    );

    // Let every epoch expire and claim the rest: the pool is empty.
    chain
        .advance((c.note_lifetime + 2) * c.epoch_len + c.grace)
        .await?;
    for (epoch, claimed) in epochs.clone() {
        if !claimed {
            went_out += provider.claim_expired(epoch).await?.amount;
        }
    }
    assert_eq!(provider.token_balance(pool).await?, U256::ZERO);
    assert_eq!(went_out, came_in);
    // Where it went: the provider and the slasher got exactly what left; the users paid
    // exactly what came in.
    let end_watched = balances(watched.to_vec()).await?;
    let gained = (end_watched[0] - start_watched[0]) + (end_watched[1] - start_watched[1]);
    assert_eq!(gained, went_out);
    let end_users = balances(user_addrs).await?;
    let paid = start_users
        .iter()
        .zip(&end_users)
        .fold(U256::ZERO, |a, (s, e)| a + (*s - *e));
    assert_eq!(paid, came_in);
    Ok(())
}
