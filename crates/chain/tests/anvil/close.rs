//! Closes on anvil with real proofs (`docs/PROTOCOL.md §6`): honest cooperative and
//! unilateral closes pay exactly the formulas' amounts, a stale close is challenged and
//! slashed, every refusal has its named error, clearances bind NC and N_j, and money is
//! conserved over random sequences. Relayed closes: the relay fee and its recipient are
//! bound like the payout (changing any of them in the calldata is refused), anyone can
//! send the close, a relay commits the root only for a proof that verifies, and a stale
//! relayed unilateral close is still challenged. Also: the generated Solidity verifier
//! agrees with the Rust verifier.

use alloy::primitives::{Address, U256};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zkcredits_chain::bindings::{CloseVerifier, field_modulus, fr_to_u256, root_to_u256};
use zkcredits_chain::testing::{
    PROVIDER, SimulatedNote, TestChain, dev_close_prover, server_key_words, test_server_key,
};
use zkcredits_chain::{
    ClosePayout, ContractError, Error, NoteToClose, PoolClient, PreparedClose, RelayedClose,
    clearance_digest, close_ticket, prepare_close, sign_clearance,
};
use zkcredits_circuits::verifier::Verifier;
use zkcredits_protocol::Fr;
use zkcredits_protocol::close::CloseSplit;
use zkcredits_protocol::credits::Credits;
use zkcredits_protocol::merkle::{LeanImt, Root};
use zkcredits_protocol::note::NoteSecret;
use zkcredits_protocol::rln::{self, Nullifier};
use zkcredits_protocol::state::{Limits, NoteState};

use crate::{assert_refused, random_fr};

const BURN: Address = Address::new([
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad,
]);

/// A chain whose pool accepts the test receipt key, the users' tree, and clients.
struct World {
    chain: TestChain,
    user: PoolClient,
    provider: PoolClient,
    tree: LeanImt,
    rng: ChaCha8Rng,
}

