# procs.sh: bench/run.sh's process helpers: the PIDs it tracks, starting, waiting for and
# stopping (by PID, with descendants) what it runs, and the cleanup at exit.
# Sourced by bench/run.sh (uses its log, KEEP and T); not run on its own.
# shellcheck shell=bash

# Only what runs now is tracked (NGINX_PID, the current row's BACKEND_PIDS): a stopped
# row's PIDs are forgotten, so a reused PID is never signalled.
NGINX_PID="" FG_PID="" TARGET="" FRONT_PID=""
BACKEND_PIDS=()

alive() {  # alive PID: exists and is not a zombie
  local s
  read -r s 2>/dev/null <"/proc/$1/stat" || return 1
  s=${s##*) }
  [[ ${s%% *} != Z ]]
}
descendants() {  # descendants PID: all of them, children first
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { kids[$2] = kids[$2] " " $1 }
    END { n = split(kids[root], todo, " "); i = 1
          while (i <= n) { p = todo[i++]; print p; m = split(kids[p], k, " ")
                           for (j = 1; j <= m; j++) todo[++n] = k[j] } }'
}
stop_pids() {  # stop_pids PID...: TERM each PID and its descendants; KILL what is left after 5 s
  local all=() kids=() left p i
  for p in "$@"; do
    if alive "$p"; then
      mapfile -t kids < <(descendants "$p")
      all+=("$p" "${kids[@]}")
    fi
  done
  ((${#all[@]})) || return 0
  kill -TERM "${all[@]}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    left=0
    for p in "${all[@]}"; do alive "$p" && left=1 && break; done
    ((left)) || break
    sleep 0.1
  done
  for p in "${all[@]}"; do
    if alive "$p"; then log "PID $p ignored TERM for 5 s, sending KILL"; kill -KILL "$p" 2>/dev/null || true; fi
  done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
# launch LOG CMD...: start a backend in its own session (so that one signalling its
# process group cannot hit run.sh) and track its PID.
launch() {
  local log=$1
  shift
  setsid "$@" >>"$log" 2>&1 &
  BACKEND_PIDS+=("$!")
}
# fg_run CMD...: run a load generator in the background and wait, so that TERM/INT
# reach run.sh at once; cleanup stops it.
fg_run() {
  "$@" &
  FG_PID=$!
  wait "$FG_PID" || true
  FG_PID=""
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n $FG_PID ]] && stop_pids "$FG_PID"
  ((${#BACKEND_PIDS[@]})) && stop_pids "${BACKEND_PIDS[@]}"
  [[ -n $NGINX_PID ]] && stop_pids "$NGINX_PID"
  if [[ -n ${T:-} && -d $T ]]; then
    if ((KEEP)); then log "work dir kept: $T"; else rm -rf "$T"; fi
  fi
  exit "$rc"
}
wait_ready() {  # wait_ready unix:PATH|URL: until it answers; fails if a backend died
  local target=$1 i p
  for ((i = 0; i < 150; i++)); do
    case $target in
      unix:*) [[ -S ${target#unix:} ]] && return 0 ;;
      http:*) curl -fsS -o /dev/null -m 1 "$target" 2>/dev/null && return 0 ;;
    esac
    for p in "${BACKEND_PIDS[@]}"; do
      alive "$p" || { echo "PID $p exited before $target was ready"; return 1; }
    done
    sleep 0.1
  done
  echo "$target not ready after 15 s"
  return 1
}
