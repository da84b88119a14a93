//! Fixtures shared by the circuit tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Once, OnceLock};

use ark_relations::gr1cs::trace::{ConstraintLayer, TracingMode};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem};
use ark_std::rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tracing_subscriber::layer::SubscriberExt;
use zkcredits_circuits::keys;
use zkcredits_circuits::prover::RequestProver;
use zkcredits_circuits::request::RequestCircuit;
pub use zkcredits_circuits::sample::{LIMITS, SampleNote};
use zkcredits_circuits::statement::StatementKind;
use zkcredits_circuits::verifier::Verifier;
use zkcredits_protocol::Fr;

/// The request prover of the development keys, loaded once per test binary.
pub fn prover() -> &'static RequestProver {
    static PROVER: OnceLock<RequestProver> = OnceLock::new();
    PROVER.get_or_init(|| {
        let dir = zkcredits_circuits::testing::dev_keys_dir();
        RequestProver::new(keys::load_proving_key(dir).expect("load")).expect("prover")
    })
}

/// A request prover of keys set up from another seed, made once per test binary (a
/// setup takes seconds): what it precomputes or proves, the development keys refuse.
pub fn other_prover() -> &'static RequestProver {
    static PROVER: OnceLock<RequestProver> = OnceLock::new();
    PROVER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("zkcredits-other-keys-{}", std::process::id()));
        // The request keys alone: the close keys of this seed serve no test.
        keys::setup_circuit(StatementKind::Request, &dir, [9u8; 32], &mut |_| {}).expect("setup");
        let prover =
            RequestProver::new(keys::load_proving_key(&dir).expect("load")).expect("prover");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        prover
    })
}

/// The verifier of the development request key.
pub fn verifier() -> Verifier {
    Verifier::new(prover().keys().verifying_key())
}

/// A deterministic RNG, one stream per seed.
pub fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

// Not every test file uses every fixture.
const _: zkcredits_protocol::state::Limits = LIMITS;

/// `c + n` credit units, for tampering with a public amount.
pub fn plus(
    c: zkcredits_protocol::credits::Credits,
    n: u64,
) -> zkcredits_protocol::credits::Credits {
    c.checked_add(zkcredits_protocol::credits::Credits::new(n))
        .expect("test amounts are small")
}

/// `c - n` credit units, for tampering with a public amount.
pub fn minus(
    c: zkcredits_protocol::credits::Credits,
    n: u64,
) -> zkcredits_protocol::credits::Credits {
    c.checked_sub(zkcredits_protocol::credits::Credits::new(n))
        .expect("test amounts are large enough")
}

/// A note in a tree of 7 after `requests` requests refunded `refund` each.
pub struct Fixture(pub SampleNote);

impl Fixture {
    pub fn new(deposit: u64, requests: u64, refund: u64) -> Self {
        Self(SampleNote::new(
            7,
            zkcredits_protocol::credits::Credits::new(deposit),
            requests,
            zkcredits_protocol::credits::Credits::new(refund),
        ))
    }

    pub fn circuit(&self) -> RequestCircuit {
        self.0.circuit().expect("solvent sample")
    }

    pub fn circuit_unchecked(&self) -> RequestCircuit {
        self.0.circuit_unchecked().expect("sample circuit")
    }
}

impl std::ops::Deref for Fixture {
    type Target = SampleNote;
    fn deref(&self) -> &SampleNote {
        &self.0
    }
}

impl std::ops::DerefMut for Fixture {
    fn deref_mut(&mut self) -> &mut SampleNote {
        &mut self.0
    }
}

/// The namespace path of the first unsatisfied constraint of `circuit`, or `None` when
/// all hold.
///
/// arkworks names the failing constraint from tracing spans, so a subscriber with its
/// `ConstraintLayer` must see them. It is installed once, globally, for the whole test
/// binary: tracing caches each callsite's interest process-wide, and with a subscriber
/// per thread (`with_default`) a namespace first reached by another test's thread (a
/// proof being made alongside, with no subscriber) could be cached as of no interest,
/// leaving a soundness test with no names ("Constraint trace requires
/// `ConstraintLayer`"). The interest cache is rebuilt before each synthesis for the same
/// reason.
pub fn broken_rule(circuit: impl ConstraintSynthesizer<Fr>) -> Option<String> {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::Registry::default()
            .with(ConstraintLayer::new(TracingMode::OnlyConstraints));
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in the circuits tests");
    });
    tracing::callsite::rebuild_interest_cache();
    let cs = ConstraintSystem::<Fr>::new_ref();
    circuit.generate_constraints(cs.clone()).expect("synthesis");
    cs.which_is_unsatisfied().expect("prove mode")
}

/// Asserts that `circuit` is unsatisfied and that the first failure is inside `rule`.
pub fn assert_breaks(circuit: impl ConstraintSynthesizer<Fr>, rule: &str) {
    let trace = broken_rule(circuit).expect("the tampered witness must not satisfy the circuit");
    assert!(
        trace.contains(rule),
        "expected rule `{rule}` to fail, but the first failure is in {trace}"
    );
}