impl World {
    async fn new(seed: u64, edit: impl FnOnce(&mut zkcredits_chain::PoolConfig)) -> Self {
        let chain = TestChain::with_config(|c| {
            c.server_key = Some(server_key_words(&test_server_key().public_key()));
            edit(c);
        })
        .await
        .expect("chain");
        let user = chain.client(2).await.expect("user");
        let provider = chain.client(PROVIDER).await.expect("provider");
        Self {
            chain,
            user,
            provider,
            tree: LeanImt::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn limits(&self) -> Limits {
        let c = &self.chain.deployment().constants;
        Limits {
            c_max: c.c_max,
            p_max: c.p_max,
        }
    }

    /// Deposits a fresh note of `credits` (without committing a root).
    async fn deposit(&mut self, credits: u64) -> SimulatedNote {
        let secret = NoteSecret::from_field(random_fr(&mut self.rng));
        let out = self
            .user
            .deposit(secret.id(), Credits::new(credits))
            .await
            .expect("deposit");
        let pushed = self.tree.push(out.notes[0].leaf).expect("tree");
        assert_eq!(pushed, out.notes[0].leaf_index);
        SimulatedNote::new(secret, &out.notes[0])
    }

    /// `requests` requests with the given refund and penalty each.
    fn spend(&mut self, note: &mut SimulatedNote, requests: u64, refund: u64, penalty: u64) {
        let server = test_server_key();
        for _ in 0..requests {
            let (x, rho) = (random_fr(&mut self.rng), random_fr(&mut self.rng));
            note.request(&server, x, rho, Credits::new(refund), Credits::new(penalty))
                .expect("request");
        }
    }

    async fn commit(&self) -> Root {
        self.user.commit_root().await.expect("commit");
        let root = self.user.root().await.expect("root");
        assert_eq!(root, self.tree.root());
        root
    }

    /// Proves the close of `note` from `state` (its current one unless given), all of
    /// `U` to `payout`.
    fn prove(
        &mut self,
        note: &SimulatedNote,
        state: Option<&NoteState>,
        root: Root,
        payout: Address,
        m: bool,
    ) -> PreparedClose {
        self.prove_to(note, state, root, ClosePayout::direct(payout), m)
    }

    /// [`World::prove`] paying `to` (a relay fee, too).
    fn prove_to(
        &mut self,
        note: &SimulatedNote,
        state: Option<&NoteState>,
        root: Root,
        to: ClosePayout,
        m: bool,
    ) -> PreparedClose {
        let path = self.tree.path(note.leaf_index).expect("path");
        prepare_close(
            dev_close_prover().expect("keys"),
            self.chain.deployment(),
            NoteToClose {
                secret: &note.secret,
                deposit: note.deposit,
                expiry_epoch: note.expiry_epoch,
                path: &path,
                root,
                state: state.unwrap_or(&note.state),
                server_key: test_server_key().public_key(),
            },
            to,
            m,
            &mut self.rng,
        )
        .expect("prove")
    }

    fn clearance(&self, nc: Fr, nullifier: Nullifier) -> [u8; 65] {
        let d = self.chain.deployment();
        sign_clearance(
            &self.chain.signer(PROVIDER),
            d.chain_id,
            d.pool,
            nc,
            nullifier,
        )
        .expect("sign")
    }

    async fn balances(&self, who: &[Address]) -> Vec<U256> {
        let mut out = Vec::new();
        for a in who {
            out.push(self.user.token_balance(*a).await.expect("balance"));
        }
        out
    }

    fn unit(&self) -> U256 {
        self.chain.deployment().constants.unit
    }
}

fn payout_address(rng: &mut impl Rng) -> Address {
    Address::new(rng.r#gen())
}

#[tokio::test]
async fn honest_closes_with_m_0_and_m_1_pay_exactly_the_formulas() {
    let mut w = World::new(1, |_| {}).await;
    let mut a = w.deposit(50_000).await;
    let mut b = w.deposit(40_000).await;
    // a: 4 requests refunded 300 each, one with a penalty of 700.
    w.spend(&mut a, 3, 300, 0);
    w.spend(&mut a, 1, 300, 700);
    // b: 2 requests refunded 100 each; the receipt of its third never arrived.
    w.spend(&mut b, 2, 100, 0);
    let root = w.commit().await;
    let limits = w.limits();
    let unit = w.unit();
    let provider = w.chain.address(PROVIDER);
    let pool = w.user.pool_address();

    // m = 0, cooperative: paid at once.
    let to = payout_address(&mut w.rng);
    let close = w.prove(&a, None, root, to, false);
    let split = CloseSplit::new(a.deposit, &a.state, false, limits).expect("split");
    assert_eq!(split.payout.get(), 50_000 + 1_200 - 700 - 4 * 1_000);
    assert_eq!(
        (split.burn.get(), split.provider.get()),
        (700, 4 * 1_000 - 1_200)
    );
    let before = w.balances(&[to, provider, BURN, pool]).await;
    let clearance = w.clearance(close.nc(), close.nullifier());
    let out = w
        .user
        .close_cooperative(&close, &clearance)
        .await
        .expect("close");
    let after = w.balances(&[to, provider, BURN, pool]).await;
    assert_eq!(after[0] - before[0], U256::from(split.payout.get()) * unit);
    assert_eq!(
        after[1] - before[1],
        U256::from(split.provider.get()) * unit
    );
    assert_eq!(after[2] - before[2], U256::from(split.burn.get()) * unit);
    assert_eq!(before[3] - after[3], U256::from(a.deposit.get()) * unit);
    assert_eq!(
        (out.to_payout, out.to_provider, out.burned, out.payout),
        (
            U256::from(split.payout.get()) * unit,
            U256::from(split.provider.get()) * unit,
            U256::from(split.burn.get()) * unit,
            to
        )
    );
    assert_eq!(
        (out.nc, out.nullifier),
        close_ticket(&a.secret, &a.state, false)
    );
    assert!(
        w.user
            .closed_or_slashed(a.secret.close_nullifier())
            .await
            .expect("view")
    );
    println!("closeCooperative gas {}", out.tx.gas_used);

    // m = 1, unilateral: held, then finalized by anyone after the window.
    let to = payout_address(&mut w.rng);
    let close = w.prove(&b, None, root, to, true);
    let split = CloseSplit::new(b.deposit, &b.state, true, limits).expect("split");
    assert_eq!(split.ticket, 3);
    assert_eq!(split.payout.get(), 40_000 + 200 - 3 * 1_000 - 5_000);
    assert_eq!(
        (split.burn.get(), split.provider.get()),
        (5_000, 3 * 1_000 - 200)
    );
    let before = w.balances(&[to, provider, BURN, pool]).await;
    let pending = w.user.close_unilateral(&close).await.expect("close");
    assert_eq!(pending.nullifier, close.nullifier());
    assert_eq!(
        pending.x_w,
        w.user
            .withdrawal_x(ClosePayout::direct(to))
            .await
            .expect("x_w")
    );
    assert_eq!(w.user.outstanding(b.expiry_epoch).await.expect("view"), 0);
    assert_refused(
        w.user.finalize(close.nc()).await,
        ContractError::ChallengeWindowOpen(pending.deadline),
    );
    w.chain
        .advance(w.chain.deployment().constants.challenge_window)
        .await
        .expect("time");
    let anyone = w.chain.client(4).await.expect("client");
    let out = anyone.finalize(close.nc()).await.expect("finalize");
    let after = w.balances(&[to, provider, BURN, pool]).await;
    assert_eq!(after[0] - before[0], U256::from(split.payout.get()) * unit);
    assert_eq!(
        after[1] - before[1],
        U256::from(split.provider.get()) * unit
    );
    assert_eq!(after[2] - before[2], U256::from(split.burn.get()) * unit);
    assert_eq!(before[3] - after[3], U256::from(b.deposit.get()) * unit);
    assert_eq!(out.to_payout, U256::from(split.payout.get()) * unit);
    assert!(
        w.user
            .pending_close(close.nc())
            .await
            .expect("view")
            .is_none()
    );
    assert_refused(
        anyone.finalize(close.nc()).await,
        ContractError::NoPendingClose,
    );
}

#[tokio::test]
async fn a_stale_close_is_challenged_with_the_gateways_share_and_the_note_is_slashed() {
    let mut w = World::new(2, |c| c.constants.bounty_bps = 500).await;
    let mut note = w.deposit(30_000).await;
    w.spend(&mut note, 3, 0, 0);
    let root = w.commit().await;
    // The user closes from the state after one request (ticket 1 was spent since).
    let stale = note.history[1];
    let to = payout_address(&mut w.rng);
    let close = w.prove(&note, Some(&stale), root, to, false);
    let pending = w.user.close_unilateral(&close).await.expect("close");
    assert_eq!(
        pending.nullifier,
        rln::Ticket::new(note.secret.expose(), 1).nullifier
    );

    // The gateway holds ticket 1's share from the request: with the close's share it
    // recovers (k, a).
    let recovered = rln::recover(
        note.shares[1],
        rln::Share {
            x: pending.x_w,
            y: pending.y_w,
        },
    )
    .expect("distinct x");
    assert_eq!(recovered.k, note.secret.expose());
    let watcher = w.chain.client(3).await.expect("client");
    // A wrong (k, a) is refused by name.
    assert_refused(
        watcher
            .challenge(close.nc(), recovered.k, recovered.slope + Fr::from(1u64))
            .await,
        ContractError::InvalidChallenge,
    );
    assert_refused(
        watcher
            .challenge(close.nc(), recovered.k + Fr::from(1u64), recovered.slope)
            .await,
        ContractError::InvalidChallenge,
    );
    let before = w
        .balances(&[watcher.sender(), w.chain.address(PROVIDER), to])
        .await;
    let out = watcher
        .challenge(close.nc(), recovered.k, recovered.slope)
        .await
        .expect("challenge");
    let after = w
        .balances(&[watcher.sender(), w.chain.address(PROVIDER), to])
        .await;
    let value = U256::from(note.deposit.get()) * w.unit();
    let bounty = value * U256::from(500) / U256::from(10_000);
    assert_eq!(
        (out.bounty, out.to_provider, out.k),
        (bounty, value - bounty, note.secret.expose())
    );
    assert_eq!(after[0] - before[0], bounty);
    assert_eq!(after[1] - before[1], value - bounty);
    assert_eq!(after[2], before[2], "the payout address gets nothing");
    assert!(w.user.closed_or_slashed(close.nc()).await.expect("view"));
    assert_refused(
        w.user.finalize(close.nc()).await,
        ContractError::NoPendingClose,
    );
    assert_refused(
        watcher.slash(note.secret.expose()).await,
        ContractError::NoteAlreadySettled,
    );
    // The outstanding amount was released once, by the close request.
    assert_eq!(
        w.user.outstanding(note.expiry_epoch).await.expect("view"),
        0
    );
}

#[tokio::test]
async fn refusals_have_named_errors() {
    let mut w = World::new(3, |_| {}).await;
    let mut note = w.deposit(20_000).await;
    w.spend(&mut note, 2, 500, 0);
    let root = w.commit().await;
    let to = payout_address(&mut w.rng);
    let close = w.prove(&note, None, root, to, false);

    // Another payout address than the proof is bound to.
    let mut redirected = close.clone();
    redirected.to.payout = payout_address(&mut w.rng);
    assert_refused(
        w.user.close_unilateral(&redirected).await,
        ContractError::InvalidProof,
    );
    // A tampered proof.
    let mut tampered = close.clone();
    tampered.proof.c = (tampered.proof.c + tampered.proof.c).into();
    assert_refused(
        w.user.close_unilateral(&tampered).await,
        ContractError::InvalidProof,
    );
    // Amounts other than the proven ones.
    let mut greedy = close.clone();
    greedy.public.payout = greedy
        .public
        .payout
        .checked_add(Credits::new(1))
        .expect("small");
    assert_refused(
        w.user.close_unilateral(&greedy).await,
        ContractError::InvalidProof,
    );
    // A root the pool never committed (a deposit after the commit, proven locally).
    let _later = w.deposit(1_000).await;
    let local_root = w.tree.root();
    let unknown = w.prove(&note, None, local_root, to, false);
    assert_refused(
        w.user.close_unilateral(&unknown).await,
        ContractError::UnknownRoot(root_to_u256(local_root)),
    );

    // The honest one goes through; a second close of the note is refused while it is
    // pending and after it is final, whatever the payout address.
    w.user.close_unilateral(&close).await.expect("close");
    assert_refused(
        w.user.close_unilateral(&close).await,
        ContractError::ClosePending,
    );
    w.chain
        .advance(w.chain.deployment().constants.challenge_window)
        .await
        .expect("time");
    w.user.finalize(close.nc()).await.expect("finalize");
    let payout = payout_address(&mut w.rng);
    let root = w.commit().await;
    let again = w.prove(&note, None, root, payout, false);
    assert_refused(
        w.user.close_unilateral(&again).await,
        ContractError::NoteAlreadySettled,
    );
    let clearance = w.clearance(again.nc(), again.nullifier());
    assert_refused(
        w.user.close_cooperative(&again, &clearance).await,
        ContractError::NoteAlreadySettled,
    );
}

#[tokio::test]
async fn a_cooperative_close_needs_the_providers_clearance_of_its_nc_and_nullifier() {
    let mut w = World::new(4, |_| {}).await;
    let mut note = w.deposit(20_000).await;
    w.spend(&mut note, 1, 250, 0);
    let root = w.commit().await;
    let to = payout_address(&mut w.rng);
    let close = w.prove(&note, None, root, to, false);
    let (nc, nj) = (close.nc(), close.nullifier());
    let d = w.chain.deployment().clone();
    // The library's digest is the pool's.
    assert_eq!(
        clearance_digest(d.chain_id, d.pool, nc, nj),
        w.user.clearance_digest(nc, nj).await.expect("view")
    );
    for bad in [
        w.clearance(nc + Fr::from(1u64), nj),
        w.clearance(nc, Nullifier::from_field(nj.field() + Fr::from(1u64))),
        sign_clearance(&w.chain.signer(2), d.chain_id, d.pool, nc, nj).expect("sign"),
        sign_clearance(&w.chain.signer(PROVIDER), d.chain_id + 1, d.pool, nc, nj).expect("sign"),
    ] {
        assert_refused(
            w.user.close_cooperative(&close, &bad).await,
            ContractError::InvalidClearance,
        );
    }
    let good = w.clearance(nc, nj);
    zkcredits_chain::verify_clearance(&good, w.chain.address(PROVIDER), d.chain_id, d.pool, nc, nj)
        .expect("valid");
    let out = w
        .user
        .close_cooperative(&close, &good)
        .await
        .expect("close");
    assert!(out.to_payout > U256::ZERO);
    assert!(w.user.closed_or_slashed(nc).await.expect("view"));
    assert!(w.user.pending_close(nc).await.expect("view").is_none());
}

#[tokio::test]
async fn a_close_is_refused_once_its_epoch_is_claimed_and_slash_cancels_a_pending_close() {
    let mut w = World::new(5, |c| {
        c.constants.epoch_len = 100;
        c.constants.note_lifetime = 2;
        c.constants.grace = 10;
        c.constants.challenge_window = 50;
    })
    .await;
    let a = w.deposit(9_000).await;
    let b = w.deposit(8_000).await;
    let root = w.commit().await;
    // b: a unilateral close, then its key leaks and it is slashed: the close is cancelled.
    let payout = payout_address(&mut w.rng);
    let close_b = w.prove(&b, None, root, payout, false);
    w.user.close_unilateral(&close_b).await.expect("close");
    let slasher = w.chain.client(3).await.expect("client");
    slasher.slash(b.secret.expose()).await.expect("slash");
    assert!(
        w.user
            .pending_close(close_b.nc())
            .await
            .expect("view")
            .is_none()
    );
    assert_refused(
        w.user.finalize(close_b.nc()).await,
        ContractError::NoPendingClose,
    );
    // a: the provider claims its epoch; the close is then refused.
    w.chain.advance(3 * 100 + 10).await.expect("time");
    w.provider
        .claim_expired(a.expiry_epoch)
        .await
        .expect("claim");
    let payout = payout_address(&mut w.rng);
    let close_a = w.prove(&a, None, root, payout, false);
    assert_refused(
        w.user.close_unilateral(&close_a).await,
        ContractError::EpochClaimed,
    );
}

#[tokio::test]
async fn money_is_conserved_over_random_deposits_requests_closes_challenges_slashes_and_expiry() {
    let mut w = World::new(6, |c| {
        c.constants.bounty_bps = 250;
        c.constants.epoch_len = 1_000;
        c.constants.note_lifetime = 3;
        c.constants.grace = 10;
        c.constants.challenge_window = 100;
    })
    .await;
    let unit = w.unit();
    let pool = w.user.pool_address();
    let provider = w.chain.address(PROVIDER);
    let watcher = w.chain.client(3).await.expect("client");
    let mut payouts: Vec<Address> = Vec::new();
    let start_pool = w.balances(&[pool]).await[0];
    let start_provider = w.balances(&[provider, BURN, watcher.sender()]).await;
    let mut deposited = U256::ZERO;
    let mut notes = Vec::new();
    for _ in 0..7 {
        let credits = w.rng.gen_range(8_000..30_000u64);
        let mut n = w.deposit(credits).await;
        deposited += U256::from(credits) * unit;
        let requests = w.rng.gen_range(0..4u64);
        for _ in 0..requests {
            // The gateway only answers requests the note can pay for (rule 4).
            if !n.state.can_pay(n.deposit, w.limits()) {
                break;
            }
            let refund = w.rng.gen_range(0..=1_000u64);
            let penalty = if w.rng.gen_bool(0.3) {
                w.rng.gen_range(0..=5_000u64)
            } else {
                0
            };
            w.spend(&mut n, 1, refund, penalty);
        }
        notes.push(n);
    }
    let root = w.commit().await;
    let mut pending = Vec::new();
    for n in &notes {
        let to = payout_address(&mut w.rng);
        match w.rng.gen_range(0..5u32) {
            0 => {
                let m = w.rng.gen_bool(0.5);
                if CloseSplit::new(n.deposit, &n.state, m, w.limits()).is_err() {
                    continue;
                }
                let c = w.prove(n, None, root, to, m);
                let cl = w.clearance(c.nc(), c.nullifier());
                w.user.close_cooperative(&c, &cl).await.expect("coop");
                payouts.push(to);
            }
            1 => {
                let c = w.prove(n, None, root, to, false);
                w.user.close_unilateral(&c).await.expect("unilateral");
                pending.push(c.nc());
                payouts.push(to);
            }
            2 if n.state.index >= 1 => {
                // Stale close, challenged.
                let stale = n.history[n.history.len() - 1];
                let c = w.prove(n, Some(&stale), root, to, false);
                let p = w.user.close_unilateral(&c).await.expect("stale");
                let r = rln::recover(
                    n.shares[stale.index as usize],
                    rln::Share { x: p.x_w, y: p.y_w },
                )
                .expect("recover");
                watcher
                    .challenge(c.nc(), r.k, r.slope)
                    .await
                    .expect("challenge");
                payouts.push(to);
            }
            3 => {
                watcher.slash(n.secret.expose()).await.expect("slash");
            }
            _ => {} // left to expire
        }
    }
    w.chain.advance(100).await.expect("time");
    for nc in pending {
        w.user.finalize(nc).await.expect("finalize");
    }
    // Expiry: the provider claims every epoch the notes could be in.
    w.chain.advance(5 * 1_000 + 10).await.expect("time");
    let epochs: std::collections::BTreeSet<u64> = notes.iter().map(|n| n.expiry_epoch).collect();
    for e in epochs {
        w.provider.claim_expired(e).await.expect("claim");
    }
    let end_pool = w.balances(&[pool]).await[0];
    let end = w.balances(&[provider, BURN, watcher.sender()]).await;
    let mut to_users = U256::ZERO;
    for a in &payouts {
        to_users += w.balances(&[*a]).await[0];
    }
    let out_of_pool = to_users
        + (end[0] - start_provider[0])
        + (end[1] - start_provider[1])
        + (end[2] - start_provider[2]);
    assert_eq!(end_pool, start_pool, "everything deposited left the pool");
    assert_eq!(
        out_of_pool, deposited,
        "user + provider + burn + slasher = deposits"
    );
    // The pool's own events tell the same story, part by part.
    let ledger = w
        .provider
        .ledger(w.chain.deployment().deploy_block)
        .await
        .expect("ledger");
    assert!(ledger.balances(), "{ledger:?}");
    assert_eq!(ledger.deposited, deposited);
    assert_eq!(ledger.to_users, to_users);
    assert_eq!(ledger.burned, end[1] - start_provider[1]);
    assert_eq!(ledger.to_slashers, end[2] - start_provider[2]);
    assert_eq!(ledger.to_provider, end[0] - start_provider[0]);
    assert_eq!(ledger.held, end_pool);
}

#[tokio::test]
async fn the_generated_solidity_verifier_agrees_with_the_rust_verifier() {
    let mut w = World::new(7, |_| {}).await;
    let mut note = w.deposit(20_000).await;
    w.spend(&mut note, 2, 100, 30);
    let root = w.commit().await;
    let payout = payout_address(&mut w.rng);
    let close = w.prove(&note, None, root, payout, true);
    let prover = dev_close_prover().expect("keys");
    let rust = Verifier::new(&prover.keys().proving_key.vk);
    let inputs = close.public.to_field_elements();
    assert!(rust.verify(&close.proof, &inputs));

    let provider = w.chain.provider().expect("provider");
    let sol = CloseVerifier::new(w.chain.deployment().close_verifier, &provider);
    let words = close.proof_words();
    let input_words: Vec<U256> = inputs.iter().map(fr_to_u256).collect();
    let as_array = |v: &[U256]| -> [U256; 14] { v.try_into().expect("14 inputs") };
    sol.verifyProof(words, as_array(&input_words))
        .call()
        .await
        .expect("the valid proof is accepted");

    let expect_revert = |r: Result<(), alloy::contract::Error>, what: String| {
        let err = Error::from(r.expect_err(&what));
        assert!(
            matches!(
                err,
                Error::Contract(ContractError::InvalidProof | ContractError::InputNotInField(_))
            ),
            "{what}: {err:?}"
        );
    };
    for i in 0..14 {
        let mut tampered = input_words.clone();
        tampered[i] += U256::from(1);
        let mut rust_inputs = inputs.clone();
        rust_inputs[i] += Fr::from(1u64);
        assert!(!rust.verify(&close.proof, &rust_inputs), "input {i}");
        let r = sol
            .verifyProof(words, as_array(&tampered))
            .call()
            .await
            .map(|_| ());
        expect_revert(r, format!("input {i} + 1"));
        // The same value plus the modulus is refused too (no malleability).
        let mut wrapped = input_words.clone();
        wrapped[i] += field_modulus();
        let r = sol
            .verifyProof(words, as_array(&wrapped))
            .call()
            .await
            .map(|_| ());
        expect_revert(r, format!("input {i} + r"));
    }
    for i in 0..8 {
        let mut tampered = words;
        tampered[i] += U256::from(1);
        let r = sol
            .verifyProof(tampered, as_array(&input_words))
            .call()
            .await
            .map(|_| ());
        expect_revert(r, format!("proof word {i} + 1"));
    }
    // A valid point in the wrong place: A and C swapped.
    let mut swapped = words;
    swapped.swap(0, 6);
    swapped.swap(1, 7);
    let r = sol
        .verifyProof(swapped, as_array(&input_words))
        .call()
        .await
        .map(|_| ());
    expect_revert(r, "A and C swapped".into());
}

#[tokio::test]
async fn a_revoked_receipt_key_serves_closes_until_its_notice_ends() {
    let mut w = World::new(77, |_| {}).await;
    let mut early = w.deposit(30_000).await;
    let mut late = w.deposit(30_000).await;
    w.spend(&mut early, 2, 500, 0);
    w.spend(&mut late, 2, 500, 0);
    let root = w.commit().await;
    let key = test_server_key().public_key();
    assert!(w.provider.server_key_accepted(key).await.expect("view"));
    assert_refused(
        w.user.revoke_server_key(key).await,
        ContractError::NotProvider,
    );
    let (_, retires_at) = w.provider.revoke_server_key(key).await.expect("revoke");
    assert_eq!(
        retires_at,
        w.chain.now().await.expect("now") + 30 * 86_400,
        "thirty days of notice"
    );

    // Within the notice a note whose last receipt the key signed still closes, and a
    // unilateral close requested in time finalizes after it.
    assert!(w.provider.server_key_accepted(key).await.expect("view"));
    let to = payout_address(&mut w.rng);
    let close = w.prove(&early, None, root, to, false);
    let requested = w.user.close_unilateral(&close).await.expect("close");
    w.chain.advance(30 * 86_400).await.expect("time");
    assert!(!w.provider.server_key_accepted(key).await.expect("view"));
    assert!(w.chain.now().await.expect("now") > requested.deadline);
    w.user
        .finalize(close.nc())
        .await
        .expect("finalize after the notice");

    // After it, a close naming the key is refused by name.
    let root = w.commit().await;
    let close = w.prove(&late, None, root, to, false);
    assert_refused(
        w.user.close_unilateral(&close).await,
        ContractError::ServerKeyRetired(retires_at),
    );
}

/// An edit of a prepared close, as whoever holds its calldata could make.
type Tamper<'a> = Box<dyn FnOnce(&mut PreparedClose) + 'a>;

/// The closing calldata of `close` with its `CloseArgs` edited, decoded as a relay would.
fn tampered_relay(
    close: &PreparedClose,
    clearance: &[u8; 65],
    edit: impl FnOnce(&mut PreparedClose),
) -> RelayedClose {
    let mut c = close.clone();
    edit(&mut c);
    RelayedClose::decode(&RelayedClose::encode(&c, clearance)).expect("decode")
}

#[tokio::test]
async fn a_relayed_close_pays_exactly_what_it_was_proven_with_whoever_sends_it() {
    let mut w = World::new(11, |_| {}).await;
    let mut note = w.deposit(30_000).await;
    w.spend(&mut note, 2, 400, 0);
    let root = w.commit().await;
    let unit = w.unit();
    let (relayer_account, payout, thief) = (
        w.chain.client(4).await.expect("relayer"),
        payout_address(&mut w.rng),
        payout_address(&mut w.rng),
    );
    let fee = Credits::new(700);
    let to = ClosePayout::relayed(payout, relayer_account.sender(), fee);
    let close = w.prove_to(&note, None, root, to, false);
    let clearance = w.clearance(close.nc(), close.nullifier());

    // Whoever sends it cannot change where any of the money goes, nor how much.
    let attacks: [(&str, Tamper); 5] = [
        (
            "the fee to the sender's own address",
            Box::new(move |c| c.to.relayer = thief),
        ),
        (
            "a larger fee",
            Box::new(|c| {
                c.to.relay_fee = c.to.relay_fee.checked_add(Credits::new(1)).expect("small")
            }),
        ),
        (
            "no fee",
            Box::new(|c| c.to = ClosePayout::direct(c.to.payout)),
        ),
        ("another payout", Box::new(move |c| c.to.payout = thief)),
        (
            "the fee as payout",
            Box::new(|c| std::mem::swap(&mut c.to.payout, &mut c.to.relayer)),
        ),
    ];
    for (what, edit) in attacks {
        let tampered = tampered_relay(&close, &clearance, edit);
        match relayer_account.relay_close(&tampered).await {
            Err(Error::Contract(ContractError::InvalidProof)) => {}
            other => panic!("{what}: expected InvalidProof, got {other:?}"),
        }
    }
    // A fee above U never reaches the verifier.
    let greedy = tampered_relay(&close, &clearance, |c| {
        c.to.relay_fee = c.public.payout.checked_add(Credits::new(1)).expect("small")
    });
    assert_refused(
        relayer_account.relay_close(&greedy).await,
        ContractError::InvalidRelayFee,
    );

    // The honest calldata, sent by an account that is not the user's.
    let split = CloseSplit::new(note.deposit, &note.state, false, w.limits()).expect("split");
    let provider = w.chain.address(PROVIDER);
    let before = w
        .balances(&[payout, relayer_account.sender(), provider, thief])
        .await;
    let honest = RelayedClose::decode(&RelayedClose::encode(&close, &clearance)).expect("decode");
    assert_eq!(
        (honest.relayer(), honest.relay_fee()),
        (relayer_account.sender(), fee)
    );
    let out = relayer_account.relay_close(&honest).await.expect("relay");
    let after = w
        .balances(&[payout, relayer_account.sender(), provider, thief])
        .await;
    assert_eq!(
        after[0] - before[0],
        U256::from(split.payout.get() - fee.get()) * unit
    );
    assert_eq!(after[1] - before[1], U256::from(fee.get()) * unit);
    assert_eq!(
        after[2] - before[2],
        U256::from(split.provider.get()) * unit
    );
    assert_eq!(after[3], before[3]);
    assert_eq!(
        (out.payout, out.to_payout, out.relayer, out.to_relayer),
        (
            payout,
            U256::from(split.payout.get() - fee.get()) * unit,
            relayer_account.sender(),
            U256::from(fee.get()) * unit
        )
    );
    let tx = w
        .user
        .provider()
        .get_transaction_by_hash(out.tx.hash)
        .await
        .expect("rpc")
        .expect("tx");
    use alloy::providers::Provider as _;
    assert_eq!(tx.inner.signer(), relayer_account.sender());
    assert_ne!(
        tx.inner.signer(),
        w.user.sender(),
        "the close is not the depositor's transaction"
    );
    // What the user reads back is the chain's record of it.
    assert_eq!(
        w.user
            .closed_outcome_of(out.tx.hash, close.nc())
            .await
            .expect("outcome"),
        out
    );
    // Sent twice: the pool refuses, nothing is paid again.
    assert_refused(
        relayer_account.relay_close(&honest).await,
        ContractError::NoteAlreadySettled,
    );
}

#[tokio::test]
async fn a_relay_commits_a_new_root_only_for_a_proof_that_verifies() {
    let mut w = World::new(12, |_| {}).await;
    let mut note = w.deposit(30_000).await;
    w.spend(&mut note, 1, 0, 0);
    // The note is newer than every committed root: the user proves under the tree's root.
    let root = w.tree.root();
    assert!(!w.user.is_known_root(root).await.expect("view"));
    let relayer_account = w.chain.client(4).await.expect("relayer");
    let to = ClosePayout::relayed(
        payout_address(&mut w.rng),
        relayer_account.sender(),
        Credits::new(10),
    );
    let close = w.prove_to(&note, None, root, to, false);
    let clearance = w.clearance(close.nc(), close.nullifier());

    // A garbage proof under that root costs the relay nothing: no commit is sent.
    let nonce = |c: &PoolClient| {
        let c = c.clone();
        async move {
            use alloy::providers::Provider as _;
            c.provider()
                .get_transaction_count(c.sender())
                .await
                .expect("nonce")
        }
    };
    let sent_before = nonce(&relayer_account).await;
    let garbage = tampered_relay(&close, &clearance, |c| {
        c.proof.a = (c.proof.a + c.proof.a).into();
    });
    assert_refused(
        relayer_account.relay_close(&garbage).await,
        ContractError::InvalidProof,
    );
    assert_eq!(
        nonce(&relayer_account).await,
        sent_before,
        "nothing was sent"
    );
    assert!(!w.user.is_known_root(root).await.expect("view"));

    // The real one: the relay commits the root, then closes.
    let out = relayer_account
        .relay_close(
            &RelayedClose::decode(&RelayedClose::encode(&close, &clearance)).expect("decode"),
        )
        .await
        .expect("relay");
    assert_eq!(out.to_relayer, U256::from(10) * w.unit());
    assert!(w.user.is_known_root(root).await.expect("view"));
    assert_eq!(nonce(&relayer_account).await, sent_before + 2);
}

#[tokio::test]
async fn a_stale_unilateral_close_with_a_relay_fee_is_challenged_with_its_bound_x_w() {
    let mut w = World::new(13, |_| {}).await;
    let mut note = w.deposit(30_000).await;
    w.spend(&mut note, 3, 0, 0);
    let root = w.commit().await;
    let stale = note.history[1];
    let to = ClosePayout::relayed(
        payout_address(&mut w.rng),
        w.chain.address(4),
        Credits::new(250),
    );
    let close = w.prove_to(&note, Some(&stale), root, to, false);
    let pending = w.user.close_unilateral(&close).await.expect("close");
    assert_eq!(pending.x_w, w.user.withdrawal_x(to).await.expect("x_w"));
    let stored = w
        .user
        .pending_close(close.nc())
        .await
        .expect("view")
        .expect("pending");
    assert_eq!(stored.to, to);
    let recovered = rln::recover(
        note.shares[1],
        rln::Share {
            x: pending.x_w,
            y: pending.y_w,
        },
    )
    .expect("distinct x");
    assert_eq!(recovered.k, note.secret.expose());
    w.provider
        .challenge(close.nc(), recovered.k, recovered.slope)
        .await
        .expect("challenge");
    assert!(w.user.closed_or_slashed(close.nc()).await.expect("view"));
}
