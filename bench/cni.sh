#!/usr/bin/env bash
# CNI ADD/DEL latency: netloom-cni vs the reference bridge + host-local plugins
# (Debian containernetworking-plugins, /usr/lib/cni), with equivalent configs:
#   bridge, isGateway, ipMasq false, host-local 10.242.0.0/16, default route.
# For each plugin: its own throwaway "host" netns (the plugin runs there, so the bridge
# never touches the real host) and N container namespaces created untimed; then, in
# interleaved blocks of B=10 containers, timed ADDs and timed DELs. A sample is the wall time of
# one plugin invocation as a runtime makes it (fork/exec of the plugin from a shell that
# already lives in the host netns, env + stdin, stdout captured), taken with bash's
# $EPOCHREALTIME.
# DEL gets the ADD result as prevResult (as libcni does with its cached result).
# Usage (root): bench/cni.sh      Env: N=50 B=10 KEEP=1 (keep the per-sample files in /tmp/nlcb<pid>)  CNI=<path to netloom-cni>  REF_MASQ=1 (also
# time both with ipMasq:true, as /work/shared/lab/peers/03_cni_plugins.sh configures the reference)  SYNC=1 (also
# time netloom-cni with "syncDelete":true, whose DEL waits for the kernel like the reference's)
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "cni.sh: run as root" >&2; exit 1; }
N=${N:-50}
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
REF=/usr/lib/cni
if [ ! -x $REF/bridge ] || ! command -v jq >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends containernetworking-plugins jq bc >/dev/null
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
  [ -n "${KEEP:-}" ] || rm -rf $D
}
trap cleanup EXIT

conf() { # type ipMasq label [extra fields]
  cat <<EOF
{"cniVersion":"1.0.0","name":"$TAG","type":"$1","bridge":"nlcb0","isGateway":true,"ipMasq":$2,$4
 "ipam":{"type":"host-local","subnet":"10.242.0.0/16","dataDir":"$D/ipam-$3","routes":[{"dst":"0.0.0.0/0"}]}}
EOF
}
# The timed loops run in one bash that is itself inside the "host" netns, so each sample
# is exactly what a runtime pays: fork/exec of the plugin (env + stdin), nothing else.
cat > $D/loop.sh <<'EOS'
# loop.sh CMD plugin-path netns-prefix first last conf outfile
cmd=$1 bin=$2 pfx=$3 first=$4 last=$5 conf=$6 out=$7
for i in $(seq $first $last); do
  printf -v id '%s%059x' "$TAG" "$i"
  c=$conf
  # DEL gets the ADD result as prevResult, as libcni passes its cached result.
  [ "$cmd" = DEL ] && c=$(jq -c --slurpfile r "$D/res-$pfx$i.json" '. + {prevResult: $r[0]}' <<<"$conf")
  t0=$EPOCHREALTIME
  res=$(CNI_COMMAND=$cmd CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$pfx$i \
        CNI_IFNAME=eth0 CNI_PATH=$REF "$bin" <<<"$c") || { echo "$cmd $pfx$i failed: $res" >&2; exit 1; }
  t1=$EPOCHREALTIME
  [ -n "$out" ] && echo "($t1 - $t0) * 1000" | bc -l >> "$out"
  [ "$cmd" = ADD ] && printf '%s\n' "$res" > "$D/res-$pfx$i.json" && cp "$D/res-$pfx$i.json" "$D/last-result.json"
done
exit 0
EOS
export TAG D REF
stats() { # file -> "median p90"
  sort -g "$1" | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; p=a[int(NR*0.9+0.999)]; printf "%.2f %.2f", m, p}'
}
declare -A BIN CFG TYPE MASQ MED EXTRA
BIN[netloom]=$D/netloom-cni;  TYPE[netloom]=netloom-cni; MASQ[netloom]=false
BIN[nl-sync]=$D/netloom-cni;  TYPE[nl-sync]=netloom-cni; MASQ[nl-sync]=false; EXTRA[nl-sync]='"syncDelete":true,'
BIN[reference]=$REF/bridge;   TYPE[reference]=bridge;    MASQ[reference]=false
BIN[ref-masq]=$REF/bridge;    TYPE[ref-masq]=bridge;     MASQ[ref-masq]=true
BIN[nl-masq]=$D/netloom-cni;  TYPE[nl-masq]=netloom-cni; MASQ[nl-masq]=true
labels="netloom reference"; [ "${REF_MASQ:-0}" = 1 ] && labels="$labels ref-masq nl-masq"
[ "${SYNC:-0}" = 1 ] && labels="$labels nl-sync"
# run LABEL CMD first last outfile: plugin LABEL, from a shell inside its host netns
run() { nsenter --net=/run/netns/$TAG-$1 bash $D/loop.sh "$2" "${BIN[$1]}" "$TAG-$1-c" "$3" "$4" "${CFG[$1]}" "$5"; }

