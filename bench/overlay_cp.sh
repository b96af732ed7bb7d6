#!/usr/bin/env bash
# Overlay control plane, on the multi-host harness (tests/src/multihost.rs via
# target/*/netloom-multihost: simulated hosts in network namespaces on two L2 segments
# joined by a router, 198.18.0.0/15 underlay, 10.x overlays only). Two phases:
#
# (1) `run --rm --network ovl busybox true` on an attachable overlay, 2-node swarm
#     (node1 manager, node2 worker), netloom vs Docker's dockerd 20.10 swarm in the same
#     run, the same docker CLI driving both: median and p90 of RUNS_RM runs on each node,
#     side by side with the ratio docker/netloom. One warm-up run per node first (the
#     worker's lazy extension of the network, Docker's likewise). The same with
#     `--network none` on node1 is the runtime's floor (what the overlay adds is the
#     difference).
# (2) Convergence (netloom): NODES nodes (node1 manager, the others workers), an attachable
#     overlay 10.77.0.0/16; one long-lived "probe" container per node. Each of RUNS runs
#     picks a source node a and another node b (round robin), starts the clock, runs
#     `run -d --ip <fresh address>` on a and, as soon as it returns, pings the new address
#     from b's probe container (iputils ping in the probe's network namespace, every 10 ms,
#     until the first reply). Reported: p50/p99 of "first reply after the clock started"
#     and of `run -d` itself; the container is removed after each run.
#     Target: p99 <= 500 ms.
#
# Usage (root): bench/overlay_cp.sh
#   env: NODES=3 RUNS=10 (full size: NODES=10 RUNS=50), RUNS_RM=10, DOCKER=1 to include
#        dockerd (default on when /usr/sbin/dockerd exists), PHASES="rm conv".
#   Build first: cargo build --workspace --bins
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "overlay_cp.sh: run as root" >&2; exit 1; }
# containerd-shims daemonize: be a subreaper so they are reaped here, not left under PID 1
if [ -z "${PB_SUBREAPER:-}" ] && command -v python3 >/dev/null; then
  export PB_SUBREAPER=1
  exec python3 -c 'import ctypes,os,sys; ctypes.CDLL(None).prctl(36,1,0,0,0); os.execvp(sys.argv[1], sys.argv[1:])' bash "$0" "$@"
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
NODES=${NODES:-3}; RUNS=${RUNS:-10}; RUNS_RM=${RUNS_RM:-10}; PHASES=${PHASES:-rm conv}
DK=${DK:-/usr/local/bin/docker}
[ -x "$DK" ] || DK=$(command -v docker)
BIN=$REPO/target/release; [ -x "$BIN/netloom-multihost" ] || BIN=$REPO/target/debug
[ -x "$BIN/netloom-multihost" ] || { echo "build first: cargo build --workspace --bins" >&2; exit 1; }
DOCKER=${DOCKER:-$([ -x /usr/sbin/dockerd ] && echo 1 || echo 0)}
export DOCKER_CLI_HINTS=false
# the harness starts netloomd (and its helpers) from here (tests/src/lib.rs bin_dir)
export NETLOOM_BIN_DIR=${NETLOOM_BIN_DIR:-$BIN}
W=/tmp/nlocp.$$
mkdir -p "$W"
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
note_new_rundirs
MH_PID=""
cleanup() {
  set +e
  [ -n "$MH_PID" ] && { exec {MH[1]}>&- 2>/dev/null; wait "$MH_PID" 2>/dev/null; }
  for m in "${NEWDIRS[@]}"; do [ -d "$m" ] && rmdir "$m" 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s%N; }
ms() { echo "scale=1; ($(now)-$1)/1000000" | bc; }
# file -> "median p90" (or p99 with $2=99)
pct() { sort -g "$1" | awk -v q="${2:-90}" '{a[NR]=$1} END{ if (NR==0) {print "n/a n/a"; exit}
  m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; i=int(NR*q/100+0.999); if (i<1) i=1; if (i>NR) i=NR
  printf "%.1f %.1f\n", m, a[i] }'; }
declare -A R

# image: the busybox-static rootfs, imported into every engine
RF=$W/rootfs; mkdir -p $RF/bin $RF/etc $RF/tmp $RF/proc $RF/sys $RF/dev
cp /bin/busybox $RF/bin/busybox
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox $RF/bin/$a; done
tar -C $RF -cf $W/rootfs.tar .

