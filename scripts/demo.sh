#!/usr/bin/env bash
# What can be shown end to end today: build the release binary, run the development
# key setup, prove and verify real request proofs (with figures), and run real
# deposits, a root commit, a slash and violation records on a fresh anvil chain (with
# gas figures). The full demo (devnet, gateway, proxy, 200 paid requests, slash, close)
# arrives with the client issue and will replace this script's body.
set -euo pipefail
cd "$(dirname "$0")/.."
export ZKCREDITS_HOME="${ZKCREDITS_HOME:-$PWD/.zkcredits}"
(cd contracts && npm ci --no-audit --no-fund --loglevel=error)
cargo build --release --locked -p zkcredits
./target/release/zkcredits setup
./target/release/zkcredits bench circuits
./target/release/zkcredits bench chain
