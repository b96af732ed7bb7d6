#!/usr/bin/env bash
# Data-plane throughput: iperf3 TCP through netloom's paths and through the same paths built by
# hand, in one run (approach of /work/shared/lab/peers/01_dataplane_iperf3.sh):
#   (a) veth pair between two netns                                   (raw)
#   (b) linux bridge set up by hand, two netns on it                  (raw)
#   (c) netloom: container <-> container on one netloom bridge
#   (d) nftables DNAT set up by hand: outside netns -> "host" netns (DNAT) -> bridge -> server netns
#   (e) netloom published port (-p 8080:5201): outside netns -> daemon netns -> container
#   (f) docker.io ctr <-> ctr and (g) docker.io -p, if dockerd starts (else skipped with the reason)
# Targets: c/b >= 0.95 and e/d >= 0.95 (netloom's firewall and plumbing cost at most 5 %).
#
# All paths are set up first; then REPS rounds run one iperf3 client per path, in the same
# order each round, so slow drifts of the (shared) machine hit every path alike. Each figure is
# the median of the REPS runs (received Gbit/s of `iperf3 -c ... -t DUR -J`).
# iperf3 is the host's binary, entered into each namespace with `nsenter --net=<netns file>`
# (a container's netns file is its SandboxKey). Everything lives in namespaces created here
# and is removed by a trap on EXIT/INT/TERM.
#
# Usage (root): bench/dataplane.sh
# Env: REPS=3 DUR=5 SKIP_DOCKER=1 NETLOOMD=<path> NETLOOM=<path> DOCKERD=<path>
set -euo pipefail
# netloom's and containerd's shims daemonize: be a subreaper so they are reaped here and so
# cleanup can find them by parent pid.
if [ -z "${NLB_SUBREAPER:-}" ] && command -v python3 >/dev/null; then
  export NLB_SUBREAPER=1
  exec python3 -c 'import ctypes,os,sys; ctypes.CDLL(None).prctl(36,1,0,0,0); os.execvp(sys.argv[1], sys.argv[1:])' bash "$0" "$@"
fi
[ "$(id -u)" = 0 ] || { echo "dataplane.sh: run as root" >&2; exit 1; }

REPS=${REPS:-3}; DUR=${DUR:-5}
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
TAG=nldp$$                      # netns names, cgroup parent, containerd namespace
D=/tmp/nldp.$$
DK=/usr/bin/docker
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}