harness() { # $1 = node count, $2 = extra args; starts the harness as a coprocess
  coproc MH { exec "$BIN/netloom-multihost" "$1" $2 2>&1; }
  NS=(); SOCK=(); ADDR=()
  while read -r -u "${MH[0]}" w i ns sock addr; do
    [ "$w" = ready ] && break
    [ "$w" = host ] || { echo "harness: $w $i $ns $sock $addr" >&2; exit 1; }
    NS[$i]=$ns; SOCK[$i]=$sock; ADDR[$i]=$addr
  done
}
harness_end() { exec {MH[1]}>&-; wait "$MH_PID" 2>/dev/null || true; MH_PID=""; }
D() { local i=$1; shift; "$DK" -H "unix://${SOCK[$i]}" "$@"; }

form_swarm() { # $1 = node count, $2 = image import command word (import | image import)
  local i tok
  for i in $(seq 1 "$1"); do D "$i" $2 -c 'CMD ["/bin/sh"]' $W/rootfs.tar busybox >/dev/null; done
  D 1 swarm init --advertise-addr "${ADDR[1]}" >/dev/null
  tok=$(D 1 swarm join-token -q worker)
  for i in $(seq 2 "$1"); do D "$i" swarm join --token "$tok" "${ADDR[1]}:2377" >/dev/null; done
  for _ in $(seq 150); do [ "$(D 1 node ls --format '{{.Status}}' | grep -c Ready)" = "$1" ] && break; sleep 0.2; done
}

rm_runs() { # $1 = engine: fills R[$1,rm1] R[$1,rm2] with "median p90"
  local e=$1 i k t f
  D 1 network create -d overlay --attachable --subnet 10.76.0.0/24 ovl >/dev/null
  for i in 1 2; do
    D "$i" run --rm --network ovl busybox true >/dev/null   # warm-up (lazy extension)
    f=$W/rm.$e.$i; : > "$f"
    for k in $(seq "$RUNS_RM"); do
      t=$(now); D "$i" run --rm --network ovl busybox true >/dev/null; ms "$t" >> "$f"
    done
    R[$e,rm$i]=$(pct "$f")
    echo "$e run --rm on node$i: $(tr '\n' ' ' < "$f")" >&2
  done
  # the floor: the same run without networking, on node1
  f=$W/rm.$e.none; : > "$f"
  for k in $(seq "$RUNS_RM"); do
    t=$(now); D 1 run --rm --network none busybox true >/dev/null; ms "$t" >> "$f"
  done
  R[$e,rmnone]=$(pct "$f")
}

