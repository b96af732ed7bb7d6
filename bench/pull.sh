#!/usr/bin/env bash
# Pull time of a multi-layer image from a loopback registry: netloomd vs dockerd (Debian's
# docker.io 20.10), same registry, same image, same run.
#
# One private netns (entered with `nsenter --net`) holds Debian's docker-registry on
# 127.0.0.1:5000 (throwaway config and storage under a temp dir), netloomd and dockerd,
# each with its own data root. The image (tests/registry/mkimage.py) is busybox in three
# layers plus FILLER_LAYERS layers of FILLER_MIB MiB of random bytes each, pushed by skopeo
# (gzip layers, an OCI manifest). Each round times one `pull` CLI invocation per engine
# (wall time, so it includes the client's start-up), then removes the image so the next
# round downloads everything again; the engines alternate which goes first.
#
# Usage (root): bench/pull.sh
# Env: ROUNDS=5 FILLER_MIB=16 FILLER_LAYERS=4 NETLOOMD=<path> NETLOOM=<path> RESULTS=<file>
set -euo pipefail
if [ -z "${NLB_SUBREAPER:-}" ] && command -v python3 >/dev/null; then
  export NLB_SUBREAPER=1
  exec python3 -c 'import ctypes,os,sys; ctypes.CDLL(None).prctl(36,1,0,0,0); os.execvp(sys.argv[1], sys.argv[1:])' bash "$0" "$@"
fi
[ "$(id -u)" = 0 ] || { echo "pull.sh: run as root" >&2; exit 1; }
ROUNDS=${ROUNDS:-5}; FILLER_MIB=${FILLER_MIB:-16}; FILLER_LAYERS=${FILLER_LAYERS:-4}
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
TAG=nlp$$; D=/tmp/nlpull.$$; NS=$TAG
DK=/usr/bin/docker; DK_SOCK=$D/dk/docker.sock; NL_SOCK=$D/nl/exec/netloom.sock
IMG=127.0.0.1:5000/bench/pull:latest
for b in /usr/bin/docker-registry /usr/bin/skopeo /usr/sbin/dockerd $DK; do
  [ -x "$b" ] || { echo "pull.sh: $b missing: run scripts/deps.sh" >&2; exit 1; }
done
if [ -z "${NETLOOMD:-}" ]; then
  if [ -x "$REPO/target/release/netloomd" ]; then NETLOOMD=$REPO/target/release/netloomd; NL_BUILD=release
  else NETLOOMD=$REPO/target/debug/netloomd; NL_BUILD=debug; fi
fi
NETLOOM=${NETLOOM:-$(dirname "$NETLOOMD")/netloom}; NL_BUILD=${NL_BUILD:-custom}
NL_BIN=$NETLOOM
DOCKERD_PID=""; NETLOOMD_PID=""; REG_PID=""
source "$HERE/lib.sh"
note_new_rundirs
cleanup() {
  set +e; trap - EXIT INT TERM
  stop_docker; stop_netloom
  [ -n "$REG_PID" ] && kill_wait "$REG_PID"
  for _ in 1 2 3; do children; [ ${#KIDS[@]} -eq 0 ] && break; kill -9 "${KIDS[@]}" 2>/dev/null; sleep 0.3; done
  for m in $(awk -v d="$D/" 'index($2,d)==1{print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  ip netns del "$NS" 2>/dev/null
  rm -rf "$D"
  for m in "${NEWDIRS[@]}"; do rmdir "$m" 2>/dev/null; done
}
trap cleanup EXIT INT TERM
in_ns() { nsenter --net=/run/netns/$NS "$@"; }
now() { date +%s%N; }
ms() { echo $(( ($(now) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:int((a[NR/2]+a[NR/2+1])/2)}'; }

mkdir -p $D/reg $D/dk $D/nl
ip netns add $NS; ip -n $NS link set lo up
cat > $D/reg/config.yml <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $D/reg/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:5000}
YML
in_ns /usr/bin/docker-registry serve $D/reg/config.yml > $D/reg/log 2>&1 & REG_PID=$!
python3 "$REPO/tests/registry/mkimage.py" $D/oci --filler-mib "$FILLER_MIB" --filler-layers "$FILLER_LAYERS" >/dev/null
for _ in $(seq 50); do in_ns curl -sf http://127.0.0.1:5000/v2/ >/dev/null && break; sleep 0.1; done
in_ns unshare -m sh -c "mkdir -p /var/lib/containers/cache && mount -t tmpfs none /var/lib/containers/cache &&
  exec skopeo copy -q --dest-tls-verify=false oci:$D/oci:single docker://$IMG"
LAYERS=$(in_ns curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' http://127.0.0.1:5000/v2/bench/pull/manifests/latest |
  python3 -c 'import json,sys; m=json.load(sys.stdin); print(len(m["layers"]), sum(l["size"] for l in m["layers"]))')

in_ns "$NETLOOMD" --data-root $D/nl/data --exec-root $D/nl/exec --config-file $D/nl/none.json > $D/nl/log 2>&1 & NETLOOMD_PID=$!
echo '{}' > $D/dk/daemon.json
in_ns /usr/sbin/dockerd --config-file $D/dk/daemon.json --data-root $D/dk/root --exec-root $D/dk/exec -H unix://$DK_SOCK \
  --pidfile $D/dk/docker.pid --containerd-namespace $TAG --containerd-plugins-namespace $TAG-p \
  --bridge none --iptables=false --ip6tables=false > $D/dk/log 2>&1 & DOCKERD_PID=$!
for _ in $(seq 120); do $DK -H unix://$DK_SOCK version >/dev/null 2>&1 && $NETLOOM -H unix://$NL_SOCK version >/dev/null 2>&1 && break; sleep 0.25; done
$DK -H unix://$DK_SOCK version >/dev/null || { echo "dockerd did not start"; tail $D/dk/log; exit 1; }
$NETLOOM -H unix://$NL_SOCK version >/dev/null || { echo "netloomd did not start"; tail $D/nl/log; exit 1; }

nl_pull() { local t; t=$(now); $NETLOOM -H unix://$NL_SOCK pull -q $IMG >/dev/null; ms $t >> $D/nl.ms; $NETLOOM -H unix://$NL_SOCK rmi $IMG >/dev/null; }
dk_pull() { local t; t=$(now); $DK -H unix://$DK_SOCK pull -q $IMG >/dev/null; ms $t >> $D/dk.ms; $DK -H unix://$DK_SOCK rmi $IMG >/dev/null; }
nl_pull; dk_pull; : > $D/nl.ms; : > $D/dk.ms     # one warm-up each (page cache, first connections)
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then nl_pull; dk_pull; else dk_pull; nl_pull; fi
done
NLM=$(median < $D/nl.ms); DKM=$(median < $D/dk.ms)
RATIO=$(python3 -c "print(f'{$DKM/$NLM:.2f}')")
set -- $LAYERS
LINE="| pull of a ${1}-layer image ($(( $2 / 1000000 )) MB gzip) from a loopback registry | $ROUNDS | $NLM | $DKM | ${RATIO}× |"
echo "netloomd ($NL_BUILD): $(tr '\n' ' ' < $D/nl.ms)ms; dockerd $($DK -H unix://$DK_SOCK version --format '{{.Server.Version}}'): $(tr '\n' ' ' < $D/dk.ms)ms"
echo "| operation | rounds | netloom median ms | docker median ms | docker/netloom |"
echo "|---|---:|---:|---:|---:|"
echo "$LINE"
[ -n "${RESULTS:-}" ] && echo "$LINE" >> "$RESULTS"
exit 0
