#!/usr/bin/env bash
# Swarm mode, netloom vs Docker's dockerd swarm, side by side in one run on the
# multi-host harness (tests/src/multihost.rs via target/*/netloom-multihost): NODES hosts
# (network namespaces on two L2 segments joined by a router, 198.18.0.0/15 only), one
# engine per host. Reports: `swarm init`, `swarm join` (median over the workers), the
# time until a kill -9'd node is `Down` in `node ls` on the manager, the RSS of one
# idle worker (netloomd; dockerd + its containerd), `node update` latency (median of 20)
# with one manager; then with 3 managers (netloom: `--cluster-store etcd`, each manager
# runs an etcd member; dockerd: its raft) the same latency, and after a kill -9 of the
# leader (netloomd and its etcd member; dockerd and its containerd) the time until
# another manager accepts `node update` and until `node ls` shows a new leader. The same
# docker CLI (28) drives both (netloom's CLI for `swarm init --cluster-store etcd`).
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
trap 'for m in "${NEWDIRS[@]}"; do [ -d "$m" ] && rmdir "$m" 2>/dev/null; done; rm -f /tmp/nlb-join.$$ /tmp/nlb-upd.$$' EXIT
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
  R[$e,upd1]=$(updates 1)
  kill9 "$NODES"; t=$(now)
  R[$e,down]=timeout
  for _ in $(seq 600); do
    if D 1 node ls --format '{{.Status}}' | grep -q Down; then R[$e,down]=$(ms $t); break; fi
    sleep 0.1
  done
}

# median ms of 20 `node update --label-add` on host $1 (of its own node)
updates() { local i=$1 id k t
  id=$(D "$i" info --format '{{.Swarm.NodeID}}'); : > /tmp/nlb-upd.$$
  for k in $(seq 20); do t=$(now); D "$i" node update --label-add "k$k=v" "$id" >/dev/null; ms $t >> /tmp/nlb-upd.$$; done
  median < /tmp/nlb-upd.$$
}
leader_of() { D "$1" node ls --format '{{.ID}} {{.ManagerStatus}}' 2>/dev/null | awk '$2=="Leader"{print $1}'; }
# 3 managers (hosts 1-3): update latency, then kill the leader; uses init_ha and kill_leader
run_ha() {
  local e=$1 t i tok l li=0 o id upd=0 el=0
  init_ha
  tok=$(D 1 swarm join-token -q manager)
  for i in 2 3; do D "$i" swarm join --token "$tok" "${ADDR[1]}:2377" >/dev/null; done
  for _ in $(seq 150); do [ "$(D 1 node ls --format '{{.Status}}' | grep -c Ready)" = 3 ] && break; sleep 0.2; done
  sleep 6  # etcd refuses nothing now, dockerd's raft has settled
  R[$e,upd3]=$(updates 1)
  l=$(leader_of 1)
  for i in 1 2 3; do [ "$(D $i info --format '{{.Swarm.NodeID}}')" = "$l" ] && li=$i; done
  o=$(( li % 3 + 1 )); id=$(D "$o" info --format '{{.Swarm.NodeID}}')
  kill_leader "$li"; t=$(now)
  R[$e,updkill]=timeout; R[$e,elect]=timeout
  for _ in $(seq 600); do
    if [ $upd = 0 ] && timeout 3 "$DK" -H "unix://${SOCK[$o]}" node update --label-add after=kill "$id" >/dev/null 2>&1; then
      R[$e,updkill]=$(ms $t); upd=1; fi
    if [ $el = 0 ]; then n=$(leader_of "$o"); if [ -n "$n" ] && [ "$n" != "$l" ]; then R[$e,elect]=$(ms $t); el=1; fi; fi
    [ $upd = 1 ] && [ $el = 1 ] && break
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
if [ "$NODES" -ge 3 ]; then
  harness ""
  init_ha() { "$BIN/netloom" -H "unix://${SOCK[1]}" swarm init --advertise-addr "${ADDR[1]}" --cluster-store etcd >/dev/null; }
  kill_leader() { local p; p=$(pgrep -f -- "--data-dir=/tmp/${NS[$1]}/data/swarm/etcd/data" || true)
    [ -n "$p" ] && kill -9 $p; harness_cmd "crash $1"; }
  run_ha netloom
  for i in 1 2 3; do D $i swarm leave --force >/dev/null 2>&1 || true; done
  harness_end
fi

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
  start_all() {
    for i in $(seq 1 "$NODES"); do start_dockerd $i; done
    for i in $(seq 1 "$NODES"); do
      for _ in $(seq 120); do D $i version >/dev/null 2>&1 && break; sleep 0.25; done
    done
  }
  stop_all() {
    for i in $(seq 1 "$NODES"); do
      D $i swarm leave --force >/dev/null 2>&1 || true
      p=${DPID[$i]}; kill $(pgrep -P $p) $p 2>/dev/null || true
    done
    for i in $(seq 1 "$NODES"); do wait ${DPID[$i]} 2>/dev/null || true; done
  }
  start_all
  worker_rss() { local p=${DPID[$1]}; rss_kb $p $(pgrep -P $p); }
  kill9() { local p=${DPID[$1]}; kill -9 $(pgrep -P $p) $p 2>/dev/null || true; }
  if D 1 version >/dev/null 2>&1; then
    run_swarm docker
  else
    echo "dockerd did not start: $(tail -3 /tmp/${NS[1]}/dk/dockerd.log)"; DOCKER=0
  fi
  stop_all
  harness_end
  if [ "$DOCKER" = 1 ] && [ "$NODES" -ge 3 ]; then
    harness "--bare"
    start_all
    init_ha() { D 1 swarm init --advertise-addr "${ADDR[1]}" >/dev/null; }
    kill_leader() { kill9 "$1"; }
    run_ha docker
    stop_all
    harness_end
  fi
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
row upd1 "node update, 1 manager, median (ms)"
row upd3 "node update, 3 managers, median (ms)"
row updkill "leader killed: node update accepted after (ms)"
row elect "leader killed: new leader after (ms)"
