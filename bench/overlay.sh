#!/usr/bin/env bash
# Overlay data-plane throughput: container <-> container across two simulated hosts (network
# namespaces on two L2 segments joined by a router namespace), iperf3 TCP
#   (n) through netloom's overlay driver (crates/drivers/examples/overlay_pair.rs: sandbox per
#       host with a bridge and a VXLAN device, peers as static FDB/neighbour entries), and
#   (h) through the same VXLAN path built by hand with `ip` between the same host namespaces
#       (VXLAN device created from the host namespace into a sandbox namespace, nolearning,
#       proxy, local address, UDP 4789, bridge, veth, static entries, MTU 1450).
# Target: n/h >= 0.9. Both paths are set up first; then REPS rounds run one iperf3 client per
# path, alternating, so drifts of the (shared) machine hit both alike. Each figure is the
# median of the REPS runs (received Gbit/s of `iperf3 -c ... -t DUR -J`).
# Everything lives in namespaces created here and is removed by a trap on EXIT/INT/TERM.
#
# Usage (root): bench/overlay.sh        Env: REPS=5 DUR=5 PAIR=<path to overlay_pair>
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "overlay.sh: run as root" >&2; exit 1; }
REPS=${REPS:-5}; DUR=${DUR:-5}
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
TAG=nlov$$
D=/tmp/nlov.$$

