#!/usr/bin/env bash
# The end-to-end demo on one machine: a local chain with the pool, a gateway in front of
# the chain's JSON-RPC and a test LLM, a wallet with 4 notes, 200+ paid requests from the
# unmodified OpenAI Python SDK and JSON-RPC through the local proxy, a double spend that
# gets slashed on chain, closes, and the chain's own account of where the money went.
# Installs what it needs: npm packages (solc, anvil) and, in a virtual environment under
# .demo/, the `openai` Python package.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "npm packages (anvil, solc)"
(cd contracts && npm ci --no-audit --no-fund --loglevel=error)

step "Python virtual environment with the openai SDK"
mkdir -p .demo
if [ ! -x .demo/venv/bin/python ]; then
    python3 -m venv .demo/venv
fi
.demo/venv/bin/pip install --quiet --disable-pip-version-check 'openai==3.57.0'

step "release build"
cargo build --release --locked -p zkcredits

step "demo"
export ZKCREDITS_HOME="$PWD/.demo/home"
rm -rf "$ZKCREDITS_HOME"
exec ./target/release/zkcredits demo --python .demo/venv/bin/python \
    --client-script scripts/demo_client.py "$@"
