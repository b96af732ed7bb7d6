#!/usr/bin/env bash
# Embedded DNS server throughput and latency: netloom vs aardvark-dns vs Docker vs the
# kernel's limit, side by side.
#
# For each engine, $NAMES names are registered: $NSRV server containers srv0..srv<NSRV-1>
# on network dnsnet, each with $NAMES/$NSRV network aliases n<i>-<j>. All alias names are
# queried (A, in a cycle) from the client container's network namespace with dnsperf
# (run through `nsenter --net`):
#   max throughput : dnsperf -l $DNSPERF_SECS          (100 outstanding, dnsperf's default)
#   latency        : dnsperf -l $LAT_SECS -Q $LAT_QPS  (fixed 1000 qps by default)
# Before measuring, correctness: `dig +short` of the first, a middle and the last name
# must return the address of the container that carries it; for netloom and docker a
# second network holds a container "other" with srv0's aliases, which the client must not
# see (network-scoped answers). Then an untimed 1 s dnsperf warm-up.
#   limit    : crates/resolver/examples/dns_limit.rs in its own netns at 127.0.0.11:53: one
#              thread, recvmmsg/sendmmsg of 32, a canned answer (no lookup). The most any
#              responder can get from this kernel and this dnsperf here.
#   netloom  : netloomd in a private netns (as in bench/core.sh), busybox image, user network,
#              `run -d` srv and cli; queries to 127.0.0.11 in cli's SandboxKey netns.
#   aardvark : netavark 1.4 + aardvark-dns 1.4 run directly (no podman) with a private "host"
#              netns, as in /work/shared/lab/peers/02_netavark_aardvark.sh; two netns stand in
#              for the containers srv and cli; queries to the bridge gateway address, where
#              aardvark-dns listens.
#   docker   : dockerd 20.10 in a private netns (flags as in bench/core.sh); queries to
#              127.0.0.11 in cli's SandboxKey netns. If dockerd cannot start, that row says why.
# Engines run one after the other; only one DNS server is up at a time.
#
# Needs (installed with apt-get if missing): dnsperf, bind9-dnsutils, docker.io, containerd,
# runc, netavark, aardvark-dns, iptables, busybox-static, jq; cargo to build the netloom
# release binaries and the limit responder (skipped with NO_BUILD=1).
# Targets (printed as PASS/MISS): netloom qps >= 2.5x the best peer's; netloom's average
# latency at $LAT_QPS qps <= half the best peer's.
#
# Usage (root): bench/dns.sh
# Env: DNSPERF_SECS=10 LAT_SECS=5 LAT_QPS=1000 NAMES=1000 NSRV=10 NETLOOMD=<path>
#      NETLOOM=<path> DOCKERD=<path> LIMIT=<path> NO_BUILD=1
#      SKIP_NETLOOM=1 SKIP_AARDVARK=1 SKIP_DOCKER=1 SKIP_LIMIT=1
#      RESULTS=<file>  (also write the markdown table there)
set -euo pipefail
# containerd-shims, netloom shims and aardvark-dns daemonize: be a subreaper so orphans are
# reaped here (PID 1 in this machine does not reap) and cleanup can find them by parent pid.
if [ -z "${NLB_SUBREAPER:-}" ] && command -v python3 >/dev/null; then
  export NLB_SUBREAPER=1
  exec python3 -c 'import ctypes,os,sys; ctypes.CDLL(None).prctl(36,1,0,0,0); os.execvp(sys.argv[1], sys.argv[1:])' bash "$0" "$@"
fi
[ "$(id -u)" = 0 ] || { echo "dns.sh: run as root" >&2; exit 1; }

