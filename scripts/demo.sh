#!/usr/bin/env bash
# What can be shown end to end today: build the release binary, run the development
# key setup, and measure the request circuit on this machine (real keys, real proofs).
# The full demo (devnet, gateway, proxy, 200 paid requests, slash, close) arrives with
# the client issue and will replace this script's body.
set -euo pipefail
cd "$(dirname "$0")/.."
export ZKCREDITS_HOME="${ZKCREDITS_HOME:-$PWD/.zkcredits}"
cargo build --release --locked -p zkcredits
./target/release/zkcredits setup
./target/release/zkcredits bench circuits
