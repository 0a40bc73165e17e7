# backends.sh: bench/run.sh's row START functions, one per backend: START NAME SOCK PROCS ARG LOG.
# Sourced by bench/run.sh (uses its T, CGATE*, BUILD, PHP_FPM, SERVE_PORT and procs.sh's launch,
# wait_ready); not run on its own.
# shellcheck shell=bash

start_cgate() {
  local app=${4//\{dir\}/$T/cgi-bin} extra=()
  # cgate runs no CGI script as root unless told; the bench runs its C hello CGI as whoever
  # runs the bench (fcgiwrap beside it does the same).
  [[ $app == cgi:* && $EUID == 0 ]] && extra=(--allow-root)
  echo "command: $CGATE fastcgi --listen unix:$2 --app $app ${extra[*]}" >>"$5"
  launch "$5" "$CGATE" fastcgi --listen "unix:$2" --app "$app" "${extra[@]}"
}
# start_cgate_fwd: cgate hello on NAME.back.sock, and in front of it (on SOCK) cgate
# forwarding to it; FRONT_PID is the forwarder alone (its CPU is the forwarding cost).
start_cgate_fwd() {
  local back="${2%.sock}.back.sock" app why
  app=${4//\{back\}/$back}
  rm -f "$back"
  start_cgate "$1-back" "$back" 1 "$CGATE_HELLO_APP" "$5"
  why=$(wait_ready "unix:$back") || { echo "$why" >>"$5"; return 1; }
  # shellcheck disable=SC2086  # flags split on purpose
  echo "command: $CGATE fastcgi --listen unix:$2 --app $app $CGATE_FWD_FLAGS" >>"$5"
  launch "$5" "$CGATE" fastcgi --listen "unix:$2" --app "$app" $CGATE_FWD_FLAGS
  FRONT_PID=${BACKEND_PIDS[-1]}
}
# start_floor_fwd: cgate hello on NAME.back.sock and in front of it floor_proxy (one epoll
# thread copying bytes between each front connection and its own backend connection: the
# least an event-loop forwarder can do); FRONT_PID is the proxy.
start_floor_fwd() {
  local back="${2%.sock}.back.sock" why
  rm -f "$back"
  start_cgate "$1-back" "$back" 1 "$CGATE_HELLO_APP" "$5"
  why=$(wait_ready "unix:$back") || { echo "$why" >>"$5"; return 1; }
  echo "command: $BUILD/floor-proxy $2 $back" >>"$5"
  launch "$5" "$BUILD/floor-proxy" "$2" "$back"
  FRONT_PID=${BACKEND_PIDS[-1]}
}
start_libfcgi() {  # spawn-fcgi forks N children and exits; their PIDs are in its output
  local out pids args
  read -ra args <<<"$4"
  out=$(setsid spawn-fcgi -F "$3" -b 4096 -s "$2" -- "$BUILD/${args[0]}" "${args[@]:1}" 2>&1) \
    || { echo "$out" >>"$5"; return 1; }
  echo "$out" >>"$5"
  mapfile -t pids < <(grep -o 'PID: [0-9]*' <<<"$out" | awk '{print $2}')
  ((${#pids[@]} == $3)) || { echo "spawn-fcgi started ${#pids[@]} of $3" >>"$5"; BACKEND_PIDS+=("${pids[@]}"); return 1; }
  BACKEND_PIDS+=("${pids[@]}")
}
start_serve() {  # HTTP on SERVE_PORT; its access log goes to the row log, as a user's would
  echo "command: $CGATE serve --listen 127.0.0.1:$SERVE_PORT --app $4" >>"$5"
  launch "$5" "$CGATE" serve --listen "127.0.0.1:$SERVE_PORT" --app "$4"
}
start_go()       { launch "$5" "$BUILD/go-fcgi-hello" -listen "$2"; }
start_tokio()    { launch "$5" "$BUILD/rust-tokio-fastcgi-hello" "$2"; }
start_outer()    { launch "$5" "$BUILD/rust-outer-cgi-hello" fcgi-unix --bind "$2" --max-connections "$3"; }
start_fcgiwrap() { launch "$5" fcgiwrap -c "$3" -s "unix:$2"; }
start_php() {
  local conf="$T/php/$1.conf"
  cat >"$conf" <<EOF
[global]
pid = $T/php/$1.pid
error_log = $T/php/$1.error.log
log_level = warning
daemonize = no

[hello]
user = root
group = root
listen = $2
listen.backlog = 4096
pm = static
pm.max_children = $3
pm.max_requests = 0
clear_env = yes
EOF
  launch "$5" "$PHP_FPM" --allow-to-run-as-root --nodaemonize --fpm-config "$conf"
}
