#!/usr/bin/env bash
# Differential API test: one scenario, raw HTTP, Debian's dockerd 20.10 vs netloomd.
#
# Both daemons are started here, one after the other, each in its own private netns with
# all state under a temp dir (daemon start-up, subreaper and cleanup are the helpers of
# bench/core.sh, copied because core.sh runs its benchmark when sourced). The same
# busybox-static rootfs tarball is imported into both (`docker import` / `netloom image
# import`, tag bbx). The scenario then talks to each socket with curl only, always with
# the /v1.41 prefix so the paths match, and records status code + body of every request.
#
# Compared, request by request:
#   keys     the set of JSON key paths (recursive, dotted, array elements as [], values
#            ignored) for GET /version /info /networks /networks/{name} /containers/{id}/json
#            /containers/json?all=1 /images/json /exec/{id}/json and POST /networks/create
#            /containers/create
#   status   the HTTP status code of every request (errors included)
#   message  the error message ("message" of the JSON body) when either side answers >= 400,
#            after normalisation: 64/12-hex IDs -> <id>, IPv4 addresses/CIDRs -> <addr>,
#            RFC 3339 times -> <time>
#   output   the (de-multiplexed) stdout of exec `hostname`, normalised the same way
#   value    for a few requests, one jq expression of the body (e.g. wait's StatusCode),
#            normalised the same way (beyond the brief's keys/codes/messages; marked "value")
#
# Usage (root): tests/differential/diff.sh
# Env: NETLOOMD=<path> NETLOOM=<path> DOCKERD=<path>  KEEP=<dir> (copy raw responses there)
#      VERBOSE=1 (also print SAME lines' key counts)
# Exit status: 0 when the run completed (differences are the output, not a failure),
#              1 when a daemon could not be started or the image could not be imported.
set -euo pipefail
if [ -z "${NLB_SUBREAPER:-}" ] && command -v python3 >/dev/null; then
  export NLB_SUBREAPER=1
  exec python3 -c 'import ctypes,os,sys; ctypes.CDLL(None).prctl(36,1,0,0,0); os.execvp(sys.argv[1], sys.argv[1:])' bash "$0" "$@"
fi
[ "$(id -u)" = 0 ] || { echo "diff.sh: run as root" >&2; exit 1; }

HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$HERE/../.." && pwd)
TAG=nld$$
D=/tmp/nldiff.$$
NS_DK=$TAG-dk; NS_NL=$TAG-nl
DK=/usr/bin/docker              # Debian's 20.10 client, only used for `docker import`
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
DK_SOCK=$D/dk/docker.sock
NL_SOCK=$D/nl/exec/netloom.sock
IMGNAME=bbx
API=/v1.41

# ---------------- packages (same as bench/core.sh) ----------------
export DEBIAN_FRONTEND=noninteractive
need=()
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || need+=(docker.io)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v jq >/dev/null || need+=(jq)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; } ||
    echo "WARNING: apt-get install ${need[*]} failed"
fi

if [ -z "${NETLOOMD:-}" ]; then
  if [ -x "$REPO/target/release/netloomd" ] && [ -x "$REPO/target/release/netloom" ]; then
    NETLOOMD=$REPO/target/release/netloomd; NETLOOM=$REPO/target/release/netloom
  else
    NETLOOMD=$REPO/target/debug/netloomd; NETLOOM=$REPO/target/debug/netloom
  fi
fi
NETLOOM=${NETLOOM:-$(dirname "$NETLOOMD")/netloom}

