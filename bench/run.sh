#!/usr/bin/env bash
# run.sh: cgate's benchmark: cgate beside peer FastCGI / CGI servers, behind one nginx.
#
#   bash bench/run.sh [options]
#
# Builds cgate (cargo build --release at the project root), runs bench/setup.sh
# (installs what is missing, builds the peers), then in a mktemp work dir starts
# nginx and, row after row, each backend on a Unix socket; measures it with wrk
# through nginx; stops it by PID. After the rows of each round it times one CGI run
# (hyperfine); after the last round it POSTs 1 GiB through nginx to cgate's echo app.
# Prints one table (medians over rounds) and a block checking cgate's targets.
# Everything it started is stopped by PID and the work dir is removed at exit.
#
# Options:
#   --rounds N          repeat every row N times, round after round; medians (default 2)
#   -d, --duration D    measured wrk time per row (default 5s)
#   -w, --warmup D      wrk warm-up per row, not measured (default 1s)
#   --only REGEX        run only rows whose name matches (the nginx-static rows always
#                       run: every ratio needs them); `cgi-run`, `call-repeat` and
#                       `post-1g` name the CGI-run timing, the `cgate call --repeat`
#                       comparison and the 1 GiB POST
#   --out DIR           keep the raw results in DIR (default: inside the work dir)
#   --keep              keep the work dir (configs, logs, sockets, results)
#   --list              print the row names and exit
#   -h, --help
#
# Environment: CGATE=PATH uses that cgate binary instead of building one.
# Load goes only to 127.0.0.1 and Unix sockets. Needs root (php-fpm, nginx `user root`).
set -euo pipefail

# --- cgate's command lines: default settings, no tuning flags ----------------------
CGATE_HELLO_APP="hello"
CGATE_CGI_APP="cgi:{dir}"           # {dir}: a directory holding the C hello CGI as `hello`
CGATE_BYTES_APP="bytes:65536"       # an app that answers BYTES_LEN bytes
BYTES_LEN=65536
CGATE_ECHO_APP="echo"               # answers JSON with input.length and input.sha256
POST_LEN=$((1 << 30))               # bytes POSTed to the echo app
# forwarding (fwd): nginx -> cgate fcgi: -> cgate hello, and `cgate call --repeat`
CGATE_FWD_APP="fcgi:unix:{back}"    # {back}: the socket of the cgate hello behind it
# The forwarder parks each request while its backend answers: default settings (set
# CGATE_FWD_FLAGS to try others).
CGATE_FWD_FLAGS=${CGATE_FWD_FLAGS-}
CALL_REPEAT=100000 CALL_CONCS="1 8 32" # cgate call --repeat N --concurrency C, per backend and C

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
BUILD="$BENCH/build"
LIB="$BENCH/lib"
PY=/usr/bin/python3

DURATION=5s WARMUP=1s CONNS=32 THREADS=2 ROUNDS=2 ONLY="" OUT="" KEEP=0 LIST=0
CPUS="$(nproc)"
PROCS=$((2 * CPUS))        # prefork peers, one connection per request
PROCS_KA=$((2 * CONNS))    # prefork peers with keep_conn: each process is pinned to
                           # one kept connection, and nginx keeps up to 2 x CONNS
HF_RUNS=500 HF_WARMUP=30   # hyperfine runs per program and round

die() { echo "run.sh: error: $*" >&2; exit 1; }
log() { echo "run.sh: $*" >&2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit "${1:-0}"; }

