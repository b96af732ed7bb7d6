#!/usr/bin/env bash
# Reliability figures for netloom, in one command (root):
#   (a) crash torture:  tests/tests/reliability.rs crash_anywhere_keeps_state_consistent, NETLOOM_CRASHES
#   (b) concurrency:    tests/tests/reliability.rs concurrent_requests_no_duplicates, NETLOOM_CONC_OPS
#   (c) memory churn:   one netloomd in its own netns (as bench/core.sh), CHURN_OPS CLI calls
#                       (network create/rm, run -d / rm -f, connect/disconnect, ps, network ls),
#                       netloomd VmRSS sampled every RSS_EVERY calls
#   (d) exposure:       tests/tests/exposure.rs (its "FIGURE" lines)
#   (e) bad input:      tests/tests/bad_input.rs (case count, failures)
# then a summary table of all figures.
#
# Usage (root): bench/reliability.sh
# Env: NETLOOM_CRASHES=100 NETLOOM_CONC_OPS=1000 NETLOOM_CONC_THREADS=8 NETLOOM_SEED=<n>
#      CHURN_OPS=10000 RSS_EVERY=1000
#      SKIP_BUILD=1 SKIP_CRASH=1 SKIP_CONC=1 SKIP_CHURN=1 SKIP_EXPOSURE=1 SKIP_BADINPUT=1
#      RESULTS=<file>  (also write the summary table there)
set -euo pipefail
# shims daemonize: be a subreaper so orphans are reaped here and cleanup finds them (as core.sh)
if [ -z "${NLB_SUBREAPER:-}" ] && command -v python3 >/dev/null; then
  export NLB_SUBREAPER=1
  exec python3 -c 'import ctypes,os,sys; ctypes.CDLL(None).prctl(36,1,0,0,0); os.execvp(sys.argv[1], sys.argv[1:])' bash "$0" "$@"
fi
[ "$(id -u)" = 0 ] || { echo "reliability.sh: run as root" >&2; exit 1; }

export NETLOOM_CRASHES=${NETLOOM_CRASHES:-100}
export NETLOOM_CONC_OPS=${NETLOOM_CONC_OPS:-1000}
CHURN_OPS=${CHURN_OPS:-10000}; RSS_EVERY=${RSS_EVERY:-1000}
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
TAG=nlr$$
D=/tmp/nlrel.$$
NS_NL=$TAG-nl
NL_SOCK=$D/nl/exec/netloom.sock
IMGNAME=bbx

# ---------------- packages ----------------
export DEBIAN_FRONTEND=noninteractive
need=()
[ -x /bin/busybox ] || need+=(busybox-static)
command -v runc >/dev/null || need+=(runc)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; } ||
    echo "WARNING: apt-get install ${need[*]} failed"
fi

