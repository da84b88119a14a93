//! The user's side: wallet, note journal, prover cache, gateway client and the local
//! OpenAI-compatible proxy.