# ---------------- phase 1: run --rm, netloom vs dockerd ----------------
if [[ " $PHASES " == *" rm "* ]]; then
  harness 2 ""
  form_swarm 2 "image import"
  rm_runs netloom
  D 2 swarm leave --force >/dev/null 2>&1 || true
  D 1 swarm leave --force >/dev/null 2>&1 || true
  harness_end

  if [ "$DOCKER" = 1 ]; then
    harness 2 "--bare"
    DPID=()
    for i in 1 2; do
      d=/tmp/${NS[$i]}/dk; mkdir -p $d
      ( exec nsenter --net=/run/netns/${NS[$i]} /usr/sbin/dockerd --data-root $d/root --exec-root $d/exec \
        -H unix://$d/docker.sock --pidfile $d/docker.pid --containerd-namespace nlocp$i \
        --containerd-plugins-namespace nlocp$i-p > $d/dockerd.log 2>&1 ) &
      DPID[$i]=$!; SOCK[$i]=$d/docker.sock
    done
    for i in 1 2; do for _ in $(seq 120); do D $i version >/dev/null 2>&1 && break; sleep 0.25; done; done
    if D 1 version >/dev/null 2>&1 && D 2 version >/dev/null 2>&1; then
      form_swarm 2 import
      rm_runs docker || echo "dockerd: run --rm on the overlay failed: $(tail -3 /tmp/${NS[1]}/dk/dockerd.log)" >&2
    else
      echo "dockerd did not start: $(tail -3 /tmp/${NS[1]}/dk/dockerd.log)" >&2
    fi
    for i in 1 2; do
      for c in $(D $i ps -aq 2>/dev/null); do D $i rm -f "$c" >/dev/null 2>&1; done
      D $i swarm leave --force >/dev/null 2>&1 || true
    done
    for i in 1 2; do p=${DPID[$i]}; kill $(pgrep -P $p) $p 2>/dev/null || true; done
    for i in 1 2; do wait ${DPID[$i]} 2>/dev/null || true; done
    # anything dockerd left mounted under the hosts' directories
    for i in 1 2; do
      for m in $(awk -v d="/tmp/${NS[$i]}/dk/" 'index($2,d)==1{print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
    done
    harness_end
  fi
fi

# ---------------- phase 2: convergence, NODES netloom nodes ----------------
if [[ " $PHASES " == *" conv "* ]]; then
  harness "$NODES" ""
  form_swarm "$NODES" "image import"
  D 1 network create -d overlay --attachable --subnet 10.77.0.0/16 conv >/dev/null
  PPID_OF=()
  for i in $(seq 1 "$NODES"); do
    D "$i" run -d --name probe$i --network conv --ip 10.77.0.$((10 + i)) busybox sleep 100000 >/dev/null
    PPID_OF[$i]=$(D "$i" inspect -f '{{.State.Pid}}' probe$i)
  done
  # all probes reach each other first (the mesh is up)
  for i in $(seq 1 "$NODES"); do
    j=$(( i % NODES + 1 ))
    nsenter -t "${PPID_OF[$i]}" -n ping -q -c 1 -i 0.01 -w 20 10.77.0.$((10 + j)) >/dev/null ||
      { echo "probe$i cannot reach probe$j" >&2; exit 1; }
  done
  : > $W/conv; : > $W/rund
  for k in $(seq "$RUNS"); do
    a=$(( (k - 1) % NODES + 1 )); b=$(( a % NODES + 1 ))
    ip=10.77.$((1 + k / 250)).$((1 + k % 250))
    t=$(now)
    D "$a" run -d --name cv$k --network conv --ip "$ip" busybox sleep 100000 >/dev/null
    ms "$t" >> $W/rund
    if nsenter -t "${PPID_OF[$b]}" -n ping -q -c 1 -i 0.01 -w 10 "$ip" >/dev/null; then
      ms "$t" >> $W/conv
    else
      echo "run $k: node$b never reached $ip on node$a" >&2; echo 10000 >> $W/conv
    fi
    D "$a" rm -f cv$k >/dev/null
  done
  echo "convergence runs (ms): $(tr '\n' ' ' < $W/conv)" >&2
  R[conv]=$(pct $W/conv 99); R[rund]=$(pct $W/rund 99)
  for i in $(seq 1 "$NODES"); do D "$i" rm -f probe$i >/dev/null 2>&1 || true; done
  D 1 network rm conv >/dev/null 2>&1 || true
  for i in $(seq "$NODES" -1 1); do D "$i" swarm leave --force >/dev/null 2>&1 || true; done
  harness_end
fi

# ---------------- report ----------------
echo
echo "## overlay control plane ($(basename "$BIN") build; client: $($DK --version | cut -d, -f1); load: $(cut -d' ' -f1-3 /proc/loadavg))"
if [[ " $PHASES " == *" rm "* ]]; then
  echo
  echo "\`run --rm --network ovl busybox true\`, attachable overlay, 2-node swarm, $RUNS_RM runs per node (ms):"
  echo
  echo "| node | netloom median | netloom p90 | dockerd median | dockerd p90 | docker/netloom (median) |"
  echo "|---|---|---|---|---|---|"
  for i in 1 2; do
    read -r nm np <<< "${R[netloom,rm$i]:-n/a n/a}"; read -r dm dp <<< "${R[docker,rm$i]:-n/a n/a}"
    r=n/a; [[ $nm =~ ^[0-9.]+$ && $dm =~ ^[0-9.]+$ ]] && r=$(echo "scale=1; $dm/$nm" | bc)
    echo "| node$i ($([ $i = 1 ] && echo manager || echo worker)) | $nm | $np | $dm | $dp | $r |"
  done
  read -r nm np <<< "${R[netloom,rmnone]:-n/a n/a}"; read -r dm dp <<< "${R[docker,rmnone]:-n/a n/a}"
  r=n/a; [[ $nm =~ ^[0-9.]+$ && $dm =~ ^[0-9.]+$ ]] && r=$(echo "scale=1; $dm/$nm" | bc)
  echo "| node1, \`--network none\` (the runtime's floor) | $nm | $np | $dm | $dp | $r |"
  read -r nm _ <<< "${R[netloom,rm1]:-n/a n/a}"
  echo
  echo "target netloom <= 100 ms: $(awk -v a="${R[netloom,rm1]%% *}" -v b="${R[netloom,rm2]%% *}" 'BEGIN{print (a+0<=100 && b+0<=100 && a!="n/a") ? "PASS" : "MISS"}')"
fi
if [[ " $PHASES " == *" conv "* ]]; then
  read -r c50 c99 <<< "${R[conv]}"; read -r r50 r99 <<< "${R[rund]}"
  echo
  echo "convergence, $NODES nodes, $RUNS runs (ms from \`run -d\` on node a to the first reply on node b):"
  echo
  echo "| metric | p50 | p99 |"
  echo "|---|---|---|"
  echo "| first reply from another node | $c50 | $c99 |"
  echo "| \`run -d\` itself | $r50 | $r99 |"
  echo
  echo "target p99 <= 500 ms: $(awk -v a="$c99" 'BEGIN{print (a+0<=500) ? "PASS" : "MISS"}')"
fi