# ---------------- cleanup (netloom half of core.sh's) ----------------
NETLOOMD_PID=""; NL_BIN=""
# kill_wait, children, stop_docker, stop_netloom, note_new_rundirs
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cleanup() {
  local rc=$?
  set +e; trap - EXIT INT TERM
  [ -n "${TEST_PID:-}" ] && kill_wait "$TEST_PID"   # a cargo test interrupted by Ctrl-C
  stop_netloom
  local i p m
  for i in 1 2 3 4 5; do
    children; [ ${#KIDS[@]} -eq 0 ] && break
    for p in "${KIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    sleep 0.2; wait 2>/dev/null
  done
  for m in $(awk -v d="$D/" 'index($2,d)==1{print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  ip netns del $NS_NL 2>/dev/null
  [ -n "${KEEP_LOGS:-}" ] && { mkdir -p "$KEEP_LOGS"; cp "$D"/*.log "$KEEP_LOGS"/ 2>/dev/null; echo "logs kept in $KEEP_LOGS"; }
  rm -rf "$D"
  local leaks=()
  children; [ ${#KIDS[@]} -eq 0 ] || leaks+=("processes ${KIDS[*]}")
  ip netns list 2>/dev/null | grep -q "^$TAG-" && leaks+=("netns $(ip netns list | grep "^$TAG-" | tr '\n' ' ')")
  grep -q " $D/" /proc/mounts && leaks+=("mounts under $D")
  [ -e "$D" ] && leaks+=("dir $D")
  if [ ${#leaks[@]} -eq 0 ]; then echo "cleanup: ok (no netns, mounts, processes or files left)"
  else echo "cleanup: LEFT OVER: ${leaks[*]}" >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$D"; mkdir -p "$D/nl" "$D/bin"; : > "$D/err.log"
declare -A FIG; ORDER=()
fig() { FIG[$1]=$2; ORDER+=("$1"); }   # key value
now_s() { local t=${EPOCHREALTIME/./}; NOW=$((10#$t / 1000)); }   # ms

echo "== netloom reliability: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) vCPU, kernel $(uname -r)"
echo "   crashes=$NETLOOM_CRASHES conc_ops=$NETLOOM_CONC_OPS churn_ops=$CHURN_OPS"

# ---------------- build ----------------
cd "$REPO"
if [ -z "${SKIP_BUILD:-}" ]; then
  echo "-- cargo build --workspace (debug)"
  cargo build --workspace 2>&1 | tail -2
  cargo test -p netloom-e2e --no-run 2>&1 | tail -1
fi

run_test() { # name logfile cargo-test-args... : runs in background so Ctrl-C cleanup can stop it
  local name=$1 log=$2; shift 2; local rc=0 t0
  now_s; t0=$NOW
  echo "-- $name: cargo test -p netloom-e2e $*"
  cargo test -p netloom-e2e "$@" > "$log" 2>&1 &
  TEST_PID=$!; wait $TEST_PID || rc=$?; TEST_PID=""
  now_s
  local res; res=$(grep -E '^test result:' "$log" | tail -1)
  echo "   rc=$rc in $(( (NOW - t0) / 1000 )) s; ${res:-no test result line}"
  [ $rc -eq 0 ] || { echo "   FAILED; last lines:"; tail -15 "$log" | sed 's/^/   | /'; }
  return $rc
}

# ---------------- (a) crash torture ----------------
if [ -z "${SKIP_CRASH:-}" ]; then
  L=$D/crash.log
  if run_test "crash torture (NETLOOM_CRASHES=$NETLOOM_CRASHES)" $L --test reliability crash_anywhere_keeps_state_consistent -- --exact --nocapture; then st=PASS; else st=FAIL; fi
  line=$(grep -E '^crash_anywhere: seed [0-9]+: ' $L | tail -1 || true)
  echo "   $line"
  fig "crash: result" "$st"
  fig "crash: kills -9 survived with consistent state" "$(grep -cE '^crash [0-9]+: consistent' $L || true) of $NETLOOM_CRASHES"
  fig "crash: requests (ok / refused / interrupted)" "$(sed -nE 's/.* ([0-9]+) requests: ([0-9]+) ok, ([0-9]+) refused.*, ([0-9]+) interrupted.*/\1 (\2 \/ \3 \/ \4)/p' <<<"$line")"
  fig "crash: seed, wall time" "$(sed -nE 's/^crash_anywhere: seed ([0-9]+):.*; ([0-9.]+ s)$/\1, \2/p' <<<"$line")"
fi

# ---------------- (b) concurrency ----------------
if [ -z "${SKIP_CONC:-}" ]; then
  L=$D/conc.log
  if run_test "concurrency (NETLOOM_CONC_OPS=$NETLOOM_CONC_OPS)" $L --test reliability concurrent_requests_no_duplicates -- --exact --nocapture; then st=PASS; else st=FAIL; fi
  line=$(grep -E '^concurrent: [0-9]+ ops by' $L | tail -1 || true)
  echo "   $line"
  fig "concurrency: result (no duplicates, no failed/unanswered)" "$st"
  fig "concurrency: ops, clients, wall" "$(sed -nE 's/^concurrent: ([0-9]+) ops by ([0-9]+) clients in ([0-9.]+ s).*/\1 ops, \2 clients, \3/p' <<<"$line")"
  fig "concurrency: throughput" "$(sed -nE 's/.*: ([0-9.]+ ops\/s),.*/\1/p' <<<"$line")"
  fig "concurrency: latency p50 / p99 / max" "$(sed -nE 's/.*p50 ([0-9.]+ ms), p99 ([0-9.]+ ms), max ([0-9.]+ ms).*/\1 \/ \2 \/ \3/p' <<<"$line")"
  fig "concurrency: duplicate checks" "$(sed -nE 's/.*; ([0-9]+) duplicate checks.*/\1/p' <<<"$line")"
fi

# ---------------- (c) memory churn ----------------
if [ -z "${SKIP_CHURN:-}" ]; then
  echo "-- memory churn: $CHURN_OPS CLI calls, VmRSS every $RSS_EVERY"
  NETLOOMD=$REPO/target/debug/netloomd; NETLOOM=$REPO/target/debug/netloom
  cp "$NETLOOMD" "$D/bin/netloomd"; cp "$NETLOOM" "$D/bin/netloom"; NL_BIN=$D/bin/netloom
  echo '{"dns": ["127.0.0.1"]}' > "$D/nl/daemon.json"
  RF=$D/rootfs; mkdir -p $RF/bin $RF/etc $RF/tmp $RF/proc $RF/sys $RF/dev
  cp /bin/busybox $RF/bin/busybox
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox $RF/bin/$a; done
  tar -C $RF -cf $D/rootfs.tar .
  ip netns add $NS_NL && ip -n $NS_NL link set lo up
  # nsenter --net without --fork execs netloomd: $! is netloomd's own pid
  nsenter --net=/run/netns/$NS_NL "$D/bin/netloomd" --data-root $D/nl/data --exec-root $D/nl/exec \
    --config-file $D/nl/daemon.json > $D/nl/netloomd.log 2>&1 &
  NETLOOMD_PID=$!
  NL=("$NL_BIN" -H unix://$NL_SOCK)
  for _ in $(seq 120); do "${NL[@]}" version >/dev/null 2>&1 && break; kill -0 $NETLOOMD_PID 2>/dev/null || break; sleep 0.1; done
  "${NL[@]}" version >/dev/null 2>&1 || { echo "netloomd did not start: $(tail -3 $D/nl/netloomd.log)"; exit 1; }
  echo "   netloomd pid $NETLOOMD_PID ($(cat /proc/$NETLOOMD_PID/comm))"
  "${NL[@]}" image import -c 'CMD ["/bin/sh"]' $D/rootfs.tar $IMGNAME >/dev/null
  "${NL[@]}" network create chbase >/dev/null
  rss() { awk '/^VmRSS:/{print $2}' /proc/$NETLOOMD_PID/status; }
  fds() { ls /proc/$NETLOOMD_PID/fd | wc -l; }
  OPS=0; CFAIL=0; RSS=(); RSS0=$(rss); FD0=$(fds)
  op() { # one CLI call = one operation; sample VmRSS every RSS_EVERY
    "${NL[@]}" "$@" >/dev/null 2>>"$D/err.log" || { CFAIL=$((CFAIL + 1)); echo "  FAILED: $*" >> "$D/err.log"; }
    OPS=$((OPS + 1))
    if [ $((OPS % RSS_EVERY)) -eq 0 ]; then
      RSS+=("$(rss)"); now_s
      printf '   %6d ops  VmRSS %6d KiB  fds %3d  %5.1f ops/s\n' $OPS "${RSS[-1]}" "$(fds)" \
        "$(awk -v n=$RSS_EVERY -v ms=$((NOW - TS)) 'BEGIN{print n*1000/ms}')"
      TS=$NOW
    fi
  }
  now_s; T0=$NOW; TS=$NOW; i=0
  while [ $OPS -lt $CHURN_OPS ]; do   # 8 calls per round
    i=$((i + 1))
    op network create ch$i
    op run -d --name c$i --network ch$i $IMGNAME sleep 3600
    op network connect chbase c$i
    op network disconnect chbase c$i
    op ps
    op network ls
    op rm -f c$i
    op network rm ch$i
  done
  now_s; CH_S=$(( (NOW - T0) / 1000 ))
  FD1=$(fds)
  LEFT_C=$("${NL[@]}" ps -aq | wc -l); LEFT_N=$("${NL[@]}" network ls -q | wc -l)
  stop_netloom
  first=${RSS[0]}; last=${RSS[-1]}
  echo "   RSS series (KiB, every $RSS_EVERY ops): ${RSS[*]}"
  echo "   start (after import) $RSS0 KiB; first sample $first -> last $last KiB: $((last - first)) KiB"
  fig "churn: CLI operations (failed)" "$OPS in $CH_S s, $(awk -v n=$OPS -v s=$CH_S 'BEGIN{printf "%.1f", n/s}') ops/s ($CFAIL failed)"
  fig "churn: VmRSS series KiB (every $RSS_EVERY ops)" "${RSS[*]}"
  fig "churn: VmRSS growth first→last sample" "$first → $last KiB ($(awk -v a=$first -v b=$last 'BEGIN{printf "%+d KiB, %+.1f%%", b-a, (b-a)*100/a}'))"
  fig "churn: VmRSS at start (idle, after import)" "$RSS0 KiB"
  fig "churn: netloomd fds start → end" "$FD0 → $FD1"
  fig "churn: left after churn (containers / networks incl. bridge/host/none + chbase)" "$LEFT_C / $LEFT_N"
fi

# ---------------- (d) exposure ----------------
if [ -z "${SKIP_EXPOSURE:-}" ]; then
  L=$D/exposure.log
  if run_test "exposure" $L --test exposure -- --nocapture --test-threads=1; then st=PASS; else st=FAIL; fi
  grep -oE 'FIGURE.*' $L | sed 's/^/   /' || true
  fig "exposure: result (all tests)" "$st; $(grep -E '^test result:' $L | tail -1 | sed -E 's/^test result: [a-zA-Z]+\. //; s/; finished.*//')"
  f=$(grep -oE 'FIGURE 2000 requests.*' $L || true)
  fig "exposure: 2000 requests, VmRSS / fds" "$(sed -nE 's/.*in ([^:]+): VmRSS ([0-9]+) KiB -> ([0-9]+) KiB \(([-+0-9]+) KiB\); fds ([0-9]+) -> ([0-9]+).*/\2 → \3 KiB (\4 KiB) in \1; fds \5 → \6/p' <<<"$f")"
  f=$(grep -oE 'FIGURE many connections.*' $L || true)
  fig "exposure: 600 idle connections" "$(sed -nE 's/.*raw _ping -> ([0-9]+) in ([^;]+); netloom version -> ([^;]+); answering again ([^;]+); .*daemon fds ([0-9]+) -> ([0-9]+) \(600 open\) -> ([0-9]+); VmRSS ([0-9]+) KiB -> ([0-9]+) KiB.*/_ping \1 in \2; version: \3; answering again \4; fds \5→\6→\7; VmRSS \8→\9 KiB/p' <<<"$f")"
  f=$(grep -oE 'FIGURE slowloris.*' $L || true)
  fig "exposure: slow client (header timeout)" "$(sed -nE 's/^FIGURE slowloris: cut off after ([^;]+); idle connection closed after ([^;]+); timeout ([^;]+); ([0-9]+) version.*slowest (.*)$/cut off after \1, idle closed after \2 (timeout \3); \4 rounds meanwhile, slowest \5/p' <<<"$f")"
  fig "exposure: socket" "$(grep -oE 'socket .* mode [0-7]+ [a-z:]+' $L | head -1)"
fi

# ---------------- (e) bad input ----------------
if [ -z "${SKIP_BADINPUT:-}" ]; then
  L=$D/badinput.log
  if run_test "bad input" $L --test bad_input -- --nocapture --test-threads=1; then st=PASS; else st=FAIL; fi
  fig "bad input: cases" "$(sed -nE 's/.*bad-input cases: (.*)/\1/p' $L | head -1)"
  fig "bad input: result" "$st; failures $(awk 'match($0, /group .* cases, [0-9]+ failures/){f+=$(NF-1)} END{print f+0}' $L)"
fi

# ---------------- summary ----------------
TABLE=$D/summary.md
{ echo "| figure | value |"; echo "|---|---|"
  for k in "${ORDER[@]}"; do echo "| $k | ${FIG[$k]:--} |"; done; } > $TABLE
echo; echo "== summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) vCPU, debug build) =="
cat $TABLE
if [ -s $D/err.log ]; then echo "--- stderr of failed CLI calls (last 10 lines) ---"; tail -10 $D/err.log; fi
if [ -n "${RESULTS:-}" ]; then cp $TABLE "$RESULTS"; echo "table written to $RESULTS"; fi
FAILED=$(for k in "${ORDER[@]}"; do echo "${FIG[$k]}"; done | grep -c '^FAIL' || true)
[ "$FAILED" = 0 ]