ARGS_GIVEN="$*"
while (($#)); do
  case $1 in
    --rounds)      ROUNDS=${2?}; shift ;;
    -d|--duration) DURATION=${2?}; shift ;;
    -w|--warmup)   WARMUP=${2?}; shift ;;
    --only)        ONLY=${2?}; shift ;;
    --out)         OUT=${2?}; shift ;;
    --keep)        KEEP=1 ;;
    --list)        LIST=1 ;;
    -h|--help)     usage 0 ;;
    *)             echo "run.sh: unknown option: $1" >&2; usage 2 ;;
  esac
  shift
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer: $ROUNDS"
[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "bad --duration: $DURATION"
[[ $WARMUP =~ ^[1-9][0-9]*[smh]?$ ]] || die "bad --warmup: $WARMUP"
# Idle upstream connections each nginx worker keeps: its share of wrk's connections.
KEEPALIVE=$(((CONNS + CPUS - 1) / CPUS))

# --- rows ----------------------------------------------------------------------------
# A row: NAME (nginx location /NAME, socket NAME.sock), KIND (static: nginx answers;
# fcgi: nginx -> Unix socket), START function and its ARG, PROCS, KA (1: keep_conn +
# upstream keepalive), SCRIPT (SCRIPT_FILENAME), EXPECT (hello | len:N), GROUP (rows
# compared with the cgate row of the same group), NOTE.
ROW_NAMES=()
declare -A ROW_KIND ROW_START ROW_ARG ROW_PROCS ROW_KA ROW_SCRIPT ROW_EXPECT ROW_GROUP ROW_NOTE
add_row() {
  ROW_NAMES+=("$1")
  ROW_KIND[$1]=$2 ROW_START[$1]=$3 ROW_ARG[$1]=$4 ROW_PROCS[$1]=$5 ROW_KA[$1]=$6
  ROW_SCRIPT[$1]=$7 ROW_EXPECT[$1]=$8 ROW_GROUP[$1]=$9 ROW_NOTE[$1]=${10}
}
register_rows() {
  local php="$T/www/hello.php" none="$T/www/none" cgi="$T/cgi-bin/hello" k=$PROCS_KA p=$PROCS
  local len="len:$BYTES_LEN" kib=$((BYTES_LEN / 1024))
  add_row nginx-static       static ""          ""            0  0 "$none" hello ""       "nginx return 200"
  # serve row: wrk straight at `cgate serve` (no nginx in front), beside nginx's own reply.
  add_row cgate-serve        http   start_serve "$CGATE_HELLO_APP" 1 0 "$none" hello serve "cgate serve --app $CGATE_HELLO_APP, no nginx"
  add_row cgate-ka           fcgi start_cgate   "$CGATE_HELLO_APP" 1 1 "$none" hello hello-ka "cgate --app $CGATE_HELLO_APP"
  add_row cgate-fwd-ka       fcgi start_cgate_fwd "$CGATE_FWD_APP" 1 1 "$none" hello fwd-ka "cgate${CGATE_FWD_FLAGS:+ $CGATE_FWD_FLAGS} --app $CGATE_FWD_APP -> cgate --app $CGATE_HELLO_APP"
  # the least a forwarder on an event loop can do, in front of the same cgate hello
  add_row floor-fwd-ka       fcgi start_floor_fwd "" 1 1 "$none" hello fwd-ka "C floor_proxy (epoll byte copier) -> cgate --app $CGATE_HELLO_APP"
  add_row libfcgi-ka         fcgi start_libfcgi hello-fcgi    "$k" 1 "$none" hello hello-ka "C libfcgi, $k processes"
  add_row go-fcgi-ka         fcgi start_go      ""            1  1 "$none" hello hello-ka "Go net/http/fcgi"
  add_row php-fpm-ka         fcgi start_php     ""            "$k" 1 "$php" hello hello-ka "php-fpm, $k children"
  add_row outer-cgi-ka       fcgi start_outer   ""            "$k" 1 "$none" hello hello-ka "Rust outer_cgi, $k threads"
  add_row tokio-fastcgi-ka   fcgi start_tokio   ""            1  1 "$none" hello hello-ka "Rust tokio-fastcgi"
  add_row nginx-static-mid   static ""          ""            0  0 "$none" hello ""       "nginx return 200, again"
  add_row cgate              fcgi start_cgate   "$CGATE_HELLO_APP" 1 0 "$none" hello hello "cgate --app $CGATE_HELLO_APP"
  add_row libfcgi            fcgi start_libfcgi hello-fcgi    "$p" 0 "$none" hello hello    "C libfcgi, $p processes"
  add_row go-fcgi            fcgi start_go      ""            1  0 "$none" hello hello    "Go net/http/fcgi"
  add_row php-fpm            fcgi start_php     ""            "$p" 0 "$php" hello hello    "php-fpm, $p children"
  add_row outer-cgi          fcgi start_outer   ""            "$p" 0 "$none" hello hello    "Rust outer_cgi, $p threads"
  add_row tokio-fastcgi      fcgi start_tokio   ""            1  0 "$none" hello hello    "Rust tokio-fastcgi"
  add_row cgate-cgi          fcgi start_cgate   "$CGATE_CGI_APP" 1 0 "$cgi" hello cgi     "cgate --app $CGATE_CGI_APP + C hello CGI"
  add_row fcgiwrap           fcgi start_fcgiwrap ""           "$p" 0 "$cgi" hello cgi     "fcgiwrap -c $p + C hello CGI"
  add_row cgate-64k-ka       fcgi start_cgate   "$CGATE_BYTES_APP" 1 1 "$none" "$len" bytes-ka "cgate --app $CGATE_BYTES_APP"
  add_row libfcgi-64k-ka     fcgi start_libfcgi "bytes-fcgi $BYTES_LEN" "$k" 1 "$none" "$len" bytes-ka "C libfcgi, $kib KiB, $k processes"
  add_row nginx-static-end   static ""          ""            0  0 "$none" hello ""       "nginx return 200, again"
}
selected() {  # selected NAME: the static rows always run
  [[ ${ROW_KIND[$1]:-} == static ]] && return 0
  [[ -z $ONLY || $1 =~ $ONLY ]]
}

# --- processes: tracked PIDs, launch, wait_ready, stop_pids, cleanup (bench/lib/procs.sh) ---
# shellcheck source=lib/procs.sh
source "$LIB/procs.sh"

# --- backends: START NAME SOCK PROCS ARG LOG (bench/lib/backends.sh) ---------------------
# shellcheck source=lib/backends.sh
source "$LIB/backends.sh"

# --- nginx: one config for the whole run ---------------------------------------------------
write_nginx_conf() {
  local row
  {
    cat <<EOF
worker_processes $CPUS;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
daemon off;
user root root;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  keepalive_requests 1000000;
  client_body_temp_path $T/nginx/body;
  fastcgi_temp_path $T/nginx/fastcgi;
  proxy_temp_path $T/nginx/proxy;
  uwsgi_temp_path $T/nginx/uwsgi;
  scgi_temp_path $T/nginx/scgi;
  # Room for a ${BYTES_LEN}-byte reply in memory, so no row spills to a temp file.
  fastcgi_buffer_size 8k;
  fastcgi_buffers $(((BYTES_LEN + 8191) / 8192 + 2)) 8k;
EOF
    for row in "${ROW_NAMES[@]}"; do
      [[ ${ROW_KIND[$row]} == fcgi && ${ROW_KA[$row]} == 1 ]] || continue
      printf '  upstream ka_%s { server unix:%s; keepalive %d; }\n' "${row//-/_}" "$T/sock/$row.sock" "$KEEPALIVE"
    done
    cat <<EOF
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096 reuseport;
    server_name localhost;
    location = /nginx-static { return 200 "Hello, world!\n"; }
    location = /post-1g {
      include /etc/nginx/fastcgi_params;
      client_max_body_size 0;
      client_body_timeout 300s;
      fastcgi_request_buffering off;
      fastcgi_send_timeout 300s;
      fastcgi_read_timeout 300s;
      fastcgi_pass unix:$T/sock/post-1g.sock;
    }
EOF
    for row in "${ROW_NAMES[@]}"; do
      [[ ${ROW_KIND[$row]} == fcgi ]] || continue
      printf '    location = /%s {\n      include /etc/nginx/fastcgi_params;\n' "$row"
      printf '      fastcgi_param SCRIPT_FILENAME %s;\n' "${ROW_SCRIPT[$row]}"
      if [[ ${ROW_KA[$row]} == 1 ]]; then
        printf '      fastcgi_keep_conn on;\n      fastcgi_pass ka_%s;\n    }\n' "${row//-/_}"
      else
        printf '      fastcgi_pass unix:%s;\n    }\n' "$T/sock/$row.sock"
      fi
    done
    printf '  }\n}\n'
  } >"$T/nginx/nginx.conf"
}
start_nginx() {
  write_nginx_conf
  nginx -t -q -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf" \
    || die "nginx rejected $T/nginx/nginx.conf: $(tail -n 3 "$T/nginx/error.log")"
  nginx -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf" >>"$T/nginx/stdout.log" 2>&1 &
  NGINX_PID=$!
  BACKEND_PIDS=("$NGINX_PID")  # so that wait_ready notices if nginx dies
  wait_ready "http://127.0.0.1:$NGINX_PORT/nginx-static" >/dev/null \
    || die "nginx did not come up: $(tail -n 5 "$T/nginx/error.log")"
  BACKEND_PIDS=()
}

# --- one wrk row -----------------------------------------------------------------------
check_reply() {  # check_reply URL EXPECT: 200 and the expected body, a few tries
  local url=$1 expect=$2 code i size
  for ((i = 0; i < 5; i++)); do
    code=$(curl -sS -m 5 -o "$T/body" -w '%{http_code}' "$url" 2>>"$T/log/curl.err") || code=000
    if [[ $code == 200 ]]; then
      case $expect in
        hello) [[ "$(od -An -c "$T/body" | tr -s ' ')" == " H e l l o , w o r l d ! \n" ]] && return 0 ;;
        len:*) size=$(stat -c %s "$T/body"); [[ $size == "${expect#len:}" ]] && return 0 ;;
      esac
    fi
    sleep 0.2
  done
  echo "GET $url: status $code, $(stat -c %s "$T/body" 2>/dev/null || echo 0) bytes: $(head -c 80 "$T/body" 2>/dev/null | od -An -c | tr -s ' ' | head -2 | tr -d '\n')"
  return 1
}
fail_row() {  # fail_row DIR NAME REASON
  echo "FAILED: $3" >"$1/status"
  log "$2 FAILED: $3"
  FAILURES=$((FAILURES + 1))
}
stop_backend() {
  ((${#BACKEND_PIDS[@]})) && stop_pids "${BACKEND_PIDS[@]}"
  BACKEND_PIDS=()
}
run_row() {  # run_row NAME
  local row=$1 dir="$OUT/round$ROUND/$1" sock="$T/sock/$1.sock" rowlog="$T/log/$1.round$ROUND.log"
  local url="http://127.0.0.1:$NGINX_PORT/$1" why
  [[ ${ROW_KIND[$row]} == static ]] && url="http://127.0.0.1:$NGINX_PORT/nginx-static"
  local ready="unix:$sock"
  [[ ${ROW_KIND[$row]} == http ]] && url="http://127.0.0.1:$SERVE_PORT/" && ready=$url
  mkdir -p "$dir"
  rm -f "$sock"
  ORDER=$((ORDER + 1))
  printf 'order=%s\nrow=%s\nkind=%s\ngroup=%s\nkeep_conn=%s\nnote=%s\n' "$ORDER" "$row" "${ROW_KIND[$row]}" \
    "${ROW_GROUP[$row]}" "${ROW_KA[$row]}" "${ROW_NOTE[$row]}" >"$dir/meta"
  BACKEND_PIDS=()
  if [[ -n ${ROW_START[$row]} ]]; then
    if ! ${ROW_START[$row]} "$row" "$sock" "${ROW_PROCS[$row]}" "${ROW_ARG[$row]}" "$rowlog"; then
      fail_row "$dir" "$row" "backend did not start: $(tail -n 3 "$rowlog" | tr '\n' ' ')"; stop_backend; return
    fi
    if ! why=$(wait_ready "$ready"); then
      fail_row "$dir" "$row" "$why; log: $(tail -n 3 "$rowlog" | tr '\n' ' ')"; stop_backend; return
    fi
  fi
  if ! why=$(check_reply "$url" "${ROW_EXPECT[$row]}"); then
    fail_row "$dir" "$row" "$why"; stop_backend; return
  fi
  local groups=("nginx=$NGINX_PID")
  ((${#BACKEND_PIDS[@]})) && groups+=("backend=$(IFS=,; echo "${BACKEND_PIDS[*]}")")
  [[ -n ${FRONT_PID:-} ]] && groups+=("front=$FRONT_PID")
  fg_run wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" --timeout 5s "$url" >"$dir/warmup.txt" 2>&1
  "$PY" "$LIB/procstat.py" cpu "${groups[@]}" >"$dir/cpu-before.json"
  fg_run wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 5s -s "$LIB/wrk-report.lua" "$url" >"$dir/wrk.txt" 2>&1
  "$PY" "$LIB/procstat.py" cpu "${groups[@]}" >"$dir/cpu-after.json"
  if ((${#BACKEND_PIDS[@]})); then
    sleep 1  # let the backend settle before its memory is read
    "$PY" "$LIB/procstat.py" mem "${BACKEND_PIDS[@]}" >"$dir/mem.json"
  fi
  stop_backend
  FRONT_PID=""
  rm -f "$sock" "${sock%.sock}.back.sock"
  if grep -q '^WRK_RESULT' "$dir/wrk.txt"; then
    echo OK >"$dir/status"
    log "round $ROUND $(printf '%-17s' "$row") $(awk '/^Requests\/sec/ {printf "%9.0f req/s", $2}' "$dir/wrk.txt")"
  else
    fail_row "$dir" "$row" "wrk failed: $(tail -n 2 "$dir/wrk.txt" | tr '\n' ' ')"
  fi
}

# --- one CGI run: cgate cgi --app hello vs the C hello CGI (hyperfine) -------------------
CGI_ENV=(PATH=/usr/local/bin:/usr/bin:/bin GATEWAY_INTERFACE=CGI/1.1 SERVER_SOFTWARE=bench
         SERVER_NAME=localhost SERVER_PORT=80 SERVER_PROTOCOL=HTTP/1.1 REQUEST_METHOD=GET
         REQUEST_URI=/hello SCRIPT_NAME=/hello PATH_INFO= QUERY_STRING= REMOTE_ADDR=127.0.0.1
         REMOTE_PORT=40000 HTTP_HOST=localhost HTTP_USER_AGENT=bench HTTP_ACCEPT=*/*)
run_cgi_timing() {
  local dir="$OUT/round$ROUND/cgi-run" out
  mkdir -p "$dir"
  for cmd in "$BUILD/hello-cgi" "$CGATE cgi --app $CGATE_HELLO_APP"; do
    # shellcheck disable=SC2086  # split on purpose: a command line without quoting
    out=$(env -i "${CGI_ENV[@]}" $cmd </dev/null 2>&1) || { fail_row "$dir" cgi-run "$cmd exited non-zero: ${out:0:200}"; return; }
    [[ $out == *"Hello, world!"* ]] || { fail_row "$dir" cgi-run "$cmd printed no hello: ${out:0:200}"; return; }
  done
  if env -i "${CGI_ENV[@]}" hyperfine -N --style basic --output=pipe --warmup "$HF_WARMUP" --runs "$HF_RUNS" \
       --export-json "$dir/hyperfine.json" \
       --command-name c-hello-cgi "$BUILD/hello-cgi" \
       --command-name cgate-cgi-hello "$CGATE cgi --app $CGATE_HELLO_APP" >"$dir/hyperfine.txt" 2>&1; then
    echo OK >"$dir/status"
    log "round $ROUND cgi-run          hyperfine done"
  else
    fail_row "$dir" cgi-run "hyperfine failed: $(tail -n 3 "$dir/hyperfine.txt" | tr '\n' ' ')"
  fi
}

# --- cgate call --repeat: the same client against cgate hello and libfcgi hello ------------
# Beside them `floor`, a C responder that parses records and answers one canned reply with
# one write (peers/c/floor_fcgi.c): what no backend can beat with this client. At C = 1
# each peer also runs pinned: `cross` (client on CPU 0, backend on CPU 1: every round trip
# is two cross-CPU wake-ups) and `same` (both on CPU 0: no wake-up crosses CPUs).
start_call_peer() {  # start_call_peer PEER SOCK C LOG
  case $1 in
    cgate) start_cgate call-repeat "$2" 1 "$CGATE_HELLO_APP" "$4" ;;
    libfcgi) start_libfcgi call-repeat "$2" "$3" hello-fcgi "$4" ;;
    floor) start_libfcgi call-repeat "$2" "$3" floor-fcgi "$4" ;;
  esac
}
# call_repeat_one DIR PEER C PLACEMENT: one run into DIR/PEER-cC[-PLACEMENT].txt; on failure
# CALL_WHY says why (no subshell: cleanup must see the PIDs it started).
call_repeat_one() {
  local dir=$1 peer=$2 c=$3 place=$4 sock="$T/sock/call-repeat.sock" rowlog="$T/log/call-repeat.log"
  local out="$dir/$peer-c$c${place:+-$place}.txt" why p client=()
  BACKEND_PIDS=()
  rm -f "$sock"
  start_call_peer "$peer" "$sock" "$c" "$rowlog" || { CALL_WHY="$peer did not start"; stop_backend; return 1; }
  if ! why=$(wait_ready "unix:$sock"); then CALL_WHY="$peer: $why"; stop_backend; return 1; fi
  case $place in
    cross) client=(taskset -c 0); for p in "${BACKEND_PIDS[@]}"; do taskset -apc 1 "$p" >/dev/null; done ;;
    same) client=(taskset -c 0); for p in "${BACKEND_PIDS[@]}"; do taskset -apc 0 "$p" >/dev/null; done ;;
  esac
  fg_run "${client[@]}" "$CGATE" call "unix:$sock" / --expect 200 --repeat "$CALL_REPEAT" --concurrency "$c" \
    >"$out" 2>&1
  stop_backend
  rm -f "$sock"
  grep -q '^requests .* errors 0 ' "$out" || { CALL_WHY="$peer: $(head -c 200 "$out")"; return 1; }
  log "round $ROUND call-repeat $(printf '%-8s' "$peer") -c $c ${place:-unpinned} $(head -n 1 "$out")"
}
run_call_repeat() {
  local dir="$OUT/round$ROUND/call-repeat" peer c place places=""
  mkdir -p "$dir"
  ((CPUS >= 2)) && places="cross same"
  for c in $CALL_CONCS; do
    for peer in cgate libfcgi floor; do
      call_repeat_one "$dir" "$peer" "$c" "" || { fail_row "$dir" call-repeat "$CALL_WHY"; return; }
    done
  done
  for place in $places; do
    for peer in cgate libfcgi floor; do
      call_repeat_one "$dir" "$peer" 1 "$place" || { fail_row "$dir" call-repeat "$CALL_WHY"; return; }
    done
  done
  echo OK >"$dir/status"
}

# --- 1 GiB POST through nginx to cgate's echo app ---------------------------------------
run_post() {
  local dir="$OUT/post-1g" sock="$T/sock/post-1g.sock" rowlog="$T/log/post-1g.log" why
  local url="http://127.0.0.1:$NGINX_PORT/post-1g"
  mkdir -p "$dir"
  BACKEND_PIDS=()
  rm -f "$sock"
  start_cgate post-1g "$sock" 1 "$CGATE_ECHO_APP" "$rowlog"
  if ! why=$(wait_ready "unix:$sock"); then
    fail_row "$dir" post-1g "$why; log: $(tail -n 3 "$rowlog" | tr '\n' ' ')"; stop_backend; return
  fi
  # A small POST first: the baseline peak memory then includes serving a request.
  if ! why=$("$PY" "$LIB/post.py" "$url" 4096 2>&1 >"$dir/small.json"); then
    fail_row "$dir" post-1g "small POST: $why"; stop_backend; return
  fi
  "$PY" "$LIB/procstat.py" hwm "${BACKEND_PIDS[@]}" >"$dir/hwm-before.json"
  log "POST $POST_LEN bytes to cgate --app $CGATE_ECHO_APP through nginx"
  if ! why=$("$PY" "$LIB/post.py" "$url" "$POST_LEN" 2>&1 >"$dir/post.json"); then
    fail_row "$dir" post-1g "POST: $why"
  else
    echo OK >"$dir/status"
  fi
  "$PY" "$LIB/procstat.py" hwm "${BACKEND_PIDS[@]}" >"$dir/hwm-after.json"
  stop_backend
  rm -f "$sock"
}

# --- main ----------------------------------------------------------------------------
main() {
  [[ $EUID -eq 0 ]] || die "run as root (php-fpm and nginx run their workers as root here)"
  if [[ -z ${CGATE:-} ]]; then
    log "scripts/build-release.sh (static release build, as deployed)"
    CGATE=$(bash "$ROOT/scripts/build-release.sh") || die "release build failed"
  fi
  [[ -x $CGATE ]] || die "cgate binary not found: $CGATE"
  bash "$BENCH/setup.sh"
  PHP_FPM=$(compgen -c php-fpm | sort -V | tail -n 1)
  [[ -n $PHP_FPM ]] || die "no php-fpm binary found"
  for tool in nginx wrk hyperfine curl spawn-fcgi fcgiwrap "$PY"; do
    command -v "$tool" >/dev/null || die "$tool not found (setup.sh should have installed it)"
  done

  T=$(mktemp -d /tmp/cgate-bench.XXXXXX)
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "$T"/{nginx,php,sock,log,www,cgi-bin}
  install -m 0755 "$BUILD/hello-cgi" "$T/cgi-bin/hello"
  cp "$BENCH/peers/php/hello.php" "$T/www/hello.php"
  register_rows
  if ((LIST)); then
    for row in "${ROW_NAMES[@]}" cgi-run call-repeat post-1g; do printf '%-17s %s\n' "$row" "${ROW_NOTE[$row]:-}"; done
    exit 0
  fi
  OUT=${OUT:-$T/results}
  mkdir -p "$OUT"
  NGINX_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  SERVE_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  {
    echo "date=$(date -Is)"; echo "host=$(uname -srm)"; echo "ncpu=$CPUS"
    echo "loadavg_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nginx=$(nginx -v 2>&1 | sed 's/.*: //')"
    echo "wrk=-t$THREADS -c$CONNS -d$DURATION (warm-up $WARMUP), nginx keepalive $KEEPALIVE per worker"
    echo "rounds=$ROUNDS"; echo "hyperfine=$HF_RUNS runs, warm-up $HF_WARMUP"
    echo "post_len=$POST_LEN"; echo "cgate=$CGATE"
    echo "command=bench/run.sh $ARGS_GIVEN"
  } >"$OUT/run.env"

  start_nginx
  log "nginx PID $NGINX_PID on 127.0.0.1:$NGINX_PORT, $CPUS workers"
  FAILURES=0 ORDER=0
  for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    for row in "${ROW_NAMES[@]}"; do
      selected "$row" && run_row "$row"
    done
    selected cgi-run && run_cgi_timing
    selected call-repeat && run_call_repeat
  done
  selected post-1g && run_post

  echo "loadavg_at_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/run.env"
  "$PY" "$LIB/report.py" "$OUT" | tee "$OUT/report.md"
  ((FAILURES == 0)) || die "$FAILURES measurement(s) failed (see above)"
}

main "$@"