DNSPERF_SECS=${DNSPERF_SECS:-10}; LAT_SECS=${LAT_SECS:-5}; LAT_QPS=${LAT_QPS:-1000}
NAMES=${NAMES:-1000}; NSRV=${NSRV:-10}; PER=$(( NAMES / NSRV ))
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
TAG=nld$$                       # unique per run: netns names, cgroup parent, temp dir
D=/tmp/nldns.$$
NS_NL=$TAG-nl; NS_DK=$TAG-dk; NS_AV=$TAG-av; NS_AVCLI=$TAG-avcli; NS_LIM=$TAG-lim
DK=/usr/bin/docker              # Debian's 20.10 client (not any other docker on PATH)
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
NETAVARK=/usr/lib/podman/netavark
AARDVARK=/usr/lib/podman/aardvark-dns
DK_SOCK=$D/dk/docker.sock
NL_SOCK=$D/nl/exec/netloom.sock
IMGNAME=bbx
NET=dnsnet
NET2=dnsnet2
AV_GW=10.241.0.1; AV_CLI=10.241.0.250   # srv<i> is 10.241.0.<i+2>
LIMIT_ADDR=10.0.0.1                     # the limit responder's canned answer

# ---------------- packages ----------------
export DEBIAN_FRONTEND=noninteractive
need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v dig >/dev/null || need+=(bind9-dnsutils)
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || need+=(docker.io)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x $NETAVARK ] || need+=(netavark)
[ -x $AARDVARK ] || need+=(aardvark-dns)
command -v iptables >/dev/null || need+=(iptables)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v jq >/dev/null || need+=(jq)
# /usr/sbin/policy-rc.d exits 101 here: installing docker.io does not start a system dockerd
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; } ||
    echo "WARNING: apt-get install ${need[*]} failed"
fi
command -v dnsperf >/dev/null && command -v dig >/dev/null || { echo "dns.sh: dnsperf and dig are required" >&2; exit 1; }

# ---------------- netloom binaries (release, built here unless NO_BUILD=1) ----------------
if [ -z "${NO_BUILD:-}" ] && command -v cargo >/dev/null; then
  echo "building: cargo build --release -p netloom-daemon -p netloom-cli -p netloom-resolver --example dns_limit"
  (cd "$REPO" && cargo build -q --release -p netloom-daemon -p netloom-cli && cargo build -q --release -p netloom-resolver --example dns_limit) ||
    echo "WARNING: cargo build failed; using whatever binaries exist"
fi
LIMIT=${LIMIT:-$REPO/target/release/examples/dns_limit}
if [ -z "${NETLOOMD:-}" ]; then
  if [ -x "$REPO/target/release/netloomd" ] && [ -x "$REPO/target/release/netloom" ]; then
    NETLOOMD=$REPO/target/release/netloomd; NETLOOM=$REPO/target/release/netloom; NL_BUILD=release
  else
    NETLOOMD=$REPO/target/debug/netloomd; NETLOOM=$REPO/target/debug/netloom; NL_BUILD=debug
  fi
fi
NETLOOM=${NETLOOM:-$(dirname "$NETLOOMD")/netloom}; NL_BUILD=${NL_BUILD:-custom}

