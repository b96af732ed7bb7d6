#!/usr/bin/env bash
# Swarm mode, netloom vs Docker's dockerd swarm, side by side in one run on the
# multi-host harness (tests/src/multihost.rs via target/*/netloom-multihost): NODES hosts
# (network namespaces on two L2 segments joined by a router, 198.18.0.0/15 only), one
# engine per host. Reports: `swarm init`, `swarm join` (median over the workers), the
# time until a kill -9'd node is `Down` in `node ls` on the manager, and the RSS of one
# idle worker (netloomd; dockerd + its containerd). The same docker CLI (28) drives both.
# Usage: sudo bench/swarm.sh        (env: NODES=3, DOCKER=1 to include dockerd, default on
#        when /usr/sbin/dockerd exists; build first: cargo build --workspace)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
NODES=${NODES:-3}
DK=${DK:-/usr/local/bin/docker}
[ -x "$DK" ] || DK=$(command -v docker)
BIN=$REPO/target/release; [ -x "$BIN/netloom-multihost" ] || BIN=$REPO/target/debug
[ -x "$BIN/netloom-multihost" ] || { echo "build first: cargo build --workspace" >&2; exit 1; }
DOCKER=${DOCKER:-$([ -x /usr/sbin/dockerd ] && echo 1 || echo 0)}
export DOCKER_CLI_HINTS=false
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"   # note_new_rundirs: paths dockerd creates outside its roots
note_new_rundirs
trap 'for m in "${NEWDIRS[@]}"; do [ -d "$m" ] && rmdir "$m" 2>/dev/null; done; rm -f /tmp/nlb-join.$$' EXIT
now() { date +%s%N; }
ms() { echo "scale=1; ($(now)-$1)/1000000" | bc; }
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
rss_kb() { local t=0 p; for p in "$@"; do t=$((t + $(awk '/VmRSS/{print $2}' /proc/$p/status 2>/dev/null || echo 0))); done; echo $t; }
declare -A R

harness() { # $1 = extra args; starts the harness as a coprocess, reads HOSTS
  coproc MH { exec "$BIN/netloom-multihost" "$NODES" $1 2>&1; }
  NS=(); SOCK=(); ADDR=()
  while read -r -u "${MH[0]}" w i ns sock addr; do
    [ "$w" = ready ] && break
    [ "$w" = host ] || { echo "harness: $w $i $ns $sock $addr" >&2; exit 1; }
    NS[$i]=$ns; SOCK[$i]=$sock; ADDR[$i]=$addr
  done
}
harness_cmd() { echo "$1" >&"${MH[1]}"; local r; read -r -u "${MH[0]}" r; [ "$r" = ok ] || echo "harness: $r" >&2; }
harness_end() { exec {MH[1]}>&-; wait "$MH_PID" 2>/dev/null || true; }

# kill9 and restart of a host's engine, and the command line for each engine
run_swarm() { # $1 = engine name; uses D i = docker CLI at host i
  local e=$1 t tok i
  t=$(now); D 1 swarm init --advertise-addr "${ADDR[1]}" >/dev/null; R[$e,init]=$(ms $t)
  tok=$(D 1 swarm join-token -q worker)
  : > /tmp/nlb-join.$$
  for i in $(seq 2 "$NODES"); do
    t=$(now); D "$i" swarm join --token "$tok" "${ADDR[1]}:2377" >/dev/null; ms $t >> /tmp/nlb-join.$$
  done
  R[$e,join]=$(median < /tmp/nlb-join.$$)
  for _ in $(seq 100); do [ "$(D 1 node ls --format '{{.Status}}' | grep -c Ready)" = "$NODES" ] && break; sleep 0.2; done
  sleep 2
  R[$e,rss]=$(worker_rss "$NODES")
  kill9 "$NODES"; t=$(now)
  R[$e,down]=timeout
  for _ in $(seq 600); do
    if D 1 node ls --format '{{.Status}}' | grep -q Down; then R[$e,down]=$(ms $t); break; fi
    sleep 0.1
  done
}

# ---------- netloom ----------
harness ""
D() { local i=$1; shift; "$DK" -H "unix://${SOCK[$i]}" "$@"; }
worker_rss() { rss_kb $(pgrep -f "netloomd --data-root /tmp/${NS[$1]}/data"); }
kill9() { harness_cmd "crash $1"; }
run_swarm netloom
D 1 swarm leave --force >/dev/null 2>&1 || true
harness_end

# ---------- dockerd ----------
if [ "$DOCKER" = 1 ]; then
  harness "--bare"
  DPID=()
  start_dockerd() {
    local i=$1 d=/tmp/${NS[$1]}/dk
    mkdir -p $d
    # its own process group's job notice on kill -9 is noise: run it in a subshell
    ( exec nsenter --net=/run/netns/${NS[$i]} /usr/sbin/dockerd --data-root $d/root --exec-root $d/exec \
      -H unix://$d/docker.sock --pidfile $d/docker.pid --containerd-namespace nlb$i --containerd-plugins-namespace nlb$i-p \
      --iptables=false > $d/dockerd.log 2>&1 ) &
    DPID[$i]=$!
    SOCK[$i]=$d/docker.sock
  }
  for i in $(seq 1 "$NODES"); do start_dockerd $i; done
  for i in $(seq 1 "$NODES"); do
    for _ in $(seq 120); do D $i version >/dev/null 2>&1 && break; sleep 0.25; done
  done
  worker_rss() { local p=${DPID[$1]}; rss_kb $p $(pgrep -P $p); }
  kill9() { local p=${DPID[$1]}; kill -9 $(pgrep -P $p) $p 2>/dev/null || true; }
  if D 1 version >/dev/null 2>&1; then
    run_swarm docker
  else
    echo "dockerd did not start: $(tail -3 /tmp/${NS[1]}/dk/dockerd.log)"; DOCKER=0
  fi
  for i in $(seq 1 "$NODES"); do
    D $i swarm leave --force >/dev/null 2>&1 || true
    p=${DPID[$i]}; kill $(pgrep -P $p) $p 2>/dev/null || true
  done
  for i in $(seq 1 "$NODES"); do wait ${DPID[$i]} 2>/dev/null || true; done
  harness_end
fi

echo
echo "## swarm mode, $NODES nodes on the harness (client: $($DK --version | cut -d, -f1))"
echo
echo "| metric | netloom | dockerd | docker/netloom |"
echo "|---|---|---|---|"
row() { local d=${R[docker,$1]:-n/a} n=${R[netloom,$1]:-n/a} r=n/a
  if [[ $d =~ ^[0-9.]+$ && $n =~ ^[0-9.]+$ ]] && [ "$(echo "$n > 0" | bc)" = 1 ]; then r=$(echo "scale=1; $d/$n" | bc); fi
  echo "| $2 | $n | $d | $r |"; }
row init "swarm init (ms)"
row join "swarm join, median (ms)"
row down "killed node Down after (ms)"
row rss "RSS of one idle worker (KiB)"
