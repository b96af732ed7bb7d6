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

# The core end-to-end suite and the short crash/concurrency run again, with every test
# daemon keeping its state in an etcd of its own (--cluster-store; tests/src/lib.rs).
NETLOOM_TEST_STORE=etcd cargo test --locked -p netloom-e2e --test core --test reliability \
  -- --test-threads="${NETLOOM_TEST_THREADS:-4}"

# docs/api.yaml must describe exactly the routes netloomd serves.
python3 scripts/check-openapi.py

# docker-py 7.1 compatibility suite (tests/python: one netloomd in its own netns, a few
# seconds). Runs in a venv under target/ so the system Python is left alone; without the
# venv module (Debian: python3-venv) it falls back to the current python3.
py=python3
venv=target/pytest-venv
if [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >/dev/null 2>&1; then
  py="$venv/bin/python"
else
  rm -rf "$venv"
  echo "== python3 -m venv unavailable; installing the test requirements into $(command -v python3)"
fi
"$py" -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt
rc=0
timeout -k 10 120 "$py" -m pytest -q -p no:cacheprovider tests/python || rc=$?
if [ "$rc" -eq 5 ]; then  # pytest: no tests collected
  if [ "$NETLOOM_REQUIRE_PRIV" = 1 ]; then
    echo "tests/python collected no tests, but NETLOOM_REQUIRE_PRIV=1 expects them" >&2
    exit 1
  fi
  echo "== tests/python: no tests collected"
  rc=0
fi
[ "$rc" -eq 0 ] || { echo "tests/python failed (exit $rc)" >&2; exit "$rc"; }
