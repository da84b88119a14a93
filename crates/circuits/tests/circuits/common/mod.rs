//! Fixtures shared by the circuit tests.

#![allow(dead_code, unreachable_pub)]

use zkcredits_circuits::request::RequestCircuit;
pub use zkcredits_circuits::sample::{LIMITS, SampleNote};

// Not every test file uses every fixture.
const _: zkcredits_protocol::state::Limits = LIMITS;

/// A note in a tree of 7 after `requests` requests refunded `refund` each.
pub struct Fixture(pub SampleNote);

impl Fixture {
    pub fn new(deposit: u64, requests: u64, refund: u64) -> Self {
        Self(SampleNote::new(7, deposit, requests, refund))
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