export DEBIAN_FRONTEND=noninteractive
need=()
for c in iperf3:iperf3 jq:jq nsenter:util-linux; do command -v ${c%%:*} >/dev/null || need+=(${c#*:}); done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; }
fi
if [ -z "${PAIR:-}" ]; then
  (cd "$REPO" && cargo build -q -p netloom-drivers --example overlay_pair)
  PAIR=$REPO/target/debug/examples/overlay_pair
fi

NSLIST=(); SRV_PIDS=(); PAIR_PID=""
cleanup() {
  local rc=$? p m
  set +e; trap - EXIT INT TERM
  for p in "${SRV_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "$PAIR_PID" ]; then exec 9>&-; wait "$PAIR_PID" 2>/dev/null; fi
  for m in "${NSLIST[@]}"; do ip netns del "$m" 2>/dev/null; done
  rm -rf "$D"
  if ip netns list | grep -q "^$TAG-" || ls -d /tmp/netloom-overlay-pair-* >/dev/null 2>&1; then
    echo "cleanup: LEFT OVER: $(ip netns list | grep "^$TAG-" | tr '\n' ' ') $(ls -d /tmp/netloom-overlay-pair-* 2>/dev/null)" >&2
  else
    echo "cleanup: ok (no netns or files left)"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkns() { ip netns add "$1"; NSLIST+=("$1"); ip -n "$1" link set lo up; }
median() { sort -g | awk '{a[NR]=$1} END{ if(NR%2){print a[(NR+1)/2]} else {printf "%.2f\n",(a[NR/2]+a[NR/2+1])/2} }'; }
start_srv() {
  local pf=$D/srv.${#SRV_PIDS[@]}.pid
  nsenter --net="/run/netns/$1" iperf3 -s -p 5201 -D --pidfile "$pf" >/dev/null
  for _ in $(seq 50); do [ -s "$pf" ] && break; sleep 0.1; done
  SRV_PIDS+=("$(cat "$pf")")
}
iperf_once() { # client-netns ip -> Gbit/s received, or FAIL
  local out
  if out=$(nsenter --net="/run/netns/$1" iperf3 -c "$2" -p 5201 -t "$DUR" -J 2>/dev/null); then
    echo "$out" | jq '.end.sum_received.bits_per_second/1e9' | xargs printf '%.2f'
  else echo FAIL; fi
}
mkdir -p "$D"

# ---------------- underlay: h1 (198.18.1.11) -- router -- h2 (198.18.2.12) ----------------
mkns $TAG-r; mkns $TAG-h1; mkns $TAG-h2
ip netns exec $TAG-r sysctl -qw net.ipv4.ip_forward=1
for i in 1 2; do
  ip link add eth0 netns $TAG-h$i type veth peer name r$i netns $TAG-r
  ip -n $TAG-r addr add 198.18.$i.1/24 dev r$i; ip -n $TAG-r link set r$i up
  ip -n $TAG-h$i addr add 198.18.$i.$((10 + i))/24 dev eth0; ip -n $TAG-h$i link set eth0 up
  ip -n $TAG-h$i route add default via 198.18.$i.1
  ip netns exec $TAG-h$i sysctl -qw net.ipv4.ip_forward=1
done

# ---------------- (n) netloom's overlay driver ----------------
mkns $TAG-c1; mkns $TAG-c2
mkfifo "$D/pair.in"
"$PAIR" /run/netns/$TAG-h1 198.18.1.11 /run/netns/$TAG-c1 10.90.0.2 \
        /run/netns/$TAG-h2 198.18.2.12 /run/netns/$TAG-c2 10.90.0.3 < "$D/pair.in" > "$D/pair.out" 2>&1 &
PAIR_PID=$!
exec 9> "$D/pair.in"
for _ in $(seq 100); do grep -q ready "$D/pair.out" 2>/dev/null && break; kill -0 $PAIR_PID 2>/dev/null || break; sleep 0.1; done
grep -q ready "$D/pair.out" || { echo "overlay_pair failed: $(cat "$D/pair.out")" >&2; exit 1; }

# ---------------- (h) the same path by hand ----------------
mkns $TAG-d1; mkns $TAG-d2
for i in 1 2; do
  j=$((3 - i)); me=198.18.$i.$((10 + i)); peer=198.18.$j.$((10 + j))
  mkns $TAG-x$i
  # created from the host namespace (its socket stays there), born in the sandbox
  ip -n $TAG-h$i link add vxh netns $TAG-x$i mtu 1450 type vxlan id 4097 local $me dstport 4789 nolearning proxy
  ip -n $TAG-x$i link add br0 mtu 1450 type bridge
  ip -n $TAG-x$i addr add 10.91.0.1/24 dev br0; ip -n $TAG-x$i link set br0 up
  ip -n $TAG-x$i link set vxh master br0 up
  ip link add eth0 netns $TAG-d$i mtu 1450 address 02:42:0a:5b:00:0$((i + 1)) type veth peer name vd netns $TAG-x$i mtu 1450
  ip -n $TAG-x$i link set vd master br0 up
  ip -n $TAG-d$i addr add 10.91.0.$((i + 1))/24 dev eth0; ip -n $TAG-d$i link set eth0 up
  ip netns exec $TAG-x$i bridge fdb add 02:42:0a:5b:00:0$((j + 1)) dev vxh dst $peer self permanent
  ip -n $TAG-x$i neigh add 10.91.0.$((j + 1)) lladdr 02:42:0a:5b:00:0$((j + 1)) dev vxh nud permanent
done

ip netns exec $TAG-c1 ping -c 1 -W 2 10.90.0.3 >/dev/null || { echo "(n) path does not ping" >&2; exit 1; }
ip netns exec $TAG-d1 ping -c 1 -W 2 10.91.0.3 >/dev/null || { echo "(h) path does not ping" >&2; exit 1; }
MTU_N=$(ip -n $TAG-c1 -j link show eth0 | jq '.[0].mtu'); MTU_H=$(ip -n $TAG-d1 -j link show eth0 | jq '.[0].mtu')
start_srv $TAG-c2; start_srv $TAG-d2

declare -A VALS
for r in $(seq "$REPS"); do
  VALS[n]+="$(iperf_once $TAG-c1 10.90.0.3) "
  VALS[h]+="$(iperf_once $TAG-d1 10.91.0.3) "
  echo "round $r: n=$(echo ${VALS[n]} | awk '{print $NF}') h=$(echo ${VALS[h]} | awk '{print $NF}')" >&2
done
med() { echo "${VALS[$1]}" | tr ' ' '\n' | grep -v '^$' | grep -v FAIL | median; }
N=$(med n); H=$(med h)
RATIO=$(awk -v a="$N" -v b="$H" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "n/a" }')
VERDICT=$(awk -v r="$RATIO" 'BEGIN{ print (r >= 0.9) ? "PASS" : "MISS" }')
echo
echo "| path | MTU in container | Gbit/s (median of $REPS × ${DUR}s) |"
echo "|---|---|---|"
echo "| (n) netloom overlay driver, c1 -> c2 across the router | $MTU_N | $N |"
echo "| (h) VXLAN path by hand, d1 -> d2 across the router | $MTU_H | $H |"
echo
echo "ratio n/h = $RATIO (target >= 0.9): $VERDICT"
echo "runs n: ${VALS[n]}"
echo "runs h: ${VALS[h]}"
