#!/usr/bin/env bash
# Core control-plane latency: netloom vs Docker's dockerd (Debian docker.io 20.10), side by side.
#
# Each sample is the wall time of ONE CLI invocation (`netloom ...` / `/usr/bin/docker ...`),
# so it includes the client's own start-up; the `version` rows give that floor per engine.
#   network create (bridge, default pool) / network rm          N times each
#   network connect / disconnect of a running ctr to a 2nd bridge N times each
#   run --rm --network <user bridge> IMG true                     NRUN times
#   run --rm --network none IMG true                              NRUN times
# Both daemons run, one after the other, in their own private netns (entered with
# `nsenter --net`, not `ip netns exec`, so /sys/fs/cgroup stays the host's) with all state
# under a temp dir; the image is the same busybox-static rootfs tarball for both.
# Approach (dockerd flags, subreaper, cleanup) follows /work/shared/lab/peers/04_docker_libnetwork.sh.
#
# Usage (root): bench/core.sh            (netloomd on its embedded store file)
#               STORE=etcd bench/core.sh  (netloomd on an etcd it starts in its netns,
#                                          --cluster-store etcd://127.0.0.1:2379)
# Env: N=20 NRUN=10 TIMER=epoch|date NETLOOMD=<path> NETLOOM=<path> DOCKERD=<path>
#      STORE=embedded|etcd SKIP_DOCKER=1 SKIP_NETLOOM=1
#      RESULTS=<file>  (also write the markdown table there)
set -euo pipefail
# containerd-shims (and netloom shims) daemonize: be a subreaper so orphans are reaped here
# (PID 1 in this machine does not reap) and so cleanup can find them by parent pid.
if [ -z "${NLB_SUBREAPER:-}" ] && command -v python3 >/dev/null; then
  export NLB_SUBREAPER=1
  exec python3 -c 'import ctypes,os,sys; ctypes.CDLL(None).prctl(36,1,0,0,0); os.execvp(sys.argv[1], sys.argv[1:])' bash "$0" "$@"
fi
[ "$(id -u)" = 0 ] || { echo "core.sh: run as root" >&2; exit 1; }

N=${N:-20}; NRUN=${NRUN:-10}; TIMER=${TIMER:-epoch}; STORE=${STORE:-embedded}
case $STORE in embedded|etcd) ;; *) echo "core.sh: STORE=$STORE: use embedded or etcd" >&2; exit 2;; esac
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
TAG=nlb$$                       # unique per run: netns names, cgroup parent, temp dir
D=/tmp/nlbench.$$
NS_DK=$TAG-dk; NS_NL=$TAG-nl
DK=/usr/bin/docker              # Debian's 20.10 client (not any other docker on PATH)
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
DK_SOCK=$D/dk/docker.sock
NL_SOCK=$D/nl/exec/netloom.sock
IMGNAME=bbx

# ---------------- packages ----------------
export DEBIAN_FRONTEND=noninteractive
need=()
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || need+=(docker.io)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v jq >/dev/null || need+=(jq)
command -v bc >/dev/null || need+=(bc)
[ "$STORE" = etcd ] && { command -v etcd >/dev/null || need+=(etcd-server); }
# /usr/sbin/policy-rc.d exits 101 here: installing docker.io does not start a system dockerd
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; } ||
    echo "WARNING: apt-get install ${need[*]} failed"
fi

# ---------------- netloom binaries (release preferred) ----------------
if [ -z "${NETLOOMD:-}" ]; then
  if [ -x "$REPO/target/release/netloomd" ] && [ -x "$REPO/target/release/netloom" ]; then
    NETLOOMD=$REPO/target/release/netloomd; NETLOOM=$REPO/target/release/netloom; NL_BUILD=release
  else
    NETLOOMD=$REPO/target/debug/netloomd; NETLOOM=$REPO/target/debug/netloom; NL_BUILD=debug
  fi
fi
NETLOOM=${NETLOOM:-$(dirname "$NETLOOMD")/netloom}; NL_BUILD=${NL_BUILD:-custom}

