//! Errors of the circuits crate.

use zkcredits_protocol::state::StateError;

/// What can go wrong building, proving or verifying, and loading keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CircuitError {
    /// The tree is deeper than the circuit's fixed number of levels.
    #[error("the tree has {depth} levels, the circuit proves at most {max}")]
    TreeTooDeep {
        /// The path's depth.
        depth: usize,
        /// The circuit's levels.
        max: usize,
    },
    /// The note cannot pay for this request (rule 4).
    #[error("the note cannot pay for another request: close it or use another note")]
    Insolvent,
    /// The note cannot close from this state (overdrawn, out of range).
    #[error(transparent)]
    Close(#[from] zkcredits_protocol::close::CloseError),
    /// The note state is invalid.
    #[error(transparent)]
    State(#[from] StateError),
    /// The witness does not satisfy the circuit: a bug or tampered inputs.
    #[error("the witness does not satisfy the circuit (rule: {0})")]
    Unsatisfied(String),
    /// A per-note precomputation was made for another note, root or key.
    #[error("the proving precomputation is for another note, root or key; recompute it")]
    StalePrecomputation,
    /// A ticket precomputation was made for another ticket, state, root or key (or
    /// another deployment's limits or receipt key).
    #[error(
        "the ticket precomputation is for another ticket, state, root or key; precompute the ticket again"
    )]
    StaleTicketPrecomputation,
    /// The request circuit does not take `x` only through `y = k + a x`, so its proofs
    /// cannot be finished from a ticket precomputation (a circuit change broke a
    /// condition of `docs/PROTOCOL.md §4`).
    #[error("the ticket precomputation does not apply to this circuit: {0}")]
    TicketShape(String),
    /// arkworks reported a synthesis error.
    #[error("constraint synthesis failed: {0}")]
    Synthesis(#[from] ark_relations::gr1cs::SynthesisError),
    /// A key file is missing, damaged or for another circuit.
    #[error("key file {path}: {reason}; run `zkcredits setup` to (re)create the keys")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// I/O while reading or writing keys.
    #[error("i/o on {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}
