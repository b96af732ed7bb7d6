#!/usr/bin/env bash
# Runs every test: unit tests, golden files, and the end-to-end suites that start
# netloomd in throwaway network namespaces. Needs root (CI runs it as root); with
# NETLOOM_REQUIRE_PRIV=1 a privileged test that cannot run fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUST_BACKTRACE=0
export NETLOOM_REQUIRE_PRIV="${NETLOOM_REQUIRE_PRIV:-1}"
cargo build --workspace --locked
cargo test --workspace --locked -- --test-threads="${NETLOOM_TEST_THREADS:-4}"
