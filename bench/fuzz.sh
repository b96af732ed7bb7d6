#!/usr/bin/env bash
# Runs the bounded random-input ("fuzz") tests for much longer than CI does.
#
#   crates/model    tests/fuzz.rs       port key / host port parsers   CI 1000000 inputs
#   crates/ipam     tests/fuzz_cidr.rs  pools and addresses            CI 300000 operations
#   crates/runtime  tests/fuzz_tar.rs   image::unpack, mutated tars    CI 2000 archives
#   tests           tests/fuzz_api.rs   Engine API, one daemon (root)  CI 300 requests
#
# Each target runs with NETLOOM_FUZZ_ITERS = MULT x its CI count (MULT=20), or ITERS
# for all of them, and the script prints iterations, wall time and the seed per target.
# Failing targets are listed at the end (exit 1); re-run one with its printed seed:
#   NETLOOM_FUZZ_SEED=<seed> NETLOOM_FUZZ_ITERS=<n> cargo test -p <crate> --test <name>
#
# Usage: bench/fuzz.sh [target...]      targets: model ipam tar api (default: all)
# Env:   MULT=20 ITERS=<n> NETLOOM_FUZZ_SEED=<seed> PROFILE=dev|release
#        (the api target needs root; it prints SKIP otherwise)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
cd "$REPO"
MULT=${MULT:-20}; PROFILE=${PROFILE:-dev}
REL=(); [ "$PROFILE" = release ] && REL=(--release)

# name  package  test  CI-iterations
TARGETS=(
  "model netloom-model fuzz 1000000"
  "ipam netloom-ipam fuzz_cidr 300000"
  "tar netloom-runtime fuzz_tar 2000"
  "api netloom-e2e fuzz_api 300"
)
want=("$@")
selected() { [ ${#want[@]} -eq 0 ] && return 0; local w; for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

if selected api; then
  # The e2e test needs the daemon and CLI binaries.
  cargo build "${REL[@]}" --workspace -q || exit 1
fi

rows=(); failed=()
for t in "${TARGETS[@]}"; do
  read -r name pkg test ci <<<"$t"
  selected "$name" || continue
  n=${ITERS:-$((ci * MULT))}
  cargo test "${REL[@]}" -q -p "$pkg" --test "$test" --no-run || { failed+=("$name(build)"); continue; }
  log=$(mktemp)
  start=$(date +%s.%N)
  NETLOOM_FUZZ_ITERS=$n cargo test "${REL[@]}" -q -p "$pkg" --test "$test" -- --nocapture >"$log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')
  seed=$(grep -o 'seed=[0-9]*' "$log" | head -1 | cut -d= -f2)
  status=PASS
  if grep -q '^SKIP' "$log"; then status=SKIP; fi
  if [ $rc -ne 0 ]; then status=FAIL; failed+=("$name"); cp "$log" "/tmp/netloom-fuzz-$name.log"; fi
  grep -E '^fuzz_[a-z_]+: [0-9]+ ' "$log" | sed 's/^/  /'
  [ $status = FAIL ] && { echo "  $name FAILED, log: /tmp/netloom-fuzz-$name.log"; tail -20 "$log" | sed 's/^/  | /'; }
  rows+=("$(printf '| %-6s | %-32s | %10s | %8s | %-20s | %s |' "$name" "$pkg --test $test" "$n" "$secs" "${seed:-}" "$status")")
  rm -f "$log"
done

echo
printf '| %-6s | %-32s | %10s | %8s | %-20s | %s |\n' target test iterations "time s" seed result
echo '|--------|----------------------------------|------------|----------|----------------------|--------|'
for r in "${rows[@]}"; do echo "$r"; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
