#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what the tests need
# (npm packages: solc, anvil, circomlibjs, snarkjs; the openai Python SDK in .demo/venv), checks
# that committed generated files are fresh, then runs the Rust test suite.
# Usage: scripts/test.sh [cargo test args...]
#
# The JavaScript part (installs, contract tests, vectors) and the Python venv run in the
# background while cargo builds the tests: they wait on the network and the disk more
# than on the cores, and a cold build is most of the time.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

outside_tools() {
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
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
step "npm packages, contract tests, test vectors and the Python venv (in the background; output below)"
outside_tools > "$log" 2>&1 &
tools=$!

step "Rust test build"
build_status=0
cargo test --workspace --locked --no-run || build_status=$?

tools_status=0
wait "$tools" || tools_status=$?
cat "$log"
if [ "$tools_status" -ne 0 ]; then
    echo "the npm, contract, vector or venv step above failed (exit $tools_status)" >&2
    exit "$tools_status"
fi
if [ "$build_status" -ne 0 ]; then
    exit "$build_status"
fi

# The crates above `circuits` build at opt-level 0 in the dev profile; that is only
# fast because they instantiate none of the arkworks generics that prove (docs/
# ARCHITECTURE.md, "Build profiles"). A new generic entry point into the prover would
# bring the MSMs or FFTs into them, unoptimised, and slow their tests several times over.
step "the crates above circuits instantiate no MSM or FFT"
heavy='ark_ec::scalar_mul::variable_base|ark_poly::domain::radix2'
command -v nm > /dev/null || { echo "nm (binutils) is needed for this check" >&2; exit 1; }
for crate in chain gateway client; do
    # The newest: a target directory kept from older builds holds stale ones too.
    rlib=$(ls -t target/debug/deps/libzkcredits_"$crate"-*.rlib | head -1)
    symbols=$(nm -C --defined-only "$rlib" 2>/dev/null) || true
    if ! grep -q "zkcredits_$crate" <<< "$symbols"; then
        echo "cannot read the symbols of $rlib" >&2
        exit 1
    fi
    if grep -qE "$heavy" <<< "$symbols"; then
        echo "$rlib instantiates arkworks' MSM or FFT code (at opt-level 0): call a non-generic function of circuits instead" >&2
        grep -E "$heavy" <<< "$symbols" | head -5 >&2
        exit 1
    fi
done

step "Rust tests (real proofs, real anvil chains)"
if [ "$#" -gt 0 ]; then
    cargo test --workspace --locked "$@"
    exit
fi
# The snarkjs ceremony test spends two minutes in node (snarkjs' phase 2 for both
# circuits), and cargo runs test binaries one after another: it runs beside the rest of
# the suite instead, whose proofs and chains leave cores idle while they wait on each
# other. Its output follows the others'.
ceremony_test=ceremony::a_two_contributor_snarkjs_ceremony_gives_keys_that_prove_verify_and_close_on_chain
ceremony_log=$(mktemp)
trap 'rm -f "$log" "$ceremony_log"' EXIT
cargo test --workspace --locked --test cli -- --exact "$ceremony_test" > "$ceremony_log" 2>&1 &
ceremony=$!
rest_status=0
cargo test --workspace --locked -- --skip "$ceremony_test" || rest_status=$?
ceremony_status=0
wait "$ceremony" || ceremony_status=$?
step "the snarkjs ceremony test (run beside the others; its output)"
cat "$ceremony_log"
if [ "$ceremony_status" -ne 0 ]; then
    echo "the ceremony test failed (exit $ceremony_status)" >&2
    exit "$ceremony_status"
fi
if ! grep -q "test result: ok. 1 passed" "$ceremony_log"; then
    echo "the ceremony test did not run (renamed? update ceremony_test in $0)" >&2
    exit 1
fi
exit "$rest_status"