# ---------------- cleanup ----------------
DOCKERD_PID=""; NETLOOMD_PID=""; AV_UP=""; LIMIT_PID=""
# dockerd/containerd create these fixed paths regardless of --exec-root; remove them afterwards
# (only if empty and absent when we started). Same for /etc/netns (aardvark's resolv.conf).
# kill_wait, children, stop_docker, stop_netloom, note_new_rundirs
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
note_new_rundirs /etc/netns
stop_aardvark() {
  [ -n "$AV_UP" ] || return 0
  local n p
  # netavark teardown of the last container stops aardvark-dns; then make sure by pid
  for n in $(seq 0 $((NSRV - 1)) | sed 's/^/srv/') cli; do
    [ -f $D/av/$n.json ] && ip netns exec $NS_AV $NETAVARK --config $D/av/cfg --aardvark-binary $AARDVARK \
      teardown /run/netns/$TAG-av$n < $D/av/$n.json >/dev/null 2>&1
    ip netns del $TAG-av$n 2>/dev/null
  done
  p=$(cat $D/av/cfg/aardvark-dns/aardvark.pid 2>/dev/null || true)
  [ -n "$p" ] && kill_wait "$p"
  AV_UP=""
}
cleanup() {
  local rc=$?
  set +e; trap - EXIT INT TERM
  stop_netloom; stop_aardvark; stop_docker
  # leftover shims / container processes / aardvark were re-parented to us: kill them by pid
  local i p m
  for i in 1 2 3 4 5; do
    children; [ ${#KIDS[@]} -eq 0 ] && break
    for p in "${KIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    sleep 0.2; wait 2>/dev/null
  done
  # unmount anything the daemons left under $D (netns bind mounts, overlay, shm), deepest first
  for m in $(awk -v d="$D/" 'index($2,d)==1{print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  [ -n "$LIMIT_PID" ] && kill_wait "$LIMIT_PID"
  for m in $NS_NL $NS_DK $NS_AVCLI $NS_AV $NS_LIM $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$TAG-avsrv"); do ip netns del $m 2>/dev/null; done
  rm -rf /etc/netns/$NS_AV
  # the cgroup parent dockerd used (cgroup v1: one per controller; v2: one dir)
  for m in /sys/fs/cgroup/*/$TAG /sys/fs/cgroup/$TAG; do [ -d "$m" ] && rmdir "$m" 2>/dev/null; done
  for m in "${NEWDIRS[@]}"; do [ -d "$m" ] && rmdir "$m" 2>/dev/null; done
  rm -rf "$D"
  # leak check
  local leaks=()
  children; [ ${#KIDS[@]} -eq 0 ] || leaks+=("processes ${KIDS[*]}")
  ip netns list 2>/dev/null | grep -q "^$TAG-" && leaks+=("netns $(ip netns list | grep "^$TAG-" | awk '{print $1}' | tr '\n' ' ')")
  grep -q " $D/" /proc/mounts && leaks+=("mounts under $D")
  pgrep -f "$AARDVARK --config $D" >/dev/null 2>&1 && leaks+=("aardvark-dns $(pgrep -f "$AARDVARK --config $D" | tr '\n' ' ')")
  ls -d /sys/fs/cgroup/*/$TAG /sys/fs/cgroup/$TAG >/dev/null 2>&1 && leaks+=("cgroup $TAG")
  [ -e "$D" ] && leaks+=("dir $D")
  [ -e /etc/netns/$NS_AV ] && leaks+=("/etc/netns/$NS_AV")
  if [ ${#leaks[@]} -eq 0 ]; then echo "cleanup: ok (no netns, links, mounts, processes, cgroups or files left)"
  else echo "cleanup: LEFT OVER: ${leaks[*]}" >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------- measurement helpers ----------------
must() { "$@" >/dev/null 2>>"$D/err.log" || { echo "  setup step failed: $*" >&2; return 1; }; }
declare -A QPS LAT LAT1K SD1K LOST LOST1K RCODE STATUS VER CHECK
# The names and who carries them: n<i>-<j> is an alias of srv<i>; SRVIP[i] is srv<i>'s address.
declare -a SRVIP
aliases_of() { local i=$1 j; for j in $(seq 0 $((PER - 1))); do printf 'n%s-%s ' "$i" "$j"; done; }
srvip() { echo "${SRVIP[$1]}"; }
limip() { echo "$LIMIT_ADDR"; }
# check_names ENGINE SERVER EXPECT_FN NSENTER... : dig the first, a middle and the last name
# (upper-case, as 0x20-randomising clients may send them); EXPECT_FN i prints the address
# srv<i>'s names must resolve to.
check_names() {
  local e=$1 srv=$2 fn=$3; shift 3; local X=("$@") i j got want ok=0 ij
  CHECK[$e]=""
  for ij in "0 0" "$((NSRV / 2)) $((PER / 2))" "$((NSRV - 1)) $((PER - 1))"; do
    i=${ij% *}; j=${ij#* }
    got=$("${X[@]}" dig +short +time=2 +tries=1 @"$srv" -q "N$i-$j" -t A 2>&1 | tr '\n' ' ' | sed 's/ *$//')
    want=$($fn "$i")
    CHECK[$e]+="N$i-$j -> ${got:-<empty>}"
    if [ "$got" != "$want" ]; then CHECK[$e]+=" (WRONG, want $want)"; ok=1; fi
    CHECK[$e]+="; "
  done
  echo "  correctness: ${CHECK[$e]}"
  return $ok
}
# measure ENGINE SERVER NSENTER... : warm-up, then the two dnsperf runs over all names.
measure() {
  local e=$1 srv=$2; shift 2; local X=("$@") out1 out2
  "${X[@]}" dnsperf -s "$srv" -d $D/q.txt -l 1 >/dev/null 2>&1 || true          # warm-up, untimed
  echo "  dnsperf max throughput, ${DNSPERF_SECS} s, $(wc -l < $D/q.txt) names ..."
  out1=$("${X[@]}" dnsperf -s "$srv" -d $D/q.txt -l "$DNSPERF_SECS" 2>&1) || true
  echo "  dnsperf at ${LAT_QPS} qps, ${LAT_SECS} s ..."
  out2=$("${X[@]}" dnsperf -s "$srv" -d $D/q.txt -l "$LAT_SECS" -Q "$LAT_QPS" 2>&1) || true
  { echo "### $e: max throughput"; echo "$out1"; echo "### $e: ${LAT_QPS} qps"; echo "$out2"; } >> $D/dnsperf.log
  QPS[$e]=$(echo "$out1" | awk '/Queries per second/{printf "%.0f", $4}')
  LAT[$e]=$(echo "$out1" | awk '/Average Latency/{printf "%.0f", $4*1e6}')
  LOST[$e]=$(echo "$out1" | awk '/Queries lost/{print $3" "$4}')
  RCODE[$e]=$(echo "$out1" | awk -F: '/Response codes/{gsub(/^ +/,"",$2); print $2}')
  LAT1K[$e]=$(echo "$out2" | awk '/Average Latency/{printf "%.0f", $4*1e6}')
  SD1K[$e]=$(echo "$out2" | awk '/Latency StdDev/{printf "%.0f", $4*1e6}')
  LOST1K[$e]=$(echo "$out2" | awk '/Queries lost/{print $3" "$4}')
  echo "  -> ${QPS[$e]:-?} qps, avg ${LAT[$e]:-?} us, lost ${LOST[$e]:-?}, rcodes ${RCODE[$e]:-?}; at ${LAT_QPS} qps avg ${LAT1K[$e]:-?} us (sd ${SD1K[$e]:-?}), lost ${LOST1K[$e]:-?}"
  [ -n "${QPS[$e]}" ] || { echo "$out1" | tail -5 >&2; return 1; }
}
# container engines with a Docker-style CLI (netloom, docker): NET with srv0..srv<NSRV-1>
# (PER aliases each) and cli; NET2 with "other", which carries srv0's aliases; then measure.
bench_cli_engine() { # engine cli...
  local e=$1; shift; local C=("$@") key i a args
  must "${C[@]}" network create $NET || return 1
  must "${C[@]}" network create $NET2 || return 1
  echo "  starting $NSRV servers with $PER aliases each ..."
  for i in $(seq 0 $((NSRV - 1))); do
    args=(); for a in $(aliases_of $i); do args+=(--network-alias "$a"); done
    must "${C[@]}" run -d --name srv$i --network $NET "${args[@]}" $IMGNAME sleep 3600 || return 1
    SRVIP[$i]=$("${C[@]}" inspect -f '{{json .NetworkSettings.Networks}}' srv$i 2>>$D/err.log | jq -r '.[].IPAddress' | head -1)
  done
  args=(); for a in $(aliases_of 0); do args+=(--network-alias "$a"); done
  must "${C[@]}" run -d --name other --network $NET2 "${args[@]}" $IMGNAME sleep 3600 || return 1
  must "${C[@]}" run -d --name cli --network $NET $IMGNAME sleep 3600 || return 1
  key=$("${C[@]}" inspect -f '{{.NetworkSettings.SandboxKey}}' cli 2>>$D/err.log)
  [ -n "$key" ] && [ -e "$key" ] || { echo "  no SandboxKey for cli ('$key')" >&2; return 1; }
  echo "  cli SandboxKey: $key; other (on $NET2, with srv0's aliases) is $("${C[@]}" inspect -f '{{json .NetworkSettings.Networks}}' other 2>>$D/err.log | jq -r '.[].IPAddress' | head -1)"
  check_names $e 127.0.0.11 srvip nsenter --net="$key" || return 1
  measure $e 127.0.0.11 nsenter --net="$key"
}

rm -rf "$D"; mkdir -p "$D/dk" "$D/nl" "$D/av/cfg" "$D/bin"; : > "$D/err.log"; : > "$D/dnsperf.log"
echo "{\"deprecated-key-path\": \"$D/dk/key.json\"}" > "$D/dk/daemon.json"   # else /etc/docker/key.json
echo '{"dns": ["127.0.0.1"]}' > "$D/nl/daemon.json"   # same as dockerd --dns 127.0.0.1 below
for i in $(seq 0 $((NSRV - 1))); do for j in $(seq 0 $((PER - 1))); do echo "n$i-$j A"; done; done > $D/q.txt

# ---------------- image: busybox-static rootfs ----------------
RF=$D/rootfs; mkdir -p $RF/bin $RF/etc $RF/tmp $RF/proc $RF/sys $RF/dev
cp /bin/busybox $RF/bin/busybox
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox $RF/bin/$a; done
tar -C $RF -cf $D/rootfs.tar .

for e in nl av dk lim; do STATUS[$e]=skipped; VER[$e]=-; done
echo "== embedded DNS: $NAMES names ($NSRV containers x $PER aliases); dnsperf ${DNSPERF_SECS} s max + ${LAT_SECS} s at ${LAT_QPS} qps; $(nproc) vCPU, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------- netloom ----------------
if [ -z "${SKIP_NETLOOM:-}" ]; then
  echo "-- netloom"
  if [ -x "$NETLOOMD" ] && [ -x "$NETLOOM" ]; then
    # private copies: the shared target dir may be rebuilt under us mid-run
    cp "$NETLOOMD" "$D/bin/netloomd"; cp "$NETLOOM" "$D/bin/netloom"
    NL_BIN=$D/bin/netloom
    ip netns add $NS_NL && ip -n $NS_NL link set lo up
    nsenter --net=/run/netns/$NS_NL "$D/bin/netloomd" --data-root $D/nl/data --exec-root $D/nl/exec \
      --config-file $D/nl/daemon.json > $D/nl/netloomd.log 2>&1 &
    NETLOOMD_PID=$!
    for _ in $(seq 120); do $NL_BIN -H unix://$NL_SOCK version >/dev/null 2>&1 && break; kill -0 $NETLOOMD_PID 2>/dev/null || break; sleep 0.1; done
    if $NL_BIN -H unix://$NL_SOCK version >/dev/null 2>&1; then
      VER[nl]="$($NL_BIN -H unix://$NL_SOCK version --format '{{.Server.Version}}' 2>/dev/null || echo '?') ($NL_BUILD)"
      if ! must $NL_BIN -H unix://$NL_SOCK image import -c 'CMD ["/bin/sh"]' $D/rootfs.tar $IMGNAME; then STATUS[nl]="image import failed"
      elif bench_cli_engine nl $NL_BIN -H unix://$NL_SOCK; then STATUS[nl]=ok; else STATUS[nl]="failed (see above)"; fi
    else
      STATUS[nl]="netloomd did not start: $(tail -3 $D/nl/netloomd.log | tr '\n' ' ')"
    fi
    stop_netloom
  else
    STATUS[nl]="no netloom binaries at $NETLOOMD / $NETLOOM (cargo build --release -p netloom-daemon -p netloom-cli)"
  fi
  echo "netloom: ${STATUS[nl]}"
fi

# ---------------- aardvark-dns (netavark, no podman) ----------------
av_json() { # name ip aliases...
  local n=$1 ip=$2 al; shift 2
  al=$(printf '"%s",' "$@"); al="[${al%,}]"; [ "$al" = '[""]' ] && al='[]'
  cat <<EOF
{
  "container_id": "$(printf '%s' "$TAG-$n" | sha256sum | cut -c1-64)",
  "container_name": "$n",
  "networks": { "$NET": { "static_ips": ["$ip"], "aliases": $al, "interface_name": "eth0" } },
  "network_info": { "$NET": { "name": "$NET", "id": "$(printf '%s' "$TAG-$NET" | sha256sum | cut -c1-64)",
     "driver": "bridge", "network_interface": "${TAG}br0",
     "subnets": [ { "subnet": "10.241.0.0/16", "gateway": "$AV_GW" } ],
     "ipv6_enabled": false, "internal": false, "dns_enabled": true,
     "ipam_options": { "driver": "host-local" } } }
}
EOF
}
if [ -z "${SKIP_AARDVARK:-}" ]; then
  echo "-- aardvark-dns"
  if [ -x $NETAVARK ] && [ -x $AARDVARK ]; then
    VER[av]="$($AARDVARK --version 2>/dev/null | awk '{print $2}') (netavark $($NETAVARK --version 2>/dev/null | awk '{print $2}'))"
    ip netns add $NS_AV && ip -n $NS_AV link set lo up
    # aardvark forwards unknown names to resolv.conf's servers: loopback of the private netns
    mkdir -p /etc/netns/$NS_AV; echo "nameserver 127.0.0.1" > /etc/netns/$NS_AV/resolv.conf
    AV_UP=1; ok=1
    for n in $(seq 0 $((NSRV - 1)) | sed 's/^/srv/') cli; do
      if [ $n = cli ]; then av_json $n $AV_CLI > $D/av/$n.json
      else i=${n#srv}; SRVIP[$i]=10.241.0.$((i + 2)); av_json $n ${SRVIP[$i]} $(aliases_of $i) > $D/av/$n.json; fi
      ip netns add $TAG-av$n
      if ! ip netns exec $NS_AV $NETAVARK --config $D/av/cfg --aardvark-binary $AARDVARK \
          setup /run/netns/$TAG-av$n < $D/av/$n.json > $D/av/$n.out 2>>$D/err.log; then
        echo "  netavark setup $n failed: $(tail -2 $D/err.log | tr '\n' ' ')" >&2; ok=0; break
      fi
    done
    if [ $ok = 1 ]; then
      echo "  aardvark-dns pid $(cat $D/av/cfg/aardvark-dns/aardvark.pid 2>/dev/null || echo '?')"
      if check_names av $AV_GW srvip nsenter --net=/run/netns/$NS_AVCLI &&
         measure av $AV_GW nsenter --net=/run/netns/$NS_AVCLI; then STATUS[av]=ok; else STATUS[av]="failed (see above)"; fi
    else STATUS[av]="netavark setup failed"; fi
    stop_aardvark
  else
    STATUS[av]="netavark/aardvark-dns not installed (apt-get install -y --no-install-recommends netavark aardvark-dns)"
  fi
  echo "aardvark: ${STATUS[av]}"
fi

# ---------------- dockerd ----------------
if [ -z "${SKIP_DOCKER:-}" ]; then
  echo "-- docker"
  if [ -x "$DOCKERD" ] && [ -x $DK ] && command -v containerd >/dev/null && command -v runc >/dev/null; then
    ip netns add $NS_DK && ip -n $NS_DK link set lo up
    nsenter --net=/run/netns/$NS_DK "$DOCKERD" --config-file $D/dk/daemon.json \
      --data-root $D/dk/root --exec-root $D/dk/exec -H unix://$DK_SOCK --pidfile $D/dk/docker.pid \
      --containerd-namespace $TAG --containerd-plugins-namespace $TAG-plugins \
      --cgroup-parent /$TAG \
      --dns 127.0.0.1 > $D/dk/dockerd.log 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 240); do $DK -H unix://$DK_SOCK version >/dev/null 2>&1 && break; kill -0 $DOCKERD_PID 2>/dev/null || break; sleep 0.25; done
    if $DK -H unix://$DK_SOCK version >/dev/null 2>&1; then
      VER[dk]=$($DK -H unix://$DK_SOCK version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
      if ! must $DK -H unix://$DK_SOCK import -c 'CMD ["/bin/sh"]' $D/rootfs.tar $IMGNAME; then STATUS[dk]="image import failed"
      elif bench_cli_engine dk $DK -H unix://$DK_SOCK; then STATUS[dk]=ok; else STATUS[dk]="failed (see above)"; fi
    else
      kill -0 $DOCKERD_PID 2>/dev/null && why="no API after 60 s" || { wait $DOCKERD_PID; why="dockerd exited with status $?"; } || true
      STATUS[dk]="dockerd did not start ($why); last log lines: $(tail -3 $D/dk/dockerd.log | tr '\n' ' ')"
    fi
    stop_docker
  else
    STATUS[dk]="docker.io/containerd/runc not installed (apt-get install -y --no-install-recommends docker.io containerd runc)"
  fi
  echo "docker: ${STATUS[dk]}"
fi

# ---------------- limit: a canned-answer responder ----------------
if [ -z "${SKIP_LIMIT:-}" ]; then
  echo "-- limit (recvmmsg/sendmmsg, canned answer)"
  if [ -x "$LIMIT" ]; then
    cp "$LIMIT" $D/bin/dns_limit
    ip netns add $NS_LIM && ip -n $NS_LIM link set lo up
    nsenter --net=/run/netns/$NS_LIM $D/bin/dns_limit 127.0.0.11:53 2>$D/lim.log &
    LIMIT_PID=$!
    sleep 0.3
    VER[lim]="(crates/resolver/examples/dns_limit.rs)"
    if check_names lim 127.0.0.11 limip nsenter --net=/run/netns/$NS_LIM &&
       measure lim 127.0.0.11 nsenter --net=/run/netns/$NS_LIM; then STATUS[lim]=ok; else STATUS[lim]="failed (see above)"; fi
    kill_wait "$LIMIT_PID"; LIMIT_PID=""
  else
    STATUS[lim]="no $LIMIT (cargo build --release -p netloom-resolver --example dns_limit)"
  fi
  echo "limit: ${STATUS[lim]}"
fi

# ---------------- table ----------------
declare -A NAME=([nl]="netloom (127.0.0.11)" [av]="aardvark-dns (gateway)" [dk]="docker (127.0.0.11)" [lim]="limit: canned answer (127.0.0.11)")
ratio() { # a b -> a/b
  [ -n "${QPS[$1]:-}" ] && [ -n "${QPS[$2]:-}" ] && awk -v a="${QPS[$1]}" -v b="${QPS[$2]}" 'BEGIN{printf "%.2f×", a/b}' || echo "n/a"
}
TABLE=$D/table.md
{
  echo "| engine | qps (max, 100 outstanding) | avg latency at max (µs) | avg latency at ${LAT_QPS} qps (µs) | sd at ${LAT_QPS} qps (µs) | lost (max / ${LAT_QPS} qps) | response codes (max run) | netloom qps ÷ this |"
  echo "|---|---:|---:|---:|---:|---|---|---:|"
  for e in nl av dk lim; do
    if [ -n "${QPS[$e]:-}" ]; then
      echo "| ${NAME[$e]} ${VER[$e]} | ${QPS[$e]} | ${LAT[$e]} | ${LAT1K[$e]:--} | ${SD1K[$e]:--} | ${LOST[$e]} / ${LOST1K[$e]:--} | ${RCODE[$e]} | $(ratio nl $e) |"
    else
      echo "| ${NAME[$e]} ${VER[$e]} | - | - | - | - | - | ${STATUS[$e]} | - |"
    fi
  done
} > $TABLE

# targets, against the best peer of this run (highest qps; lowest latency at LAT_QPS)
BEST_QPS=""; BEST_LAT=""; BQ=""; BL=""
for e in av dk; do
  if [ -n "${QPS[$e]:-}" ] && { [ -z "$BEST_QPS" ] || [ "${QPS[$e]}" -gt "$BEST_QPS" ]; }; then BEST_QPS=${QPS[$e]}; BQ=$e; fi
  if [ -n "${LAT1K[$e]:-}" ] && { [ -z "$BEST_LAT" ] || [ "${LAT1K[$e]}" -lt "$BEST_LAT" ]; }; then BEST_LAT=${LAT1K[$e]}; BL=$e; fi
done
TARGETS=""
if [ -n "${QPS[nl]:-}" ] && [ -n "$BEST_QPS" ]; then
  TARGETS+=$(awk -v a="${QPS[nl]}" -v b="$BEST_QPS" -v n="$BQ" 'BEGIN{printf "qps: netloom %d / best peer (%s) %d = %.2f× (target ≥ 2.5×: %s)", a, n, b, a/b, (a >= 2.5*b) ? "PASS" : "MISS"}')$'\n'
fi
if [ -n "${LAT1K[nl]:-}" ] && [ -n "$BEST_LAT" ]; then
  TARGETS+=$(awk -v a="${LAT1K[nl]}" -v b="$BEST_LAT" -v n="$BL" -v q="$LAT_QPS" 'BEGIN{printf "avg latency at %d qps: netloom %d µs / best peer (%s) %d µs = %.2f (target ≤ 0.5: %s)", q, a, n, b, (b > 0 ? a/b : 0), (a <= 0.5*b) ? "PASS" : "MISS"}')$'\n'
fi
if [ -n "${QPS[nl]:-}" ] && [ -n "${QPS[lim]:-}" ]; then
  TARGETS+=$(awk -v a="${QPS[nl]}" -v b="${QPS[lim]}" 'BEGIN{printf "netloom reaches %.0f%% of the limit responder'"'"'s qps", 100*a/b}')$'\n'
fi

echo
echo "== results =="
echo "netloom  ${VER[nl]} ($NETLOOMD) — ${STATUS[nl]}"
echo "aardvark ${VER[av]} — ${STATUS[av]}"
echo "docker   ${VER[dk]} (containerd $(containerd --version 2>/dev/null | awk '{print $3}'), runc $(runc --version 2>/dev/null | awk 'NR==1{print $3}')) — ${STATUS[dk]}"
echo "limit    ${VER[lim]} — ${STATUS[lim]}"
echo "dnsperf $(dpkg-query -W -f='${Version}' dnsperf 2>/dev/null), $NAMES names ($NSRV containers × $PER aliases, all queried in a cycle), from the client container's netns; load at end $(cut -d' ' -f1-3 /proc/loadavg)"
for e in nl av dk lim; do [ -n "${CHECK[$e]:-}" ] && echo "correctness ${NAME[$e]}: ${CHECK[$e]}"; done
echo
cat $TABLE
echo
printf '%s' "$TARGETS"
if [ -s $D/err.log ]; then echo "--- stderr of failed / noisy setup steps (last 10 lines) ---"; tail -10 $D/err.log; fi
if [ -n "${RESULTS:-}" ]; then { cat $TABLE; echo; printf '%s' "$TARGETS"; } > "$RESULTS"; echo "table written to $RESULTS"; fi
if [ -n "${DNSPERF_LOG:-}" ]; then cp $D/dnsperf.log "$DNSPERF_LOG"; echo "raw dnsperf output written to $DNSPERF_LOG"; fi