export DEBIAN_FRONTEND=noninteractive
need=()
for c in iperf3:iperf3 jq:jq nft:nftables nsenter:util-linux; do
  command -v ${c%%:*} >/dev/null || need+=(${c#*:})
done
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; }
fi

if [ -z "${NETLOOMD:-}" ]; then
  if [ -x "$REPO/target/release/netloomd" ] && [ -x "$REPO/target/release/netloom" ]; then
    NETLOOMD=$REPO/target/release/netloomd; NL_BUILD=release
  else
    NETLOOMD=$REPO/target/debug/netloomd; NL_BUILD=debug
  fi
fi
NETLOOM=${NETLOOM:-$(dirname "$NETLOOMD")/netloom}; NL_BUILD=${NL_BUILD:-custom}

# ---------------- cleanup ----------------
NSLIST=(); SRV_PIDS=(); NETLOOMD_PID=""; DOCKERD_PID=""
# kill_wait, children, stop_docker, stop_netloom, note_new_rundirs
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
note_new_rundirs
NL() { "$D/bin/netloom" -H "unix://$D/nl/exec/netloom.sock" "$@"; }
DKC() { "$DK" -H "unix://$D/dk/docker.sock" "$@"; }
cleanup() {
  local rc=$?
  set +e; trap - EXIT INT TERM
  local p c m i
  for p in "${SRV_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "$NETLOOMD_PID" ] && kill -0 "$NETLOOMD_PID" 2>/dev/null; then
    for c in $(NL ps -aq 2>/dev/null); do NL rm -f "$c" >/dev/null 2>&1; done
    kill_wait "$NETLOOMD_PID"
  fi
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    for c in $(DKC ps -aq 2>/dev/null); do DKC rm -f "$c" >/dev/null 2>&1; done
    kill_wait "$DOCKERD_PID"
  fi
  for i in 1 2 3 4 5; do
    children; [ ${#KIDS[@]} -eq 0 ] && break
    for p in "${KIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    sleep 0.2; wait 2>/dev/null
  done
  for m in $(awk -v d="$D/" 'index($2,d)==1{print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  for m in "${NSLIST[@]}"; do ip netns del "$m" 2>/dev/null; done
  for m in /sys/fs/cgroup/*/$TAG /sys/fs/cgroup/$TAG; do [ -d "$m" ] && rmdir "$m" 2>/dev/null; done
  for m in "${NEWDIRS[@]}"; do [ -d "$m" ] && rmdir "$m" 2>/dev/null; done
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

mkns() { ip netns add "$1"; NSLIST+=("$1"); ip -n "$1" link set lo up; }
median() { sort -g | awk '{a[NR]=$1} END{ if(NR%2){print a[(NR+1)/2]} else {printf "%.2f\n",(a[NR/2]+a[NR/2+1])/2} }'; }
# iperf3 server (port 5201, all addresses) in a netns file; remembered for cleanup
start_srv() {
  local pf=$D/srv.${#SRV_PIDS[@]}.pid
  nsenter --net="$1" iperf3 -s -p 5201 -D --pidfile "$pf" >/dev/null
  for _ in $(seq 50); do [ -s "$pf" ] && break; sleep 0.1; done
  SRV_PIDS+=("$(cat "$pf")")
}
# one client run: netns-file ip port [secs] -> Gbit/s received, or FAIL
iperf_once() {
  local out
  if out=$(nsenter --net="$1" iperf3 -c "$2" -p "$3" -t "${4:-$DUR}" -J 2>/dev/null); then
    echo "$out" | jq '.end.sum_received.bits_per_second/1e9' | xargs printf '%.2f'
  else echo FAIL; fi
}

rm -rf "$D"; mkdir -p "$D/bin" "$D/nl" "$D/dk"
RF=$D/rootfs; mkdir -p $RF/bin $RF/etc $RF/tmp $RF/proc $RF/sys $RF/dev
cp /bin/busybox $RF/bin/busybox
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox $RF/bin/$a; done
tar -C $RF -cf $D/rootfs.tar .

# PATHS: key -> "client-netns-file ip port"; LABEL: key -> text
declare -A PATHS LABEL VALS STATUS
ORDER=()
addpath() { PATHS[$1]="$3"; LABEL[$1]="$2"; ORDER+=("$1"); }

# ---------------- (a) veth pair ----------------
mkns $TAG-a1; mkns $TAG-a2
ip link add va1 netns $TAG-a1 type veth peer name va2 netns $TAG-a2
ip -n $TAG-a1 addr add 10.231.0.1/24 dev va1; ip -n $TAG-a1 link set va1 up
ip -n $TAG-a2 addr add 10.231.0.2/24 dev va2; ip -n $TAG-a2 link set va2 up
start_srv /run/netns/$TAG-a2
addpath a "(a) veth pair, raw" "/run/netns/$TAG-a1 10.231.0.2 5201"

# ---------------- (b) linux bridge by hand ----------------
mkns $TAG-bh; mkns $TAG-b1; mkns $TAG-b2
ip -n $TAG-bh link add br0 type bridge; ip -n $TAG-bh link set br0 up
for i in 1 2; do
  ip link add eth0 netns $TAG-b$i type veth peer name v$i netns $TAG-bh
  ip -n $TAG-bh link set v$i master br0 up
  ip -n $TAG-b$i addr add 10.232.0.$((i+1))/24 dev eth0; ip -n $TAG-b$i link set eth0 up
done
start_srv /run/netns/$TAG-b2
addpath b "(b) linux bridge, raw" "/run/netns/$TAG-b1 10.232.0.3 5201"

# ---------------- (d) nftables DNAT by hand ----------------
mkns $TAG-dh; mkns $TAG-dc; mkns $TAG-dx
ip -n $TAG-dh link add br0 type bridge; ip -n $TAG-dh addr add 10.234.0.1/24 dev br0; ip -n $TAG-dh link set br0 up
ip link add eth0 netns $TAG-dc type veth peer name vc netns $TAG-dh
ip -n $TAG-dh link set vc master br0 up
ip -n $TAG-dc addr add 10.234.0.2/24 dev eth0; ip -n $TAG-dc link set eth0 up
ip -n $TAG-dc route add default via 10.234.0.1
ip link add eth0 netns $TAG-dx type veth peer name ext netns $TAG-dh
ip -n $TAG-dh addr add 192.168.234.1/24 dev ext; ip -n $TAG-dh link set ext up
ip -n $TAG-dx addr add 192.168.234.2/24 dev eth0; ip -n $TAG-dx link set eth0 up
ip -n $TAG-dx route add default via 192.168.234.1
ip netns exec $TAG-dh sysctl -qw net.ipv4.ip_forward=1
ip netns exec $TAG-dh nft -f - <<'EOF'
table ip dp {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 192.168.234.1 tcp dport 8080 dnat to 10.234.0.2:5201
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.234.0.0/24 oifname != "br0" masquerade
  }
}
EOF
start_srv /run/netns/$TAG-dc
addpath d "(d) nft DNAT by hand, outside -> ctr" "/run/netns/$TAG-dx 192.168.234.1 8080"

# ---------------- netloom: (c) and (e) ----------------
NL_STATUS=ok
cp "$NETLOOMD" "$D/bin/netloomd"; cp "$NETLOOM" "$D/bin/netloom"   # the target dir may be rebuilt under us
mkns $TAG-nl; mkns $TAG-nlx
ip link add out0 netns $TAG-nl type veth peer name eth0 netns $TAG-nlx
ip -n $TAG-nl addr add 198.51.100.1/30 dev out0; ip -n $TAG-nl link set out0 up
ip -n $TAG-nlx addr add 198.51.100.2/30 dev eth0; ip -n $TAG-nlx link set eth0 up
ip -n $TAG-nlx route add default via 198.51.100.1
echo '{}' > $D/nl/daemon.json
nsenter --net=/run/netns/$TAG-nl "$D/bin/netloomd" --data-root $D/nl/data --exec-root $D/nl/exec \
  --config-file $D/nl/daemon.json > $D/nl/netloomd.log 2>&1 &
NETLOOMD_PID=$!
for _ in $(seq 100); do NL version >/dev/null 2>&1 && break; kill -0 $NETLOOMD_PID 2>/dev/null || break; sleep 0.1; done
if NL version >/dev/null 2>&1 &&
   NL image import $D/rootfs.tar bbx >/dev/null &&
   NL network create dpnet >/dev/null &&
   NL run -d --name dps --network dpnet -p 8080:5201 bbx sleep 36000 >/dev/null &&
   NL run -d --name dpc --network dpnet bbx sleep 36000 >/dev/null; then
  NL_SRV_KEY=$(NL inspect -f '{{.NetworkSettings.SandboxKey}}' dps)
  NL_CLI_KEY=$(NL inspect -f '{{.NetworkSettings.SandboxKey}}' dpc)
  NL_SRV_IP=$(NL inspect -f '{{.NetworkSettings.Networks.dpnet.IPAddress}}' dps)
  start_srv "$NL_SRV_KEY"
  addpath c "(c) netloom ctr <-> ctr, one bridge" "$NL_CLI_KEY $NL_SRV_IP 5201"
  addpath e "(e) netloom -p 8080:5201, outside -> ctr" "/run/netns/$TAG-nlx 198.51.100.1 8080"
else
  NL_STATUS="netloom setup failed: $(tail -3 $D/nl/netloomd.log | tr '\n' ' ')"
fi

# ---------------- docker.io: (f) and (g), optional ----------------
DK_STATUS=skipped
if [ -n "${SKIP_DOCKER:-}" ]; then DK_STATUS="skipped (SKIP_DOCKER)"
elif ! { [ -x "$DOCKERD" ] && [ -x $DK ] && command -v containerd >/dev/null && command -v runc >/dev/null; }; then
  DK_STATUS="skipped: docker.io/containerd/runc not installed"
else
  mkns $TAG-dk; mkns $TAG-dkx
  ip link add out0 netns $TAG-dk type veth peer name eth0 netns $TAG-dkx
  ip -n $TAG-dk addr add 198.51.100.5/30 dev out0; ip -n $TAG-dk link set out0 up
  ip -n $TAG-dkx addr add 198.51.100.6/30 dev eth0; ip -n $TAG-dkx link set eth0 up
  ip -n $TAG-dkx route add default via 198.51.100.5
  echo "{\"deprecated-key-path\": \"$D/dk/key.json\"}" > "$D/dk/daemon.json"
  nsenter --net=/run/netns/$TAG-dk "$DOCKERD" --config-file $D/dk/daemon.json \
    --data-root $D/dk/root --exec-root $D/dk/exec -H unix://$D/dk/docker.sock --pidfile $D/dk/docker.pid \
    --containerd-namespace $TAG --containerd-plugins-namespace $TAG-plugins \
    --cgroup-parent /$TAG --dns 127.0.0.1 > $D/dk/dockerd.log 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 240); do DKC version >/dev/null 2>&1 && break; kill -0 $DOCKERD_PID 2>/dev/null || break; sleep 0.25; done
  if ! DKC version >/dev/null 2>&1; then
    DK_STATUS="skipped: dockerd did not start: $(tail -3 $D/dk/dockerd.log | tr '\n' ' ')"
  elif DKC import -c 'CMD ["/bin/sh"]' $D/rootfs.tar bbx >/dev/null &&
       DKC network create dpnet >/dev/null &&
       DKC run -d --name dps --network dpnet -p 8080:5201 bbx sleep 36000 >/dev/null &&
       DKC run -d --name dpc --network dpnet bbx sleep 36000 >/dev/null; then
    DK_STATUS="ok (docker $(DKC version --format '{{.Server.Version}}'), userland-proxy on: outside traffic is iptables DNAT)"
    start_srv "$(DKC inspect -f '{{.NetworkSettings.SandboxKey}}' dps)"
    addpath f "(f) docker ctr <-> ctr, one bridge" "$(DKC inspect -f '{{.NetworkSettings.SandboxKey}}' dpc) $(DKC inspect -f '{{.NetworkSettings.Networks.dpnet.IPAddress}}' dps) 5201"
    addpath g "(g) docker -p 8080:5201, outside -> ctr" "/run/netns/$TAG-dkx 198.51.100.5 8080"
  else
    DK_STATUS="skipped: docker setup failed: $(tail -3 $D/dk/dockerd.log | tr '\n' ' ')"
  fi
fi

# ---------------- measure ----------------
# each netloom path right after its baseline: a b c d e f g
ORDER=($(printf '%s\n' "${ORDER[@]}" | sort))
echo "== dataplane: iperf3 TCP, -t $DUR, $REPS interleaved rounds, Gbit/s; $(nproc) vCPU, kernel $(uname -r); netloom $NL_BUILD build"
echo "   load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for k in "${ORDER[@]}"; do   # 1 s warm-up that also proves the path carries traffic
  read -r ns ip port <<< "${PATHS[$k]}"
  v=$(iperf_once "$ns" "$ip" "$port" 1)
  [ "$v" = FAIL ] && STATUS[$k]="no traffic" || STATUS[$k]=ok
done
for r in $(seq "$REPS"); do
  for k in "${ORDER[@]}"; do
    [ "${STATUS[$k]}" = ok ] || continue
    read -r ns ip port <<< "${PATHS[$k]}"
    VALS[$k]="${VALS[$k]:-} $(iperf_once "$ns" "$ip" "$port")"
  done
done
declare -A MED
for k in "${ORDER[@]}"; do
  if [ "${STATUS[$k]}" = ok ]; then
    MED[$k]=$(printf '%s\n' ${VALS[$k]} | grep -v FAIL | median)
    printf '%-44s median=%6s  raw=[%s]\n' "${LABEL[$k]}" "${MED[$k]}" "${VALS[$k]# }"
  else
    printf '%-44s %s\n' "${LABEL[$k]}" "${STATUS[$k]}"
  fi
done
ratio() { # num den label
  if [ -n "${MED[$1]:-}" ] && [ -n "${MED[$2]:-}" ]; then
    awk -v a="${MED[$1]}" -v b="${MED[$2]}" -v l="$3" 'BEGIN{r=a/b; printf "%-44s %.3f  (target >= 0.95: %s)\n", l, r, (r>=0.95)?"PASS":"MISS"}'
  else printf '%-44s n/a\n' "$3"; fi
}
echo
ratio c b "c/b netloom bridge / raw bridge"
ratio e d "e/d netloom -p / raw nft DNAT"
if [ -n "${MED[f]:-}" ]; then
  awk -v a="${MED[c]:-0}" -v b="${MED[f]}" 'BEGIN{printf "%-44s %.3f\n", "c/f netloom / docker, ctr <-> ctr", a/b}'
  awk -v a="${MED[e]:-0}" -v b="${MED[g]}" 'BEGIN{printf "%-44s %.3f\n", "e/g netloom / docker, -p from outside", a/b}'
fi
echo "netloom: $NL_STATUS"
echo "docker: $DK_STATUS"
echo "   load after: $(cut -d' ' -f1-3 /proc/loadavg)"
