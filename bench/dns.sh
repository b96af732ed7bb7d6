#!/usr/bin/env bash
# Embedded DNS server throughput and latency: netloom vs aardvark-dns vs Docker, side by side.
#
# For each engine, one name ("srv", the server container) is queried from the client
# container's network namespace with dnsperf (run through `nsenter --net`):
#   max throughput : dnsperf -l $DNSPERF_SECS          (100 outstanding, dnsperf's default)
#   latency        : dnsperf -l $LAT_SECS -Q $LAT_QPS  (fixed 1000 qps by default)
# Before measuring: a correctness line (`dig +short srv` must return srv's address) and an
# untimed 1 s dnsperf warm-up.
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
# Usage (root): bench/dns.sh
# Env: DNSPERF_SECS=10 LAT_SECS=5 LAT_QPS=1000 NETLOOMD=<path> NETLOOM=<path> DOCKERD=<path>
#      SKIP_NETLOOM=1 SKIP_AARDVARK=1 SKIP_DOCKER=1
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
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
TAG=nld$$                       # unique per run: netns names, cgroup parent, temp dir
D=/tmp/nldns.$$
NS_NL=$TAG-nl; NS_DK=$TAG-dk; NS_AV=$TAG-av; NS_AVSRV=$TAG-avsrv; NS_AVCLI=$TAG-avcli
DK=/usr/bin/docker              # Debian's 20.10 client (not any other docker on PATH)
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
NETAVARK=/usr/lib/podman/netavark
AARDVARK=/usr/lib/podman/aardvark-dns
DK_SOCK=$D/dk/docker.sock
NL_SOCK=$D/nl/exec/netloom.sock
IMGNAME=bbx
NET=dnsnet
AV_GW=10.241.0.1; AV_SRV=10.241.0.2; AV_CLI=10.241.0.3

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
DOCKERD_PID=""; NETLOOMD_PID=""; AV_UP=""
# dockerd/containerd create these fixed paths regardless of --exec-root; remove them afterwards
# (only if empty and absent when we started). Same for /etc/netns (aardvark's resolv.conf).
# kill_wait, children, stop_docker, stop_netloom, note_new_rundirs
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
note_new_rundirs /etc/netns
stop_aardvark() {
  [ -n "$AV_UP" ] || return 0
  local n p
  # netavark teardown of the last container stops aardvark-dns; then make sure by pid
  for n in srv cli; do
    [ -f $D/av/$n.json ] && ip netns exec $NS_AV $NETAVARK --config $D/av/cfg --aardvark-binary $AARDVARK \
      teardown /run/netns/$TAG-av$n < $D/av/$n.json >/dev/null 2>&1
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
  for m in $NS_NL $NS_DK $NS_AVCLI $NS_AVSRV $NS_AV; do ip netns del $m 2>/dev/null; done
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
# measure ENGINE SERVER NSENTER... : correctness dig, warm-up, then the two dnsperf runs.
# The name queried is srv; EXPECT holds srv's address. Returns 1 if the correctness check fails.
measure() {
  local e=$1 srv=$2; shift 2; local X=("$@") got out1 out2
  got=$("${X[@]}" dig +short +time=2 +tries=1 @"$srv" -q srv -t A 2>&1 | tr '\n' ' ' | sed 's/ *$//')
  CHECK[$e]="dig +short @$srv -q srv -t A -> ${got:-<empty>} (srv is $EXPECT)"
  echo "  correctness: ${CHECK[$e]}"
  if [ "$got" != "$EXPECT" ]; then CHECK[$e]+=" WRONG"; return 1; fi
  echo "srv A" > $D/q.txt
  "${X[@]}" dnsperf -s "$srv" -d $D/q.txt -l 1 >/dev/null 2>&1 || true          # warm-up, untimed
  echo "  dnsperf max throughput, ${DNSPERF_SECS} s ..."
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
# container engines with a Docker-style CLI (netloom, docker): NET + srv + cli, then measure
bench_cli_engine() { # engine cli...
  local e=$1; shift; local C=("$@") key
  must "${C[@]}" network create $NET || return 1
  must "${C[@]}" run -d --name srv --network $NET $IMGNAME sleep 3600 || return 1
  must "${C[@]}" run -d --name cli --network $NET $IMGNAME sleep 3600 || return 1
  EXPECT=$("${C[@]}" inspect -f '{{json .NetworkSettings.Networks}}' srv 2>>$D/err.log | jq -r '.[].IPAddress' | head -1)
  key=$("${C[@]}" inspect -f '{{.NetworkSettings.SandboxKey}}' cli 2>>$D/err.log)
  [ -n "$key" ] && [ -e "$key" ] || { echo "  no SandboxKey for cli ('$key')" >&2; return 1; }
  echo "  cli SandboxKey: $key"
  measure $e 127.0.0.11 nsenter --net="$key"
}

rm -rf "$D"; mkdir -p "$D/dk" "$D/nl" "$D/av/cfg" "$D/bin"; : > "$D/err.log"; : > "$D/dnsperf.log"
echo "{\"deprecated-key-path\": \"$D/dk/key.json\"}" > "$D/dk/daemon.json"   # else /etc/docker/key.json
echo '{"dns": ["127.0.0.1"]}' > "$D/nl/daemon.json"   # same as dockerd --dns 127.0.0.1 below

# ---------------- image: busybox-static rootfs ----------------
RF=$D/rootfs; mkdir -p $RF/bin $RF/etc $RF/tmp $RF/proc $RF/sys $RF/dev
cp /bin/busybox $RF/bin/busybox
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox $RF/bin/$a; done
tar -C $RF -cf $D/rootfs.tar .

for e in nl av dk; do STATUS[$e]=skipped; VER[$e]=-; done
echo "== embedded DNS: dnsperf ${DNSPERF_SECS} s max + ${LAT_SECS} s at ${LAT_QPS} qps; $(nproc) vCPU, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"

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
av_json() { # name ip
  cat <<EOF
{
  "container_id": "$(printf '%s' "$TAG-$1" | sha256sum | cut -c1-64)",
  "container_name": "$1",
  "networks": { "$NET": { "static_ips": ["$2"], "interface_name": "eth0" } },
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
    for n in srv cli; do
      [ $n = srv ] && ip=$AV_SRV || ip=$AV_CLI
      av_json $n $ip > $D/av/$n.json
      ip netns add $TAG-av$n
      if ! ip netns exec $NS_AV $NETAVARK --config $D/av/cfg --aardvark-binary $AARDVARK \
          setup /run/netns/$TAG-av$n < $D/av/$n.json > $D/av/$n.out 2>>$D/err.log; then
        echo "  netavark setup $n failed: $(tail -2 $D/err.log | tr '\n' ' ')" >&2; ok=0; break
      fi
    done
    if [ $ok = 1 ]; then
      echo "  aardvark-dns pid $(cat $D/av/cfg/aardvark-dns/aardvark.pid 2>/dev/null || echo '?')"
      EXPECT=$AV_SRV
      if measure av $AV_GW nsenter --net=/run/netns/$NS_AVCLI; then STATUS[av]=ok; else STATUS[av]="failed (see above)"; fi
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

# ---------------- table ----------------
declare -A NAME=([nl]="netloom (127.0.0.11)" [av]="aardvark-dns (gateway)" [dk]="docker (127.0.0.11)")
ratio() { # a b -> a/b
  [ -n "${QPS[$1]:-}" ] && [ -n "${QPS[$2]:-}" ] && awk -v a="${QPS[$1]}" -v b="${QPS[$2]}" 'BEGIN{printf "%.2f×", a/b}' || echo "n/a"
}
TABLE=$D/table.md
{
  echo "| engine | qps (max, 100 outstanding) | avg latency at max (µs) | avg latency at ${LAT_QPS} qps (µs) | sd at ${LAT_QPS} qps (µs) | lost (max / ${LAT_QPS} qps) | response codes (max run) | netloom qps ÷ this |"
  echo "|---|---:|---:|---:|---:|---|---|---:|"
  for e in nl av dk; do
    if [ -n "${QPS[$e]:-}" ]; then
      echo "| ${NAME[$e]} ${VER[$e]} | ${QPS[$e]} | ${LAT[$e]} | ${LAT1K[$e]:--} | ${SD1K[$e]:--} | ${LOST[$e]} / ${LOST1K[$e]:--} | ${RCODE[$e]} | $(ratio nl $e) |"
    else
      echo "| ${NAME[$e]} ${VER[$e]} | - | - | - | - | - | ${STATUS[$e]} | - |"
    fi
  done
} > $TABLE

echo
echo "== results =="
echo "netloom  ${VER[nl]} ($NETLOOMD) — ${STATUS[nl]}"
echo "aardvark ${VER[av]} — ${STATUS[av]}"
echo "docker   ${VER[dk]} (containerd $(containerd --version 2>/dev/null | awk '{print $3}'), runc $(runc --version 2>/dev/null | awk 'NR==1{print $3}')) — ${STATUS[dk]}"
echo "dnsperf $(dpkg-query -W -f='${Version}' dnsperf 2>/dev/null), one name (srv A), queried from the client container's netns; load at end $(cut -d' ' -f1-3 /proc/loadavg)"
for e in nl av dk; do [ -n "${CHECK[$e]:-}" ] && echo "correctness ${NAME[$e]}: ${CHECK[$e]}"; done
echo
cat $TABLE
echo
echo "qps ratio netloom/aardvark: $(ratio nl av)   netloom/docker: $(ratio nl dk)"
if [ -s $D/err.log ]; then echo "--- stderr of failed / noisy setup steps (last 10 lines) ---"; tail -10 $D/err.log; fi
if [ -n "${RESULTS:-}" ]; then cp $TABLE "$RESULTS"; echo "table written to $RESULTS"; fi
if [ -n "${DNSPERF_LOG:-}" ]; then cp $D/dnsperf.log "$DNSPERF_LOG"; echo "raw dnsperf output written to $DNSPERF_LOG"; fi
