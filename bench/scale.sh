#!/usr/bin/env bash
# A host with a thousand containers: netloom vs Docker's dockerd (Debian docker.io 20.10),
# side by side, in one run.
#
# Phase A grows one host to $N running containers on ONE user bridge (the kernel allows
# 1,024 ports per bridge); phase B grows it to $NNET networks, one running container on
# each. At the checkpoints 1, N/10, N/2 and N (1, 100, 500, 1,000 by default) it measures:
#   run -d              median of the 5 `run -d` around the checkpoint (1..5 at the first)
#   network connect     a running container to a spare network (then disconnected), median of $K
#   ps, network ls, network inspect <the phase's network>, inspect <a container>: median of $K
#   DNS lookup          median of $DNSQ A queries for the newest container's name, sent to
#                       127.0.0.11 from the first container's netns (nsenter --net + python3)
#   the daemon's RSS and open descriptors; nftables rules and set/map elements in its netns
#   restart             SIGTERM, start again, time until `ps -q` lists all running containers
#                       (netloomd reconciles before it serves; dockerd runs with --live-restore
#                       so its containers survive the restart as netloom's do)
# and at the end of each phase, the time one `rm -f` of all the containers takes (and, in
# phase B, one `network rm` of all the networks). After phase A, a per-query / per-packet
# check: RSS before and after $BURSTQ DNS queries and a 10,000-packet ping flood.
# Each engine gets $BUDGET seconds per phase; Docker goes as far as it gets in that time.
# Both daemons start with a soft open-file limit of $NOFILE_SOFT (a fresh system's default)
# and the hard limit as it is. The targets (PASS/MISS) are printed at the end.
#
# Usage (root): bench/scale.sh                 (N=1000 NNET=1000, about an hour)
#               N=200 NNET=200 bench/scale.sh  (a quick run)
# Env: N NNET K=5 DNSQ=200 BURSTQ=20000 BUDGET=1500 MIN_FREE_MB=3000 NOFILE_SOFT=1024
#      NETLOOMD NETLOOM DOCKERD SKIP_NETLOOM=1 SKIP_DOCKER=1 SKIP_A=1 SKIP_B=1
#      RESULTS=<file> (also write the tables there)   PERF=1 (perf record netloomd during
#      the last 20% of phase A; report in $PERF_OUT, default /tmp/scale-perf.txt)
#      PERF=sys (perf record the whole machine during netloom's last restart and its
#      rm -f of all: reports in ${PERF_OUT%.txt}-restart.txt and -rm.txt)
set -euo pipefail
if [ -z "${NLB_SUBREAPER:-}" ] && command -v python3 >/dev/null; then
  export NLB_SUBREAPER=1
  exec python3 -c 'import ctypes,os,sys; ctypes.CDLL(None).prctl(36,1,0,0,0); os.execvp(sys.argv[1], sys.argv[1:])' bash "$0" "$@"
fi
[ "$(id -u)" = 0 ] || { echo "scale.sh: run as root" >&2; exit 1; }

N=${N:-1000}; NNET=${NNET:-$N}; K=${K:-5}; DNSQ=${DNSQ:-200}; BURSTQ=${BURSTQ:-20000}
BUDGET=${BUDGET:-1500}; MIN_FREE_MB=${MIN_FREE_MB:-3000}; NOFILE_SOFT=${NOFILE_SOFT:-1024}
[ "$N" -le 1020 ] || { echo "scale.sh: N=$N: one bridge takes at most 1,024 ports (N <= 1020)" >&2; exit 2; }
[ "$NNET" -le 4000 ] || { echo "scale.sh: NNET=$NNET: at most 4000 (10.100.0.0/14 in /24s)" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
TAG=nls$$
D=/tmp/nlscale.$$
NS_DK=$TAG-dk; NS_NL=$TAG-nl
DK=/usr/bin/docker
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
DK_SOCK=$D/dk/docker.sock
NL_SOCK=$D/nl/exec/netloom.sock
IMG=bbx

# ---------------- packages ----------------
export DEBIAN_FRONTEND=noninteractive
need=()
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || need+=(docker.io)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
command -v iptables >/dev/null || need+=(iptables)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v jq >/dev/null || need+=(jq)
[ -n "${PERF:-}" ] && { command -v perf >/dev/null || need+=(linux-perf); }
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; } ||
    echo "WARNING: apt-get install ${need[*]} failed"
