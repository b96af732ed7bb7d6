#!/usr/bin/env bash
# CNI ADD/DEL latency: netloom-cni vs the reference bridge + host-local plugins
# (Debian containernetworking-plugins, /usr/lib/cni), with equivalent configs:
#   bridge, isGateway, ipMasq false, host-local 10.242.0.0/16, default route.
# For each plugin: its own throwaway "host" netns (the plugin runs there through
# `nsenter --net=`, so the bridge never touches the real host), N container namespaces
# created untimed, then N timed ADDs, then N timed DELs. A sample is the wall time of
# one plugin invocation as a runtime makes it (fork/exec of the plugin from a shell that
# already lives in the host netns, env + stdin, stdout captured), taken with bash's
# $EPOCHREALTIME.
# Usage (root): bench/cni.sh      Env: N=50  CNI=<path to netloom-cni>  REF_MASQ=1 (also
# time the reference with ipMasq:true, as /work/shared/lab/peers/03_cni_plugins.sh does)
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "cni.sh: run as root" >&2; exit 1; }
N=${N:-50}
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
REF=/usr/lib/cni
if [ ! -x $REF/bridge ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends containernetworking-plugins >/dev/null
fi
if [ -z "${CNI:-}" ]; then
  CNI=$REPO/target/release/netloom-cni
  [ -x "$CNI" ] || { echo "building release netloom-cni"; (cd "$REPO" && cargo build -q --release -p netloom-cni); }
fi
TAG=nlcb$$
D=/tmp/$TAG
mkdir -p $D
cp "$CNI" $D/netloom-cni            # the shared target dir may be rebuilt during the run
cleanup() {
  set +e
  for n in $(ip netns list | awk '{print $1}' | grep "^$TAG-"); do ip netns del "$n"; done
  rm -rf $D
}
trap cleanup EXIT

conf() { # type ipMasq
  cat <<EOF
{"cniVersion":"1.0.0","name":"$TAG","type":"$1","bridge":"nlcb0","isGateway":true,"ipMasq":$2,
 "ipam":{"type":"host-local","subnet":"10.242.0.0/16","dataDir":"$D/ipam-$1-$2","routes":[{"dst":"0.0.0.0/0"}]}}
EOF
}
# The timed loops run in one bash that is itself inside the "host" netns, so each sample
# is exactly what a runtime pays: fork/exec of the plugin (env + stdin), nothing else.
cat > $D/loop.sh <<'EOS'
# loop.sh CMD plugin-path first last conf outfile
cmd=$1 bin=$2 first=$3 last=$4 conf=$5 out=$6
for i in $(seq $first $last); do
  t0=$EPOCHREALTIME
  res=$(CNI_COMMAND=$cmd CNI_CONTAINERID=$(printf '%s%059x' "$TAG" "$i") CNI_NETNS=/run/netns/$TAG-c$i \
        CNI_IFNAME=eth0 CNI_PATH=$REF "$bin" <<<"$conf") || { echo "$cmd c$i failed: $res" >&2; exit 1; }
  t1=$EPOCHREALTIME
  [ -n "$out" ] && echo "($t1 - $t0) * 1000" | bc -l >> "$out"
  [ "$cmd" = ADD ] && printf '%s\n' "$res" > "$D/last-result.json"
done
exit 0
EOS
export TAG D REF
inhost() { local host=$1; shift; nsenter --net=/run/netns/$host bash $D/loop.sh "$@"; }
stats() { # file -> "median p90"
  sort -g "$1" | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; p=a[int(NR*0.9+0.999)]; printf "%.2f %.2f", m, p}'
}
declare -A MED
run_plugin() { # label plugin-path type ipMasq
  local label=$1 bin=$2 cfg host=$TAG-$1 i
  cfg=$(conf "$3" "$4")
  ip netns add $host; ip -n $host link set lo up
  for i in $(seq 0 $N); do ip netns add $TAG-c$i; done
  # warm-up container 0 (untimed): page cache, bridge creation
  inhost $host ADD "$bin" 0 0 "$cfg" ""; inhost $host DEL "$bin" 0 0 "$cfg" ""
  : > $D/$label.add; : > $D/$label.del
  inhost $host ADD "$bin" 1 $N "$cfg" $D/$label.add
  ip netns exec $TAG-c$N ping -c1 -W1 10.242.0.1 >/dev/null || { echo "$label: c$N cannot ping its gateway" >&2; exit 1; }
  [ "$label" = netloom ] && echo "sample netloom-cni result: $(cat $D/last-result.json)"
  inhost $host DEL "$bin" 1 $N "$cfg" $D/$label.del
  left=$(ls $D/ipam-$3-$4/$TAG 2>/dev/null | grep -c '^10\.' || true)
  [ "$left" = 0 ] || { echo "$label: $left addresses left after DEL" >&2; exit 1; }
  paste -d' ' $D/$label.add $D/$label.del | awk '{print $1+$2}' > $D/$label.both
  for k in add del both; do MED[$label.$k]=$(stats $D/$label.$k); done
  for i in $(seq 0 $N); do ip netns del $TAG-c$i; done
  ip netns del $host
}

run_plugin netloom $D/netloom-cni netloom-cni false
run_plugin reference $REF/bridge bridge false
[ "${REF_MASQ:-0}" = 1 ] && run_plugin ref-masq $REF/bridge bridge true

med() { echo "${MED[$1]}" | cut -d' ' -f1; }
p90() { echo "${MED[$1]}" | cut -d' ' -f2; }
echo
echo "== CNI ADD/DEL, N=$N per plugin, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   reference: containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null)"
printf '| %-28s | %14s | %14s | %14s |\n' "plugin (ms, median / p90)" ADD DEL ADD+DEL
printf '|%s|%s|%s|%s|\n' "------------------------------" "----------------" "----------------" "----------------"
labels="netloom reference"; [ "${REF_MASQ:-0}" = 1 ] && labels="$labels ref-masq"
for l in $labels; do
  name=$l; [ $l = netloom ] && name="netloom-cni"; [ $l = reference ] && name="bridge+host-local"
  [ $l = ref-masq ] && name="bridge+host-local, ipMasq"
  printf '| %-28s | %6s / %5s | %6s / %5s | %6s / %5s |\n' "$name" \
    "$(med $l.add)" "$(p90 $l.add)" "$(med $l.del)" "$(p90 $l.del)" "$(med $l.both)" "$(p90 $l.both)"
done
for k in add del both; do
  r=$(echo "$(med reference.$k) / $(med netloom.$k)" | bc -l)
  printf 'ratio reference/netloom-cni %-5s %.1fx\n' "$k" "$r"
done
r=$(echo "$(med reference.both) / $(med netloom.both)" | bc -l)
if (( $(echo "$r >= 5" | bc -l) )); then echo "ADD+DEL target >= 5x: PASS"; else echo "ADD+DEL target >= 5x: MISS"; fi
