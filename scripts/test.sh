#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what the tests need
# (npm packages: solc, anvil, circomlibjs, snarkjs; the openai Python SDK in .demo/venv), checks
# that committed generated files are fresh, then runs the Rust test suite.
# Usage: scripts/test.sh [cargo test args...]
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "npm packages (contracts: solc, anvil, Poseidon, LeanIMT; vectors: circomlibjs; ceremony: snarkjs)"
(cd contracts && npm ci --no-audit --no-fund --loglevel=error)
(cd vectors && npm ci --no-audit --no-fund --loglevel=error)
(cd ceremony && npm ci --no-audit --no-fund --loglevel=error)

step "contract artifacts are fresh (recompiled with the pinned solc)"
(cd contracts && npm run --silent check)

step "contract tests on anvil (node test runner)"
(cd contracts && npm test --silent)

step "outside test vectors are fresh (regenerated with circomlibjs and @zk-kit/eddsa-poseidon)"
(cd vectors && npm run --silent check)

step "Python virtual environment with the openai SDK (the request-path tests run it)"
mkdir -p .demo
if [ ! -x .demo/venv/bin/python ]; then
    python3 -m venv .demo/venv
fi
.demo/venv/bin/pip install --quiet --disable-pip-version-check 'openai==3.57.0'

step "Rust tests (real proofs, real anvil chains)"
cargo test --workspace --locked "$@"