fi

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
DOCKERD_PID=""; NETLOOMD_PID=""; PERF_PID=""
source "$HERE/lib.sh"   # kill_wait, children, note_new_rundirs
note_new_rundirs
remove_all() { # cli...: one `rm -f` of every container, as a user would
  local ids; ids=$("$@" ps -aq 2>/dev/null | tr '\n' ' ')
  [ -n "${ids// /}" ] && "$@" rm -f $ids >/dev/null 2>&1
  return 0
}
stop_engines() {
  if [ -n "$NETLOOMD_PID" ] && kill -0 "$NETLOOMD_PID" 2>/dev/null; then
    remove_all $D/bin/netloom -H unix://$NL_SOCK; kill_wait "$NETLOOMD_PID"
  fi
  NETLOOMD_PID=""
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    remove_all $DK -H unix://$DK_SOCK; kill_wait "$DOCKERD_PID"
  fi
  DOCKERD_PID=""
}
cleanup() {
  local rc=$?
  set +e; trap - EXIT INT TERM
  [ -n "$PERF_PID" ] && kill_wait "$PERF_PID"
  stop_engines
  local i p m
  for i in 1 2 3 4 5; do
    children; [ ${#KIDS[@]} -eq 0 ] && break
    for p in "${KIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    sleep 0.5; wait 2>/dev/null
  done
  for m in $(awk -v d="$D/" 'index($2,d)==1{print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  # dockerd's netns files live under /run/docker/netns (not under $D)
  for m in $(awk '$2 ~ "^/run/docker/netns/"{print $2}' /proc/mounts); do
    [ -n "${DK_STARTED:-}" ] && umount -l "$m" && rm -f "$m"
  done
  ip netns del $NS_DK 2>/dev/null; ip netns del $NS_NL 2>/dev/null
  for m in /sys/fs/cgroup/*/$TAG /sys/fs/cgroup/$TAG; do [ -d "$m" ] && rmdir "$m" 2>/dev/null; done
  for m in /run/docker/netns "${NEWDIRS[@]}"; do [ -d "$m" ] && rmdir "$m" 2>/dev/null; done
  [ -n "${KEEP:-}" ] || rm -rf "$D"
  local leaks=()
  children; [ ${#KIDS[@]} -eq 0 ] || leaks+=("processes ${KIDS[*]}")
  ip netns list 2>/dev/null | grep -q "^$TAG-" && leaks+=("netns")
  grep -q " $D/" /proc/mounts && leaks+=("mounts under $D")
  ls -d /sys/fs/cgroup/*/$TAG /sys/fs/cgroup/$TAG >/dev/null 2>&1 && leaks+=("cgroup $TAG")
  if [ ${#leaks[@]} -eq 0 ]; then echo "cleanup: ok (no netns, mounts, processes or cgroups left)"
  else echo "cleanup: LEFT OVER: ${leaks[*]}" >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------- helpers ----------------
now_us() { local t=${EPOCHREALTIME/./}; NOW=$((10#$t)); }
tcall() { # cmd...: LAST = wall time in us of one run (or "" if it failed)
  local t0 rc=0; now_us; t0=$NOW
  "$@" >/dev/null 2>>"$D/err.log" || rc=$?
  now_us
  if [ $rc -eq 0 ]; then LAST=$((NOW - t0)); else LAST=""; echo "  FAILED ($rc): ${*:0:12}" >&2; fi
}
median() { sort -g | awk '{a[NR]=$1} END{if(NR==0){print "-"; exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }
msof() { awk -v u="$1" 'BEGIN{ if (u=="-"||u=="") print "-"; else printf "%.1f", u/1000 }'; }
put() { echo "$3" > "$D/res/$1.$2"; }   # engine.phase.k metric value
get() { cat "$D/res/$1.$2" 2>/dev/null || echo -; }
rss_kb() { awk '/^VmRSS/{print $2}' /proc/$1/status 2>/dev/null || echo 0; }
nfds() { ls /proc/$1/fd 2>/dev/null | wc -l; }
mem_avail_mb() { awk '/^MemAvailable/{print int($2/1024)}' /proc/meminfo; }
nft_counts() { # netns -> "rules elements" (nft: netloom's table; docker's iptables-nft rules too)
  local ns=$1 j r e l=0
  j=$(nsenter --net=/run/netns/$ns nft -j list ruleset 2>/dev/null || echo '{"nftables":[]}')
  r=$(jq '[.nftables[] | select(.rule)] | length' <<<"$j")
  e=$(jq '[.nftables[] | (.set.elem // .map.elem // []) | length] | add // 0' <<<"$j")
  # iptables-legacy rules (dockerd with the legacy backend) are not in nft's ruleset
  if iptables -V 2>/dev/null | grep -q legacy; then
    l=$(nsenter --net=/run/netns/$ns iptables-save 2>/dev/null | grep -c '^-A' || true)
  fi
  echo "$((r + l)) $e"
}
DNSQ_PY='
import socket, struct, sys, time
srv, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
qn = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); s.connect((srv, 53))
lat = []; ok = 0; bad = 0
for i in range(count):
    m = struct.pack(">HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0) + qn + struct.pack(">HH", 1, 1)
    t = time.perf_counter(); s.send(m)
    try:
        while True:
            r = s.recv(4096)
            if r[:2] == m[:2]: break
        lat.append(time.perf_counter() - t)
        if r[3] & 0xf == 0 and struct.unpack(">H", r[6:8])[0] > 0: ok += 1
        else: bad += 1
    except socket.timeout:
        bad += 1
lat.sort()
print(int(lat[len(lat)//2] * 1e6) if lat else -1, ok, bad)
'
dns_probe() { # sandbox name count -> "median_us ok bad"
  nsenter --net="$1" python3 -c "$DNSQ_PY" 127.0.0.11 "$2" "$3" 2>>$D/err.log || echo "-1 0 $3"
}

# ---------------- daemons ----------------
start_netloomd() {
  ( ulimit -Sn "$NOFILE_SOFT"; exec nsenter --net=/run/netns/$NS_NL "$D/bin/netloomd" \
      --data-root $D/nl/data --exec-root $D/nl/exec --config-file $D/nl/daemon.json ) >> $D/nl/netloomd.log 2>&1 &
  NETLOOMD_PID=$!
}
start_dockerd() {
  ( ulimit -Sn "$NOFILE_SOFT"; exec nsenter --net=/run/netns/$NS_DK "$DOCKERD" --config-file $D/dk/daemon.json \
      --data-root $D/dk/root --exec-root $D/dk/exec -H unix://$DK_SOCK --pidfile $D/dk/docker.pid \
      --containerd-namespace $TAG --containerd-plugins-namespace $TAG-plugins \
      --cgroup-parent /$TAG --live-restore --dns 127.0.0.1 ) >> $D/dk/dockerd.log 2>&1 &
  DOCKERD_PID=$!; DK_STARTED=1
}
daemon_pid() { [ "$1" = nl ] && echo "$NETLOOMD_PID" || echo "$DOCKERD_PID"; }
daemon_ns() { [ "$1" = nl ] && echo "$NS_NL" || echo "$NS_DK"; }
wait_up() { # engine timeout_s
  local e=$1 n=$(( $2 * 20 )) p; p=$(daemon_pid $e)
  for _ in $(seq $n); do "${CLI[@]}" version >/dev/null 2>&1 && return 0; kill -0 $p 2>/dev/null || return 1; sleep 0.05; done
  return 1
}
# Restart: SIGTERM, start again, and time until it answers `ps` with all `want` containers.
restart_daemon() { # engine want -> LAST (us) or ""
  local e=$1 want=$2 t0 p; p=$(daemon_pid $e)
  kill "$p"; for _ in $(seq 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$p" 2>/dev/null && { kill -9 "$p"; sleep 0.5; }
  wait "$p" 2>/dev/null || true
  now_us; t0=$NOW
  if [ $e = nl ]; then start_netloomd; else rm -f $D/dk/docker.pid; start_dockerd; fi
  LAST=""
  for _ in $(seq 2400); do
    if [ "$("${CLI[@]}" ps -q 2>/dev/null | wc -l)" -ge "$want" ]; then now_us; LAST=$((NOW - t0)); break; fi
    kill -0 "$(daemon_pid $e)" 2>/dev/null || break
    sleep 0.02
  done
  [ -n "$LAST" ] || echo "  restart of $e: not answering with $want containers" >&2
}

# ---------------- one checkpoint ----------------
checkpoint() { # engine phase k first_ctr newest_ctr net spare_net
  local e=$1 ph=$2 k=$3 first=$4 newest=$5 net=$6 spare=$7 i s p r sb
  local key=$e.$ph.$k; p=$(daemon_pid $e)
  # What the daemon holds with k containers, before the queries below allocate for their answers
  put $key rss $(( $(rss_kb $p) / 1024 ))
  put $key fds "$(nfds $p)"
  s=(); for i in $(seq $K); do
    tcall "${CLI[@]}" network connect $spare $first; [ -n "$LAST" ] && s+=($LAST)
    "${CLI[@]}" network disconnect $spare $first >/dev/null 2>>$D/err.log || true
  done; put $key connect "$(printf '%s\n' "${s[@]}" | median)"
  local m op
  for m in ps netls netinspect inspect; do
    case $m in ps) op=(ps);; netls) op=(network ls);; netinspect) op=(network inspect $net);; inspect) op=(inspect $first);; esac
    s=(); for i in $(seq $K); do tcall "${CLI[@]}" "${op[@]}"; [ -n "$LAST" ] && s+=($LAST); done
    put $key $m "$(printf '%s\n' "${s[@]}" | median)"
  done
  sb=$("${CLI[@]}" inspect -f '{{.NetworkSettings.SandboxKey}}' $first 2>>$D/err.log || true)
  if [ -n "$sb" ] && [ -e "$sb" ]; then
    read -r r ok bad < <(dns_probe "$sb" "$newest" "$DNSQ")
    put $key dns "$r"; [ "$bad" = 0 ] || put $key dnsbad "$bad"
  fi
  read -r r s < <(nft_counts "$(daemon_ns $e)")
  put $key rules "$r"; put $key elems "$s"
  if [ $e = nl ]; then
    ls -l /proc/$p/fd 2>/dev/null | awk 'NR>1{print $NF}' | sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn > $D/res/$key.fdkinds
  else
    put $key rss_ctrd $(( $(rss_kb "$(pgrep -P $p -x containerd | head -1)" 2>/dev/null || echo 0) / 1024 ))
  fi
  [ "${PERF:-}" = sys ] && [ $e = nl ] && [ "$k" = "$N" ] && start_perf_sys restart
  restart_daemon $e "$k"; put $key restart "$LAST"
  [ -n "$PERF_PID" ] && [ "${PERF:-}" = sys ] && stop_perf_sys restart
  put $key rss_after $(( $(rss_kb "$(daemon_pid $e)") / 1024 ))
  echo "  [$e $ph $k] run $(msof "$(window_median $e $ph $k)") ms, connect $(msof "$(get $key connect)"), ps $(msof "$(get $key ps)"), net ls $(msof "$(get $key netls)"), net inspect $(msof "$(get $key netinspect)"), dns $(get $key dns) us, rss $(get $key rss) MB, fds $(get $key fds), nft $(get $key rules)/$(get $key elems), restart $(msof "$(get $key restart)") ms"
}
# median run -d latency (us) of the 5 runs ending at k (runs 1..5 for k < 5)
window_median() { # engine phase k [runs|creates]
  local lo=$(( $3 - 4 )) hi=$3; [ $lo -lt 1 ] && { lo=1; hi=5; }
  awk -v lo=$lo -v hi=$hi '$1>=lo && $1<=hi {print $2}' "$D/res/$1.$2.${4:-runs}" 2>/dev/null | median || true
}
is_check() { local c; for c in $CHECKS; do [ "$1" = "$c" ] && return 0; done; return 1; }

# ---------------- phase A: N containers on one bridge ----------------
phase_a() { # engine
  local e=$1 i t0 reached=0 why=done
  "${CLI[@]}" network create --subnet 10.200.0.0/20 scalenet >/dev/null
  "${CLI[@]}" network create --subnet 10.201.0.0/24 scalespare >/dev/null
  CHECKS="1 $((N / 10)) $((N / 2)) $N"
  now_us; t0=$NOW
  for i in $(seq $N); do
    now_us; if [ $(( (NOW - t0) / 1000000 )) -ge $BUDGET ]; then why="time budget ($BUDGET s)"; break; fi
    if [ "$(mem_avail_mb)" -lt "$MIN_FREE_MB" ]; then why="memory (MemAvailable < $MIN_FREE_MB MB)"; break; fi
    [ "${PERF:-}" = 1 ] && [ $e = nl ] && [ $i = $(( N * 8 / 10 )) ] && start_perf
    tcall "${CLI[@]}" run -d --network scalenet --name s$i $IMG sleep 1000000
    [ -n "$LAST" ] || { why="run -d s$i failed: $(tail -1 $D/err.log)"; break; }
    echo "$i $LAST" >> $D/res/$e.A.runs
    reached=$i
    is_check $i && checkpoint $e A $i s1 s$i scalenet scalespare
  done
  [ -n "$PERF_PID" ] && stop_perf
  put $e.A reached $reached; put $e.A why "$why"
  echo "  [$e A] reached $reached containers; stopped: $why"
  if [ $reached -ge 2 ]; then per_query_check $e s1 s$reached; fi
  [ "${PERF:-}" = sys ] && [ $e = nl ] && start_perf_sys rm
  tcall remove_all "${CLI[@]}"; put $e.A rmall "$LAST"
  [ -n "$PERF_PID" ] && [ "${PERF:-}" = sys ] && stop_perf_sys rm
  echo "  [$e A] rm -f of $reached containers: $(msof "$LAST") ms"
  "${CLI[@]}" network rm scalenet scalespare >/dev/null 2>>$D/err.log || true
}

# Per query and per packet: RSS before and after a burst (nothing may grow with them).
per_query_check() { # engine first newest
  local e=$1 p sb b a r ok bad; p=$(daemon_pid $e)
  sb=$("${CLI[@]}" inspect -f '{{.NetworkSettings.SandboxKey}}' $2 2>/dev/null || true)
  [ -n "$sb" ] && [ -e "$sb" ] || return 0
  dns_probe "$sb" "$3" 1000 >/dev/null   # warm
  b=$(rss_kb $p)
  read -r r ok bad < <(dns_probe "$sb" "$3" "$BURSTQ")
  local ip; ip=$("${CLI[@]}" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' $3 2>/dev/null)
  [ -n "$ip" ] && nsenter --net="$sb" ping -f -c 10000 -q "$ip" >/dev/null 2>&1 || true
  a=$(rss_kb $p)
  put $e.A burst_kb $(( a - b )); put $e.A burst_ok "$ok/$BURSTQ"
  echo "  [$e A] $BURSTQ DNS queries ($ok answered) + 10,000 pings: RSS $((b / 1024)) -> $((a / 1024)) MB ($(( a - b )) kB)"
}

# ---------------- phase B: NNET networks, a container on each ----------------
phase_b() { # engine
  local e=$1 i t0 reached=0 why=done sub
  "${CLI[@]}" network create --subnet 10.201.0.0/24 scalespare >/dev/null
  CHECKS="1 $((NNET / 10)) $((NNET / 2)) $NNET"
  now_us; t0=$NOW
  for i in $(seq $NNET); do
    now_us; if [ $(( (NOW - t0) / 1000000 )) -ge $BUDGET ]; then why="time budget ($BUDGET s)"; break; fi
    if [ "$(mem_avail_mb)" -lt "$MIN_FREE_MB" ]; then why="memory (MemAvailable < $MIN_FREE_MB MB)"; break; fi
    sub="10.$(( 100 + (i - 1) / 256 )).$(( (i - 1) % 256 )).0/24"
    tcall "${CLI[@]}" network create --subnet $sub nb$i
    [ -n "$LAST" ] || { why="network create nb$i failed: $(tail -1 $D/err.log)"; break; }
    echo "$i $LAST" >> $D/res/$e.B.creates
    tcall "${CLI[@]}" run -d --network nb$i --name b$i $IMG sleep 1000000
    [ -n "$LAST" ] || { why="run -d b$i failed: $(tail -1 $D/err.log)"; break; }
    echo "$i $LAST" >> $D/res/$e.B.runs
    reached=$i
    is_check $i && checkpoint $e B $i b$i b$i nb1 scalespare
  done
  put $e.B reached $reached; put $e.B why "$why"
  echo "  [$e B] reached $reached networks; stopped: $why"
  tcall remove_all "${CLI[@]}"; put $e.B rmall "$LAST"
  local nets; nets=$(for i in $(seq $reached); do echo -n "nb$i "; done)
  tcall "${CLI[@]}" network rm $nets scalespare; put $e.B netrmall "$LAST"
  echo "  [$e B] rm -f of $reached containers: $(msof "$(get $e.B rmall)") ms; network rm of $reached networks: $(msof "$LAST") ms"
}

start_perf() {
  perf record -F 499 -g -p "$NETLOOMD_PID" -o $D/perf.data >/dev/null 2>&1 &
  PERF_PID=$!
  echo "  perf record on netloomd from run $(( N * 8 / 10 ))"
}
start_perf_sys() { # what: the whole machine (netloomd, its shims, the OCI runtime, the kernel)
  perf record -a -g -F 499 -o $D/perf-$1.data >/dev/null 2>&1 &
  PERF_PID=$!; sleep 0.5
}
stop_perf_sys() { # what -> ${PERF_OUT%.txt}-what.txt
  kill -INT "$PERF_PID" 2>/dev/null; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""
  local out=${PERF_OUT:-/tmp/scale-perf.txt}; out=${out%.txt}-$1.txt
  perf report -i $D/perf-$1.data --no-children --sort comm,dso,sym --percent-limit 0.5 --stdio -g none 2>/dev/null > "$out" || true
  echo "  perf report ($1, whole machine): $out"
}
stop_perf() {
  kill -INT "$PERF_PID" 2>/dev/null; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""
  perf report -i $D/perf.data --no-children --percent-limit 0.5 --stdio 2>/dev/null > "${PERF_OUT:-/tmp/scale-perf.txt}" || true
  echo "  perf report: ${PERF_OUT:-/tmp/scale-perf.txt}"
}

run_engine() { # engine
  local e=$1
  "${CLI[@]}" version >/dev/null
  s=(); for i in $(seq 10); do tcall "${CLI[@]}" version; [ -n "$LAST" ] && s+=($LAST); done
  put $e floor "$(printf '%s\n' "${s[@]}" | median)"
  "${CLI[@]}" run --rm --network none $IMG true >/dev/null 2>>$D/err.log || true   # warm-up
  [ -n "${SKIP_A:-}" ] || phase_a $e
  [ -n "${SKIP_B:-}" ] || phase_b $e
}

# ---------------- setup ----------------
rm -rf "$D"; mkdir -p "$D/dk" "$D/nl" "$D/bin" "$D/res"; : > "$D/err.log"
echo "{\"deprecated-key-path\": \"$D/dk/key.json\"}" > "$D/dk/daemon.json"
echo '{"dns": ["127.0.0.1"]}' > "$D/nl/daemon.json"
RF=$D/rootfs; mkdir -p $RF/bin $RF/etc $RF/tmp $RF/proc $RF/sys $RF/dev
cp /bin/busybox $RF/bin/busybox
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox $RF/bin/$a; done
tar -C $RF -cf $D/rootfs.tar .
echo "== scale: N=$N containers on one bridge, NNET=$NNET networks; K=$K DNSQ=$DNSQ BUDGET=${BUDGET}s per engine and phase; soft nofile $NOFILE_SOFT (hard $(ulimit -Hn)); $(nproc) vCPU, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
NL_STATUS=skipped; DK_STATUS=skipped

if [ -z "${SKIP_NETLOOM:-}" ]; then
  cp "$NETLOOMD" "$D/bin/netloomd"; cp "$NETLOOM" "$D/bin/netloom"
  ip netns add $NS_NL && ip -n $NS_NL link set lo up
  CLI=($D/bin/netloom -H unix://$NL_SOCK)
  start_netloomd
  if wait_up nl 20; then
    echo "-- netloom ($NL_BUILD build: $NETLOOMD)"
    "${CLI[@]}" image import -c 'CMD ["/bin/sh"]' $D/rootfs.tar $IMG >/dev/null
    run_engine nl && NL_STATUS=ok || NL_STATUS="sequence failed (see above)"
  else NL_STATUS="netloomd did not start: $(tail -3 $D/nl/netloomd.log | tr '\n' ' ')"; fi
  stop_engines
  echo "netloom: $NL_STATUS"
fi
if [ -z "${SKIP_DOCKER:-}" ]; then
  if [ -x "$DOCKERD" ] && [ -x $DK ]; then
    ip netns add $NS_DK && ip -n $NS_DK link set lo up
    CLI=($DK -H unix://$DK_SOCK)
    start_dockerd
    if wait_up dk 60; then
      echo "-- docker $("${CLI[@]}" version --format '{{.Server.Version}}' 2>/dev/null) (live-restore)"
      "${CLI[@]}" import -c 'CMD ["/bin/sh"]' $D/rootfs.tar $IMG >/dev/null
      run_engine dk && DK_STATUS=ok || DK_STATUS="sequence failed (see above)"
    else DK_STATUS="dockerd did not start: $(tail -3 $D/dk/dockerd.log | tr '\n' ' ')"; fi
    stop_engines
  else DK_STATUS="docker.io not installed"; fi
  echo "docker: $DK_STATUS"
fi

# ---------------- tables ----------------
TABLE=$D/table.md
row() { # label metric format(ms|n) phase checkpoints...
  local label=$1 m=$2 f=$3 ph=$4; shift 4
  local line="| $label |" e k v
  for e in nl dk; do for k in "$@"; do
    case $m in run) v=$(window_median $e $ph $k);; create) v=$(window_median $e $ph $k creates);; *) v=$(get $e.$ph.$k $m);; esac
    [ "$f" = ms ] && v=$(msof "$v")
    [ "$f" = dns ] && v=$(awk -v u="$v" 'BEGIN{ if (u=="-"||u<0) print "-"; else print u }')
    line+=" $v |"
  done; done
  echo "$line"
}
table_for() { # phase title count
  local ph=$1 title=$2 n=$3 c
  local cs=(1 $((n / 10)) $((n / 2)) $n)
  echo
  echo "### $title"
  echo
  local h="| metric |"; for e in netloom docker; do for c in "${cs[@]}"; do h+=" $e @$c |"; done; done
  echo "$h"; echo "|---|$(for _ in 1 2 3 4 5 6 7 8; do echo -n '---:|'; done)"
  row "run -d (ms, median of 5)" run ms $ph "${cs[@]}"
  [ $ph = B ] && row "network create (ms, median of 5)" create ms $ph "${cs[@]}"
  row "network connect (ms)" connect ms $ph "${cs[@]}"
  row "ps (ms)" ps ms $ph "${cs[@]}"
  row "network ls (ms)" netls ms $ph "${cs[@]}"
  row "network inspect (ms)" netinspect ms $ph "${cs[@]}"
  row "inspect container (ms)" inspect ms $ph "${cs[@]}"
  row "DNS lookup from a container (µs)" dns dns $ph "${cs[@]}"
  row "daemon RSS (MB)" rss n $ph "${cs[@]}"
  row "daemon RSS after its restart (MB)" rss_after n $ph "${cs[@]}"
  row "daemon open fds" fds n $ph "${cs[@]}"
  row "nft/iptables rules" rules n $ph "${cs[@]}"
  row "set/map elements" elems n $ph "${cs[@]}"
  row "restart until ps lists all (ms)" restart ms $ph "${cs[@]}"
  echo
  echo "reached: netloom $(get nl.$ph reached) ($(get nl.$ph why)), docker $(get dk.$ph reached) ($(get dk.$ph why));" \
    "rm -f of all: netloom $(msof "$(get nl.$ph rmall)") ms, docker $(msof "$(get dk.$ph rmall)") ms" \
    "$([ $ph = B ] && echo "; network rm of all: netloom $(msof "$(get nl.B netrmall)") ms, docker $(msof "$(get dk.B netrmall)") ms")"
}
{
  echo "netloom $NL_BUILD ($NL_STATUS), docker $("$DK" --version 2>/dev/null | awk '{print $3}' | tr -d ,) ($DK_STATUS); CLI floor (version): netloom $(msof "$(get nl floor)") ms, docker $(msof "$(get dk floor)") ms; dockerd's containerd RSS at the last checkpoint of A: $(get dk.A.$N rss_ctrd) MB"
  [ -n "${SKIP_A:-}" ] || table_for A "phase A: containers on one bridge" $N
  [ -n "${SKIP_B:-}" ] || table_for B "phase B: networks, one container each" $NNET
} > $TABLE

# ---------------- targets ----------------
verdict() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="-"||a==""||b=="-"||b=="") print "n/a"; else print (a<=b) ? "PASS" : "MISS" }'; }
{
  echo
  echo "### targets (netloom, phase A at $N containers)"
  echo
  r1=$(window_median nl A 1); rN=$(window_median nl A $N)
  ratio=$(awk -v a="$rN" -v b="$r1" 'BEGIN{ if (a=="-"||b=="-"||b==0) print "-"; else printf "%.2f", a/b }')
  echo "- $(verdict "$ratio" 1.5) run -d at $N / at 1 = $ratio (≤ 1.5)"
  echo "- $(verdict "$(get nl.A.$N rss)" 60) RSS at $N containers = $(get nl.A.$N rss) MB (≤ 60)"
  for m in ps netls netinspect; do
    v=$(get nl.A.$N $m); echo "- $(verdict "$v" 50000) $m at $N = $(msof "$v") ms (≤ 50)"
  done
  v=$(get nl.A rmall); echo "- $(verdict "$v" 10000000) rm -f of $(get nl.A reached) = $(msof "$v") ms (≤ 10,000)"
  v=$(get nl.A.$N restart); echo "- $(verdict "$v" 2000000) restart answering with $N running = $(msof "$v") ms (≤ 2,000)"
  v=$(get nl.A burst_kb); echo "- $(verdict "$v" 1024) RSS growth over $BURSTQ DNS queries + 10,000 packets = $v kB (≤ 1,024: nothing grows per query or packet)"
} >> $TABLE
echo
echo "== results"
cat $TABLE
if [ -e "$D/res/nl.A.$N.fdkinds" ]; then echo; echo "netloomd's descriptors at $N containers, by kind:"; cat "$D/res/nl.A.$N.fdkinds"; fi
if [ -s $D/err.log ]; then echo "--- stderr of failed invocations (last 10 lines) ---"; tail -10 $D/err.log; fi
if [ -n "${RESULTS:-}" ]; then cp $TABLE "$RESULTS"; echo "tables written to $RESULTS"; fi
