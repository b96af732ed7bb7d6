# Shared helpers of the benchmark scripts and tests/differential/diff.sh: stopping the
# daemons they start and finding processes left to them. Sourced, never run. The callers
# set DOCKERD_PID, DK, DK_SOCK (dockerd) and NETLOOMD_PID, NL_BIN, NL_SOCK (netloomd).

# Fixed paths dockerd/containerd create regardless of --exec-root; callers remove the ones
# in NEWDIRS (absent at start) afterwards, if empty. Extra paths may be given.
note_new_rundirs() {
  RUNDIRS=(/run/docker/plugins /run/docker /run/containerd/s /run/containerd/runc /run/containerd "$@")
  NEWDIRS=(); local m; for m in "${RUNDIRS[@]}"; do [ -e "$m" ] || NEWDIRS+=("$m"); done
}

kill_wait() { # pid: SIGTERM, wait up to 30 s, then SIGKILL
  local p=$1; kill -0 "$p" 2>/dev/null || return 0
  kill "$p" 2>/dev/null
  for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null || true
}

children() { # KIDS = pids whose parent is this shell (own children and orphans re-parented here)
  local f l me=$$; KIDS=()
  for f in /proc/[0-9]*/stat; do
    read -r l 2>/dev/null < "$f" || continue
    l=${l##*) }; set -- $l
    [ "$2" = "$me" ] && KIDS+=("${f//[^0-9]/}")
  done
}

stop_docker() { # removes dockerd's containers, then stops it
  [ -n "$DOCKERD_PID" ] || return 0
  if kill -0 "$DOCKERD_PID" 2>/dev/null; then
    local c; for c in $($DK -H unix://$DK_SOCK ps -aq 2>/dev/null); do $DK -H unix://$DK_SOCK rm -f "$c" >/dev/null 2>&1; done
    kill_wait "$DOCKERD_PID"
  fi
  DOCKERD_PID=""
}

stop_netloom() { # removes netloomd's containers, then stops it (SIGTERM)
  [ -n "$NETLOOMD_PID" ] || return 0
  if kill -0 "$NETLOOMD_PID" 2>/dev/null; then
    local c; for c in $($NL_BIN -H unix://$NL_SOCK ps -aq 2>/dev/null); do $NL_BIN -H unix://$NL_SOCK rm -f "$c" >/dev/null 2>&1; done
    kill_wait "$NETLOOMD_PID"
  fi
  NETLOOMD_PID=""
}
