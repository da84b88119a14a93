#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what the tests need
# (npm packages: solc, anvil, circomlibjs), checks that committed generated files are
# fresh, then runs the Rust test suite. Usage: scripts/test.sh [cargo test args...]
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "npm packages (contracts: solc, anvil, Poseidon, LeanIMT; vectors: circomlibjs)"
(cd contracts && npm ci --no-audit --no-fund --loglevel=error)
(cd vectors && npm ci --no-audit --no-fund --loglevel=error)

step "contract artifacts are fresh (recompiled with the pinned solc)"
(cd contracts && npm run --silent check)

step "contract tests on anvil (node test runner)"
(cd contracts && npm test --silent)

step "outside test vectors are fresh (regenerated with circomlibjs and @zk-kit/eddsa-poseidon)"
(cd vectors && npm run --silent check)

step "Rust tests (real proofs, real anvil chains)"
cargo test --workspace --locked "$@"