# ---------------- cleanup ----------------
DOCKERD_PID=""; NETLOOMD_PID=""; ETCD_PID=""
# dockerd/containerd create these fixed paths regardless of --exec-root; remove them afterwards
# (only if empty and absent when we started)
# kill_wait, children, stop_docker, stop_netloom, note_new_rundirs
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
note_new_rundirs
cleanup() {
  local rc=$?
  set +e; trap - EXIT INT TERM
  stop_docker; stop_netloom
  [ -n "$ETCD_PID" ] && kill_wait "$ETCD_PID"
  # leftover shims / container processes were re-parented to us (subreaper): kill them by pid
  local i p m
  for i in 1 2 3 4 5; do
    children; [ ${#KIDS[@]} -eq 0 ] && break
    for p in "${KIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    sleep 0.2; wait 2>/dev/null
  done
  # unmount anything the daemons left under $D (netns bind mounts, overlay, shm), deepest first
  for m in $(awk -v d="$D/" 'index($2,d)==1{print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  ip netns del $NS_DK 2>/dev/null; ip netns del $NS_NL 2>/dev/null
  # the cgroup parent dockerd used (cgroup v1: one per controller; v2: one dir)
  # and netloomd's (/$TAG-nl), with any container cgroup left under it
  for m in /sys/fs/cgroup/*/$TAG /sys/fs/cgroup/$TAG /sys/fs/cgroup/*/$TAG-nl /sys/fs/cgroup/$TAG-nl; do
    [ -d "$m" ] || continue
    for c in "$m"/*/; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
    rmdir "$m" 2>/dev/null
  done
  for m in "${NEWDIRS[@]}"; do [ -d "$m" ] && rmdir "$m" 2>/dev/null; done
  rm -rf "$D"
  # leak check
  local leaks=()
  children; [ ${#KIDS[@]} -eq 0 ] || leaks+=("processes ${KIDS[*]}")
  ip netns list 2>/dev/null | grep -q "^$TAG-" && leaks+=("netns $(ip netns list | grep "^$TAG-" | tr '\n' ' ')")
  grep -q " $D/" /proc/mounts && leaks+=("mounts under $D")
  ls -d /sys/fs/cgroup/*/$TAG /sys/fs/cgroup/$TAG >/dev/null 2>&1 && leaks+=("cgroup $TAG")
  ls -d /sys/fs/cgroup/*/$TAG-nl /sys/fs/cgroup/$TAG-nl >/dev/null 2>&1 && leaks+=("cgroup $TAG-nl")
  [ -e "$D" ] && leaks+=("dir $D")
  if [ ${#leaks[@]} -eq 0 ]; then echo "cleanup: ok (no netns, mounts, processes, cgroups or files left)"
  else echo "cleanup: LEFT OVER: ${leaks[*]}" >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------- timing helpers ----------------
if [ "$TIMER" = date ]; then now_us() { local t; t=$(date +%s%N); NOW=$((t / 1000)); }
else now_us() { local t=${EPOCHREALTIME/./}; NOW=$((10#$t)); }; fi   # bash 5: no fork
declare -A FAILS
timeit() { # key cmd... : append wall-time (us) of one run of cmd to $D/<key>.us
  local k=$1 t0 rc=0; shift
  now_us; t0=$NOW
  "$@" >/dev/null 2>>"$D/err.log" || rc=$?
  now_us
  if [ $rc -eq 0 ]; then echo $((NOW - t0)) >> "$D/$k.us"
  else FAILS[$k]=$(( ${FAILS[$k]:-0} + 1 )); echo "  FAILED ($rc): $*" >&2; fi
}
# median / p90 in ms of a sample file (p90 = nearest-rank)
stat_of() { # file -> "median p90 n"
  [ -s "$1" ] || { echo "- - 0"; return; }
  sort -g "$1" | awk '{a[NR]=$1/1000} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; i=int(NR*0.9); if (i<NR*0.9) i++; printf "%.2f %.2f %d\n", m, a[i], NR}'
}

# ---------------- one engine's sequence ----------------
must() { "$@" >/dev/null 2>>"$D/err.log" || { echo "  setup step failed: $*" >&2; return 1; }; }
bench_engine() { # prefix cli...   (returns 1 if an untimed setup step fails)
  local e=$1; shift; local C=("$@") i a b
  must "${C[@]}" version || return 1                          # warm the client binary
  for i in $(seq $N); do timeit $e.version "${C[@]}" version; done
  for i in $(seq $N); do timeit $e.ncreate "${C[@]}" network create nlb$i; done
  for i in $(seq $N); do timeit $e.nrm "${C[@]}" network rm nlb$i; done
  must "${C[@]}" network create nlbnet || return 1
  must "${C[@]}" network create nlbnet2 || return 1
  must "${C[@]}" run -d --name nlbsrv --network nlbnet $IMGNAME sleep 36000 || return 1
  # sanity: connect really plumbs a second interface, disconnect removes it
  must "${C[@]}" network connect nlbnet2 nlbsrv || return 1
  a=$("${C[@]}" exec nlbsrv ip -4 addr show 2>>"$D/err.log" | grep 'inet ' | grep -vc ' 127\.' || true)
  must "${C[@]}" network disconnect nlbnet2 nlbsrv || return 1
  b=$("${C[@]}" exec nlbsrv ip -4 addr show 2>>"$D/err.log" | grep 'inet ' | grep -vc ' 127\.' || true)
  echo "  sanity: non-loopback IPv4 addrs in nlbsrv: $a after connect, $b after disconnect (expect 2, 1)"
  [ "$a" = 2 ] && [ "$b" = 1 ] || SANITY+=("$e: connect/disconnect plumbing $a/$b (expected 2/1)")
  for i in $(seq $N); do
    timeit $e.nconn "${C[@]}" network connect nlbnet2 nlbsrv
    timeit $e.ndisc "${C[@]}" network disconnect nlbnet2 nlbsrv
  done
  must "${C[@]}" run --rm --network none $IMGNAME true || return 1   # warm-up, untimed (both engines)
  for i in $(seq $NRUN); do timeit $e.run_br "${C[@]}" run --rm --network nlbnet $IMGNAME true; done
  for i in $(seq $NRUN); do timeit $e.run_none "${C[@]}" run --rm --network none $IMGNAME true; done
  must "${C[@]}" rm -f nlbsrv || return 1
  must "${C[@]}" network rm nlbnet nlbnet2 || return 1
}
SANITY=()

rm -rf "$D"; mkdir -p "$D/dk" "$D/nl" "$D/bin"; : > "$D/err.log"
echo "{\"deprecated-key-path\": \"$D/dk/key.json\"}" > "$D/dk/daemon.json"   # else /etc/docker/key.json
echo '{"dns": ["127.0.0.1"]}' > "$D/nl/daemon.json"   # same as dockerd --dns 127.0.0.1 below

# ---------------- image: busybox-static rootfs ----------------
RF=$D/rootfs; mkdir -p $RF/bin $RF/etc $RF/tmp $RF/proc $RF/sys $RF/dev
cp /bin/busybox $RF/bin/busybox
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox $RF/bin/$a; done
tar -C $RF -cf $D/rootfs.tar .

NL_STATUS=skipped; DK_STATUS=skipped
NL_VER=-; DK_VER=-
echo "== netloom vs dockerd core latency: N=$N NRUN=$NRUN timer=$TIMER store=$STORE, $(nproc) vCPU, kernel $(uname -r)"

# ---------------- netloom ----------------
if [ -z "${SKIP_NETLOOM:-}" ]; then
  if [ -x "$NETLOOMD" ] && [ -x "$NETLOOM" ]; then
    # private copies: the shared target dir may be rebuilt under us mid-run
    cp "$NETLOOMD" "$D/bin/netloomd"; cp "$NETLOOM" "$D/bin/netloom"
    NL_BIN=$D/bin/netloom
    ip netns add $NS_NL && ip -n $NS_NL link set lo up
    STORE_ARGS=()
    if [ "$STORE" = etcd ]; then
      # etcd inside netloomd's netns: 127.0.0.1:2379 there, nothing listens on the host
      nsenter --net=/run/netns/$NS_NL etcd --name nlb --data-dir $D/nl/etcd \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster nlb=http://127.0.0.1:2380 > $D/nl/etcd.log 2>&1 &
      ETCD_PID=$!
      for _ in $(seq 200); do grep -q "ready to serve client requests" $D/nl/etcd.log && break; sleep 0.1; done
      grep -q "ready to serve client requests" $D/nl/etcd.log || echo "WARNING: etcd not ready: $(tail -3 $D/nl/etcd.log)"
      echo "etcd $(etcd --version | awk 'NR==1{print $3}') up in netloomd's netns"
      STORE_ARGS=(--cluster-store etcd://127.0.0.1:2379)
    fi
    now_us; t0=$NOW
    # Containers' cgroups under a parent of this run's own (older builds lack the flag).
    NL_CG=(); "$D/bin/netloomd" --help 2>/dev/null | grep -q -- --cgroup-parent && NL_CG=(--cgroup-parent /$TAG-nl)
    nsenter --net=/run/netns/$NS_NL "$D/bin/netloomd" --data-root $D/nl/data --exec-root $D/nl/exec \
      --config-file $D/nl/daemon.json "${STORE_ARGS[@]}" "${NL_CG[@]}" > $D/nl/netloomd.log 2>&1 &
    NETLOOMD_PID=$!
    for _ in $(seq 120); do $NL_BIN -H unix://$NL_SOCK version >/dev/null 2>&1 && break; kill -0 $NETLOOMD_PID 2>/dev/null || break; sleep 0.1; done
    if $NL_BIN -H unix://$NL_SOCK version >/dev/null 2>&1; then
      now_us; echo "netloomd ($NL_BUILD build) up in $(( (NOW - t0) / 1000 )) ms"
      NL_VER=$($NL_BIN -H unix://$NL_SOCK version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
      echo "-- netloom: running sequence"
      if ! must $NL_BIN -H unix://$NL_SOCK image import -c 'CMD ["/bin/sh"]' $D/rootfs.tar $IMGNAME; then NL_STATUS="image import failed"
      elif bench_engine nl $NL_BIN -H unix://$NL_SOCK; then NL_STATUS=ok; else NL_STATUS="sequence failed (see above)"; fi
    else
      NL_STATUS="netloomd did not start: $(tail -3 $D/nl/netloomd.log | tr '\n' ' ')"
    fi
    stop_netloom
    [ -n "$ETCD_PID" ] && { kill_wait "$ETCD_PID"; ETCD_PID=""; }
  else
    NL_STATUS="no netloom binaries at $NETLOOMD / $NETLOOM (cargo build --release -p netloom-daemon -p netloom-cli)"
  fi
  echo "netloom: $NL_STATUS"
fi

# ---------------- dockerd ----------------
if [ -z "${SKIP_DOCKER:-}" ]; then
  if [ -x "$DOCKERD" ] && [ -x $DK ] && command -v containerd >/dev/null && command -v runc >/dev/null; then
    ip netns add $NS_DK && ip -n $NS_DK link set lo up
    now_us; t0=$NOW
    nsenter --net=/run/netns/$NS_DK "$DOCKERD" --config-file $D/dk/daemon.json \
      --data-root $D/dk/root --exec-root $D/dk/exec -H unix://$DK_SOCK --pidfile $D/dk/docker.pid \
      --containerd-namespace $TAG --containerd-plugins-namespace $TAG-plugins \
      --cgroup-parent /$TAG \
      --dns 127.0.0.1 > $D/dk/dockerd.log 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 240); do $DK -H unix://$DK_SOCK version >/dev/null 2>&1 && break; kill -0 $DOCKERD_PID 2>/dev/null || break; sleep 0.25; done
    if $DK -H unix://$DK_SOCK version >/dev/null 2>&1; then
      now_us; echo "dockerd up in $(( (NOW - t0) / 1000 )) ms; $($DK -H unix://$DK_SOCK info --format 'storage={{.Driver}} cgroup={{.CgroupDriver}}/v{{.CgroupVersion}}' 2>/dev/null)"
      DK_VER=$($DK -H unix://$DK_SOCK version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
      echo "-- docker: running sequence"
      if ! must $DK -H unix://$DK_SOCK import -c 'CMD ["/bin/sh"]' $D/rootfs.tar $IMGNAME; then DK_STATUS="image import failed"
      elif bench_engine dk $DK -H unix://$DK_SOCK; then DK_STATUS=ok; else DK_STATUS="sequence failed (see above)"; fi
    else
      kill -0 $DOCKERD_PID 2>/dev/null && why="no API after 60 s" || { wait $DOCKERD_PID; why="dockerd exited with status $?"; } || true
      DK_STATUS="dockerd did not start ($why); last log lines: $(tail -3 $D/dk/dockerd.log | tr '\n' ' ')"
    fi
    stop_docker
  else
    DK_STATUS="docker.io/containerd/runc not installed (apt-get install -y --no-install-recommends docker.io containerd runc)"
  fi
  echo "docker: $DK_STATUS"
fi

# ---------------- table ----------------
OPS=(version ncreate nrm nconn ndisc run_br run_none)
declare -A LABEL=(
  [version]="version (CLI floor)"
  [ncreate]="network create (bridge, default pool)"
  [nrm]="network rm"
  [nconn]="network connect (running ctr, 2nd bridge)"
  [ndisc]="network disconnect"
  [run_br]="run --rm --network <user bridge> true"
  [run_none]="run --rm --network none true"
)
TABLE=$D/table.md
{
  echo "| operation | n | netloom median | netloom p90 | docker median | docker p90 | docker/netloom (median) | ≥10× | ratio minus CLI floors |"
  echo "|---|---:|---:|---:|---:|---:|---:|:---:|---:|"
} > $TABLE
read -r NLF _ _ < <(stat_of $D/nl.version.us); read -r DKF _ _ < <(stat_of $D/dk.version.us)
PASSN=0; MISSN=0
for op in "${OPS[@]}"; do
  read -r nm np nn < <(stat_of $D/nl.$op.us)
  read -r dm dp dn < <(stat_of $D/dk.$op.us)
  n=$nn; [ "$nn" = 0 ] && n=$dn
  fl=""; [ -n "${FAILS[nl.$op]:-}" ] && fl+=" nl:${FAILS[nl.$op]} failed"; [ -n "${FAILS[dk.$op]:-}" ] && fl+=" dk:${FAILS[dk.$op]} failed"
  ratio=-; verdict=-; net=-
  if [ "$nm" != - ] && [ "$dm" != - ]; then
    ratio=$(awk -v d=$dm -v n=$nm 'BEGIN{printf "%.1f×", d/n}')
    if [ $op != version ]; then
      verdict=$(awk -v d=$dm -v n=$nm 'BEGIN{print (d >= 10*n) ? "PASS" : "MISS"}')
      [ $verdict = PASS ] && PASSN=$((PASSN+1)) || MISSN=$((MISSN+1))
      net=$(awk -v d=$dm -v n=$nm -v df=$DKF -v nf=$NLF 'BEGIN{a=d-df; b=n-nf; if (b<=0.05) printf "n/a"; else printf "%.1f×", a/b}')
    fi
  elif [ $op != version ]; then verdict="n/a"; fi
  echo "| ${LABEL[$op]}${fl} | $n | $nm | $np | $dm | $dp | $ratio | $verdict | $net |" >> $TABLE
done

echo
echo "== results (ms per CLI invocation; median / p90 nearest-rank) =="
echo "netloom $NL_VER ($NL_BUILD build: $NETLOOMD, store: $STORE) — $NL_STATUS"
echo "docker  $DK_VER (client $($DK --version 2>/dev/null | awk '{print $3}' | tr -d ,), containerd $(containerd --version 2>/dev/null | awk '{print $3}'), runc $(runc --version 2>/dev/null | awk 'NR==1{print $3}')) — $DK_STATUS"
echo "timer: $TIMER ($( [ "$TIMER" = date ] && echo 'date +%s%N, includes ~1 ms fork of date' || echo 'bash $EPOCHREALTIME, no fork'))"
echo
cat $TABLE
echo
echo "target ≥10× docker/netloom on medians: $PASSN PASS, $MISSN MISS"
for s in "${SANITY[@]}"; do echo "SANITY FAILURE: $s"; done
if [ -s $D/err.log ]; then echo "--- stderr of failed/ noisy invocations (last 10 lines) ---"; tail -10 $D/err.log; fi
if [ -n "${RESULTS:-}" ]; then cp $TABLE "$RESULTS"; echo "table written to $RESULTS"; fi