for l in $labels; do
  CFG[$l]=$(conf "${TYPE[$l]}" "${MASQ[$l]}" "$l" "${EXTRA[$l]:-}")
  ip netns add $TAG-$l; ip -n $TAG-$l link set lo up
  for i in $(seq 0 $N); do ip netns add $TAG-$l-c$i; done
  run $l ADD 0 0 ""; run $l DEL 0 0 ""     # warm-up (untimed): page cache, bridge creation
  : > $D/$l.add; : > $D/$l.del
done
# Interleaved blocks of B containers (ADD block per plugin, then DEL block per plugin), so
# that load changes on this shared machine hit every plugin alike.
B=${B:-10}
for first in $(seq 1 $B $N); do
  last=$(( first + B - 1 )); [ $last -gt $N ] && last=$N
  for l in $labels; do run $l ADD $first $last $D/$l.add; done
  for l in $labels; do
    ip netns exec $TAG-$l-c$last ping -c1 -W1 10.242.0.1 >/dev/null || { echo "$l: c$last cannot ping its gateway" >&2; exit 1; }
  done
  [ $first = 1 ] && echo "sample netloom-cni result: $(run netloom ADD 0 0 "" && cat $D/last-result.json; run netloom DEL 0 0 "")"
  for l in $labels; do run $l DEL $first $last $D/$l.del; done
done
for l in $labels; do
  left=$(ls $D/ipam-$l/$TAG 2>/dev/null | grep -c '^10\.' || true)
  [ "$left" = 0 ] || { echo "$l: $left addresses left after DEL" >&2; exit 1; }
  paste -d' ' $D/$l.add $D/$l.del | awk '{print $1+$2}' > $D/$l.both
  for k in add del both; do MED[$l.$k]=$(stats $D/$l.$k); done
done

med() { echo "${MED[$1]}" | cut -d' ' -f1; }
p90() { echo "${MED[$1]}" | cut -d' ' -f2; }
echo
echo "== CNI ADD/DEL, N=$N per plugin, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   reference: containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null)"
printf '| %-28s | %14s | %14s | %14s |\n' "plugin (ms, median / p90)" ADD DEL ADD+DEL
printf '|%s|%s|%s|%s|\n' "------------------------------" "----------------" "----------------" "----------------"
for l in $labels; do
  name=$l; [ $l = netloom ] && name="netloom-cni"; [ $l = reference ] && name="bridge+host-local"
  [ $l = ref-masq ] && name="bridge+host-local, ipMasq"
  [ $l = nl-sync ] && name="netloom-cni, syncDelete"
  [ $l = nl-masq ] && name="netloom-cni, ipMasq"
  printf '| %-28s | %6s / %5s | %6s / %5s | %6s / %5s |\n' "$name" \
    "$(med $l.add)" "$(p90 $l.add)" "$(med $l.del)" "$(p90 $l.del)" "$(med $l.both)" "$(p90 $l.both)"
done
for k in add del both; do
  r=$(echo "$(med reference.$k) / $(med netloom.$k)" | bc -l)
  printf 'ratio reference/netloom-cni %-5s %.1fx\n' "$k" "$r"
done
if [ "${REF_MASQ:-0}" = 1 ]; then
  r=$(echo "$(med ref-masq.both) / $(med nl-masq.both)" | bc -l)
  printf 'ratio with ipMasq, both %.1fx\n' "$r"
fi
if [ "${SYNC:-0}" = 1 ]; then
  r=$(echo "$(med reference.both) / $(med nl-sync.both)" | bc -l)
  printf 'ratio reference/netloom-cni(syncDelete) both %.1fx\n' "$r"
fi
r=$(echo "$(med reference.both) / $(med netloom.both)" | bc -l)
if (( $(echo "$r >= 5" | bc -l) )); then echo "ADD+DEL target >= 5x: PASS"; else echo "ADD+DEL target >= 5x: MISS"; fi