# ---------------- cleanup (from bench/core.sh) ----------------
DOCKERD_PID=""; NETLOOMD_PID=""; NL_BIN=""
# kill_wait, children, stop_docker, stop_netloom, note_new_rundirs
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../bench/lib.sh"
note_new_rundirs
cleanup() {
  local rc=$?
  set +e; trap - EXIT INT TERM
  stop_docker; stop_netloom
  local i p m
  for i in 1 2 3 4 5; do
    children; [ ${#KIDS[@]} -eq 0 ] && break
    for p in "${KIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    sleep 0.2; wait 2>/dev/null
  done
  for m in $(awk -v d="$D/" 'index($2,d)==1{print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  ip netns del $NS_DK 2>/dev/null; ip netns del $NS_NL 2>/dev/null
  for m in /sys/fs/cgroup/*/$TAG /sys/fs/cgroup/$TAG; do [ -d "$m" ] && rmdir "$m" 2>/dev/null; done
  for m in "${NEWDIRS[@]}"; do [ -d "$m" ] && rmdir "$m" 2>/dev/null; done
  if [ -n "${KEEP:-}" ] && [ -d "$D/res" ]; then mkdir -p "$KEEP" && cp -r "$D/res/." "$KEEP/" && echo "raw responses kept in $KEEP"; fi
  rm -rf "$D"
  local leaks=()
  children; [ ${#KIDS[@]} -eq 0 ] || leaks+=("processes ${KIDS[*]}")
  ip netns list 2>/dev/null | grep -q "^$TAG-" && leaks+=("netns $(ip netns list | grep "^$TAG-" | tr '\n' ' ')")
  grep -q " $D/" /proc/mounts && leaks+=("mounts under $D")
  ls -d /sys/fs/cgroup/*/$TAG /sys/fs/cgroup/$TAG >/dev/null 2>&1 && leaks+=("cgroup $TAG")
  [ -e "$D" ] && leaks+=("dir $D")
  if [ ${#leaks[@]} -eq 0 ]; then echo "cleanup: ok (no netns, mounts, processes, cgroups or files left)"
  else echo "cleanup: LEFT OVER: ${leaks[*]}" >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------- request recording ----------------
# Every request gets an index; the index -> (label, method, shown path, checks) table is
# written once ($D/res/reqs.tsv, by the first engine) and is the same for both engines.
SOCK=""; ENG=""; IDX=0
# req CHECKS LABEL METHOD PATH [BODY]
#   CHECKS: "k" compare JSON keys too, "o" body is an exec stream (compare its output),
#           "v" compare the value of the jq expression in $VEXPR, "t" 5 s time limit
#           (for requests one engine may hold open), "-" status (+ message) only
req() {
  local checks=$1 label=$2 method=$3 path=$4 body=${5-} n shown tmo=60
  IDX=$((IDX + 1)); n=$(printf %02d $IDX)
  [[ $checks == *t* ]] && tmo=5
  local args=(-sS --max-time $tmo --unix-socket "$SOCK" -X "$method" -o "$D/res/$ENG/$n.body" -w '%{http_code}')
  if [ -n "$body" ]; then args+=(-H 'Content-Type: application/json' --data-binary "$body")
  elif [ "$method" = POST ]; then args+=(-H 'Content-Type: application/json'); fi
  local crc=0
  curl "${args[@]}" "http://localhost$API$path" > "$D/res/$ENG/$n.code" 2>>"$D/res/$ENG/curl.err" || crc=$?
  [ $crc = 28 ] && echo "#$n timed out" >> "$D/res/$ENG/timeouts"
  [ -s "$D/res/$ENG/$n.code" ] || echo 000 > "$D/res/$ENG/$n.code"
  [ -e "$D/res/$ENG/$n.body" ] || : > "$D/res/$ENG/$n.body"
  if [ "$ENG" = dk ]; then
    shown=$(printf '%s' "$path" | norm)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$checks" "$label" "$method" "$shown" "${VEXPR:--}" >> "$D/res/reqs.tsv"
  fi
  LAST=$D/res/$ENG/$n.body
}
norm() { # normalise IDs, addresses and times in text on stdin
  sed -E -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+)/<time>/g' \
         -e 's/(sha256:)?[0-9a-f]{64}/<id>/g' -e 's/\b[0-9a-f]{12}\b/<id>/g' \
         -e 's#\b[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?\b#<addr>#g'
}
jid() { jq -r '.Id // empty' "$LAST" 2>/dev/null || true; }

# ---------------- the scenario (identical for both engines) ----------------
scenario() {
  local cid eid
  req k "version"                              GET  /version
  req k "info"                                 GET  /info
  req - "ping"                                 GET  /_ping
  req k "create network diffnet 10.123.0.0/24" POST /networks/create \
      '{"Name":"diffnet","Driver":"bridge","CheckDuplicate":true,"IPAM":{"Driver":"default","Config":[{"Subnet":"10.123.0.0/24"}]}}'
  req k "create network diffnet2 (default pool)" POST /networks/create '{"Name":"diffnet2","CheckDuplicate":true}'
  req - "ERR duplicate network name"           POST /networks/create '{"Name":"diffnet","CheckDuplicate":true}'
  req - "ERR bad CIDR"                         POST /networks/create \
      '{"Name":"badcidr","IPAM":{"Config":[{"Subnet":"10.124.0.0/33"}]}}'
  req - "ERR gateway outside subnet"           POST /networks/create \
      '{"Name":"badgw","IPAM":{"Config":[{"Subnet":"10.125.0.0/24","Gateway":"10.126.0.1"}]}}'
  req - "ERR bad JSON body"                    POST /networks/create '{"Name":"badjson",'
  req - "ERR unknown driver"                   POST /networks/create '{"Name":"baddrv","Driver":"nosuchdriver"}'
  req k "list networks"                        GET  /networks
  VEXPR='.IPAM.Config' \
  req kv "inspect network diffnet"             GET  /networks/diffnet
  req - "ERR inspect missing network"          GET  /networks/nosuchnet
  req - "ERR unknown list filter"              GET  "/networks?filters=%7B%22foo%22%3A%5B%22bar%22%5D%7D"
  req - "list networks filter name=diffnet"    GET  "/networks?filters=%7B%22name%22%3A%5B%22diffnet%22%5D%7D"
  req k "create container diffc on diffnet"    POST "/containers/create?name=diffc" \
      '{"Image":"'$IMGNAME'","Cmd":["sleep","3600"],"HostConfig":{"NetworkMode":"diffnet"}}'
  cid=$(jid)
  req - "ERR create: missing image"            POST "/containers/create?name=diffnoimg" '{"Image":"nosuchimage:latest","Cmd":["true"]}'
  req - "ERR create: duplicate name"           POST "/containers/create?name=diffc" '{"Image":"'$IMGNAME'","Cmd":["true"]}'
  req - "ERR create: missing network"          POST "/containers/create?name=diffnonet" \
      '{"Image":"'$IMGNAME'","Cmd":["true"],"HostConfig":{"NetworkMode":"nosuchnet"}}'
  req - "remove diffnonet (if created)"        DELETE "/containers/diffnonet?force=1"
  req - "create with top-level MacAddress"     POST "/containers/create?name=diffmac" \
      '{"Image":"'$IMGNAME'","Cmd":["true"],"MacAddress":"02:42:ac:11:00:99","HostConfig":{"NetworkMode":"diffnet"}}'
  VEXPR='.Config.MacAddress // "(absent)"' \
  req v "inspect diffmac: Config.MacAddress"   GET  /containers/diffmac/json
  req - "remove diffmac"                       DELETE "/containers/diffmac?force=1"
  req - "create with endpoint MacAddress"      POST "/containers/create?name=diffmac2" \
      '{"Image":"'$IMGNAME'","Cmd":["true"],"HostConfig":{"NetworkMode":"diffnet"},"NetworkingConfig":{"EndpointsConfig":{"diffnet":{"MacAddress":"02:42:ac:11:00:98"}}}}'
  req - "remove diffmac2 (if created)"         DELETE "/containers/diffmac2?force=1"
  req - "start diffc"                          POST /containers/diffc/start
  req - "start diffc again (304)"              POST /containers/diffc/start
  req k "inspect container"                    GET  "/containers/${cid:-diffc}/json"
  req - "ERR inspect missing container"        GET  /containers/nosuchctr/json
  req k "list containers all=1"                GET  "/containers/json?all=1"
  req k "list images"                          GET  /images/json
  req - "ERR inspect missing image"            GET  /images/nosuchimage/json
  req - "connect diffc to diffnet2"            POST /networks/diffnet2/connect '{"Container":"diffc"}'
  req - "ERR connect twice"                    POST /networks/diffnet2/connect '{"Container":"diffc"}'
  req - "ERR connect to missing network"       POST /networks/nosuchnet/connect '{"Container":"diffc"}'
  req - "ERR connect missing container"        POST /networks/diffnet2/connect '{"Container":"nosuchctr"}'
  req - "disconnect diffc from diffnet2"       POST /networks/diffnet2/disconnect '{"Container":"diffc"}'
  req - "ERR disconnect not connected"         POST /networks/diffnet2/disconnect '{"Container":"diffc"}'
  req - "exec create hostname"                 POST /containers/diffc/exec '{"Cmd":["hostname"],"AttachStdout":true,"AttachStderr":true}'
  eid=$(jid)
  req o "exec start"                           POST "/exec/${eid:-nosuchexec}/start" '{"Detach":false,"Tty":false}'
  VEXPR='{ExitCode, Running}' \
  req kv "exec inspect"                         GET  "/exec/${eid:-nosuchexec}/json"
  req - "ERR exec inspect missing"             GET  /exec/nosuchexec/json
  req - "ERR remove network in use"            DELETE /networks/diffnet
  req - "ERR remove predefined network bridge" DELETE /networks/bridge
  req - "ERR remove running ctr without force" DELETE /containers/diffc
  req t "ERR wait with bad condition"          POST "/containers/diffc/wait?condition=bogus"
  req - "stop diffc"                           POST "/containers/diffc/stop?t=1"
  req - "stop stopped (304)"                   POST "/containers/diffc/stop?t=1"
  req - "ERR kill stopped"                     POST /containers/diffc/kill
  req - "ERR exec create in stopped ctr"       POST /containers/diffc/exec '{"Cmd":["hostname"]}'
  VEXPR='.StatusCode' \
  req v "wait not-running"                     POST "/containers/diffc/wait?condition=not-running"
  req - "remove diffc"                         DELETE /containers/diffc
  req - "ERR remove missing container"         DELETE /containers/diffc
  req - "remove network diffnet"               DELETE /networks/diffnet
  req - "ERR remove missing network"           DELETE /networks/diffnet
  VEXPR='.NetworksDeleted' \
  req kv "prune networks (removes diffnet2)"   POST /networks/prune
  req - "ERR remove missing image"             DELETE /images/nosuchimage
}

# ---------------- start the daemons (as bench/core.sh) ----------------
rm -rf "$D"; mkdir -p "$D/dk" "$D/nl" "$D/bin" "$D/res/dk" "$D/res/nl"
echo "{\"deprecated-key-path\": \"$D/dk/key.json\"}" > "$D/dk/daemon.json"
echo '{"dns": ["127.0.0.1"]}' > "$D/nl/daemon.json"
RF=$D/rootfs; mkdir -p $RF/bin $RF/etc $RF/tmp $RF/proc $RF/sys $RF/dev
cp /bin/busybox $RF/bin/busybox
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox $RF/bin/$a; done
tar -C $RF -cf $D/rootfs.tar .

DK_VER=-; NL_VER=-
# --- dockerd ---
[ -x "$DOCKERD" ] && [ -x $DK ] || { echo "diff.sh: dockerd/docker 20.10 not installed" >&2; exit 1; }
ip netns add $NS_DK && ip -n $NS_DK link set lo up
nsenter --net=/run/netns/$NS_DK "$DOCKERD" --config-file $D/dk/daemon.json \
  --data-root $D/dk/root --exec-root $D/dk/exec -H unix://$DK_SOCK --pidfile $D/dk/docker.pid \
  --containerd-namespace $TAG --containerd-plugins-namespace $TAG-plugins \
  --cgroup-parent /$TAG --dns 127.0.0.1 > $D/dk/dockerd.log 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 240); do curl -sf --unix-socket $DK_SOCK http://localhost/_ping >/dev/null 2>&1 && break; kill -0 $DOCKERD_PID 2>/dev/null || break; sleep 0.25; done
curl -sf --unix-socket $DK_SOCK http://localhost/_ping >/dev/null 2>&1 ||
  { echo "dockerd did not start: $(tail -3 $D/dk/dockerd.log | tr '\n' ' ')" >&2; exit 1; }
DK_VER=$(curl -s --unix-socket $DK_SOCK http://localhost$API/version | jq -r .Version)
$DK -H unix://$DK_SOCK import -c 'CMD ["/bin/sh"]' $D/rootfs.tar $IMGNAME >/dev/null ||
  { echo "docker import failed" >&2; exit 1; }
echo "dockerd $DK_VER up; running scenario"
SOCK=$DK_SOCK; ENG=dk; IDX=0; : > "$D/res/reqs.tsv"
scenario
stop_docker

# --- netloomd ---
[ -x "$NETLOOMD" ] && [ -x "$NETLOOM" ] ||
  { echo "no netloom binaries at $NETLOOMD (cargo build --release -p netloom-daemon -p netloom-cli)" >&2; exit 1; }
cp "$NETLOOMD" "$D/bin/netloomd"; cp "$NETLOOM" "$D/bin/netloom"; NL_BIN=$D/bin/netloom
ip netns add $NS_NL && ip -n $NS_NL link set lo up
nsenter --net=/run/netns/$NS_NL "$D/bin/netloomd" --data-root $D/nl/data --exec-root $D/nl/exec \
  --config-file $D/nl/daemon.json > $D/nl/netloomd.log 2>&1 &
NETLOOMD_PID=$!
for _ in $(seq 120); do curl -sf --unix-socket $NL_SOCK http://localhost/_ping >/dev/null 2>&1 && break; kill -0 $NETLOOMD_PID 2>/dev/null || break; sleep 0.1; done
curl -sf --unix-socket $NL_SOCK http://localhost/_ping >/dev/null 2>&1 ||
  { echo "netloomd did not start: $(tail -3 $D/nl/netloomd.log | tr '\n' ' ')" >&2; exit 1; }
NL_VER=$(curl -s --unix-socket $NL_SOCK http://localhost$API/version | jq -r .Version)
$NL_BIN -H unix://$NL_SOCK image import -c 'CMD ["/bin/sh"]' $D/rootfs.tar $IMGNAME >/dev/null ||
  { echo "netloom image import failed" >&2; exit 1; }
echo "netloomd $NL_VER up; running scenario"
SOCK=$NL_SOCK; ENG=nl; IDX=0
scenario
stop_netloom

# ---------------- compare ----------------
# dotted key paths of a JSON document; array elements become [], keys holding a dot are
# bracket-quoted, hex IDs used as keys (network inspect .Containers) become <id>
keys_of() {
  jq -r '[paths | map(if type == "number" then "[]"
                      elif test("\\.") then "[\"" + . + "\"]" else . end)
          | join(".") | gsub("\\.\\[";"[") | gsub("[0-9a-f]{64}";"<id>")] | unique | .[]' "$1" 2>/dev/null
}
msg_of() { # error message, or the raw body (first line) when not JSON
  local m; m=$(jq -r 'if type == "object" and has("message") then .message else empty end' "$1" 2>/dev/null) ||
    m=$(head -c 300 "$1" | tr '\n' ' ')
  printf '%s' "$m" | norm
}
stream_out() { # de-multiplex a docker raw stream (8-byte frame headers) -> text
  python3 -c '
import sys
b = open(sys.argv[1], "rb").read(); out = b""
i = 0
while i + 8 <= len(b) and b[i] in (0, 1, 2) and b[i+1:i+4] == b"\0\0\0":
    n = int.from_bytes(b[i+4:i+8], "big"); out += b[i+8:i+8+n]; i += 8 + n
if i < len(b): out += b"[raw:]" + b[i:]
sys.stdout.write(out.decode("utf-8", "replace").strip())' "$1"
}

NREQ=0; SC_SAME=0; SC_DIFF=0; MS_SAME=0; MS_DIFF=0; K_SAME=0; K_DIFF=0; K_ONLY_DK=0; K_ONLY_NL=0
O_SAME=0; O_DIFF=0; V_SAME=0; V_DIFF=0; DIFFREQ=0
REPORT=$D/report.txt; : > $REPORT
{
echo "== differential API report: dockerd $DK_VER vs netloomd $NL_VER, prefix $API, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "   (IDs -> <id>, IPv4 addresses -> <addr>, times -> <time>; 'docker' = dockerd, 'netloom' = netloomd)"
while IFS=$'\t' read -r n checks label method shown vexpr; do
  NREQ=$((NREQ + 1)); any=0; lines=()
  cd_=$(cat $D/res/dk/$n.code); cn=$(cat $D/res/nl/$n.code)
  if [ "$cd_" = "$cn" ]; then SC_SAME=$((SC_SAME + 1)); lines+=("  status  SAME $cd_")
  else SC_DIFF=$((SC_DIFF + 1)); any=1; lines+=("  status  DIFF docker $cd_ | netloom $cn"); fi
  if [ "$cd_" -ge 400 ] || [ "$cn" -ge 400 ]; then
    md=$(msg_of $D/res/dk/$n.body); mn=$(msg_of $D/res/nl/$n.body)
    if [ "$md" = "$mn" ]; then MS_SAME=$((MS_SAME + 1)); lines+=("  message SAME \"$md\"")
    else MS_DIFF=$((MS_DIFF + 1)); any=1
      lines+=("  message DIFF docker:  \"$md\"" "               netloom: \"$mn\""); fi
  fi
  if [[ $checks == *k* ]]; then
    keys_of $D/res/dk/$n.body > $D/kd; keys_of $D/res/nl/$n.body > $D/kn
    od=$(comm -23 $D/kd $D/kn); on=$(comm -13 $D/kd $D/kn)
    nd=$(grep -c . <<< "$od" || true); nn=$(grep -c . <<< "$on" || true)
    if [ "$nd" = 0 ] && [ "$nn" = 0 ]; then K_SAME=$((K_SAME + 1)); lines+=("  keys    SAME ($(wc -l < $D/kd) paths)")
    else K_DIFF=$((K_DIFF + 1)); any=1; K_ONLY_DK=$((K_ONLY_DK + nd)); K_ONLY_NL=$((K_ONLY_NL + nn))
      lines+=("  keys    DIFF $(wc -l < $D/kd) docker / $(wc -l < $D/kn) netloom paths; $nd only in docker, $nn only in netloom")
      while read -r k; do [ -n "$k" ] && lines+=("          - docker only:  $k"); done <<< "$od"
      while read -r k; do [ -n "$k" ] && lines+=("          + netloom only: $k"); done <<< "$on"
    fi
  fi
  if [[ $checks == *o* ]]; then
    outd=$(stream_out $D/res/dk/$n.body | norm); outn=$(stream_out $D/res/nl/$n.body | norm)
    if [ "$outd" = "$outn" ]; then O_SAME=$((O_SAME + 1)); lines+=("  output  SAME \"$outd\"")
    else O_DIFF=$((O_DIFF + 1)); any=1; lines+=("  output  DIFF docker \"$outd\" | netloom \"$outn\""); fi
  fi
  if [[ $checks == *v* ]]; then
    vd=$(jq -c "$vexpr" $D/res/dk/$n.body 2>/dev/null | norm); vn=$(jq -c "$vexpr" $D/res/nl/$n.body 2>/dev/null | norm)
    if [ "$vd" = "$vn" ]; then V_SAME=$((V_SAME + 1)); lines+=("  value   SAME $vexpr = $vd")
    else V_DIFF=$((V_DIFF + 1)); any=1; lines+=("  value   DIFF $vexpr: docker $vd | netloom $vn"); fi
  fi
  if [[ $checks == *t* ]]; then
    for e in dk nl; do grep -q "^#$n " $D/res/$e/timeouts 2>/dev/null &&
      lines+=("  note    $( [ $e = dk ] && echo docker || echo netloom) held the request open past the 5 s limit"); done
  fi
  if [ $any = 0 ]; then printf '#%s %-44s %s %s  SAME\n' "$n" "$label" "$method" "$shown"
    [ -n "${VERBOSE:-}" ] && printf '%s\n' "${lines[@]}"
  else DIFFREQ=$((DIFFREQ + 1)); printf '#%s %-44s %s %s  DIFFERENT\n' "$n" "$label" "$method" "$shown"; printf '%s\n' "${lines[@]}"; fi
done < $D/res/reqs.tsv
echo
echo "== summary"
echo "requests:            $NREQ ($((NREQ - DIFFREQ)) SAME, $DIFFREQ with a difference)"
echo "status codes:        $SC_SAME same, $SC_DIFF different"
echo "error messages:      $MS_SAME same, $MS_DIFF different (of $((MS_SAME + MS_DIFF)) requests where either side answered >= 400)"
echo "JSON key sets:       $K_SAME same, $K_DIFF different (of $((K_SAME + K_DIFF))); key paths only in docker: $K_ONLY_DK, only in netloom: $K_ONLY_NL"
echo "exec output:         $O_SAME same, $O_DIFF different"
echo "values (extra):      $V_SAME same, $V_DIFF different"
} | tee $REPORT
exit 0
