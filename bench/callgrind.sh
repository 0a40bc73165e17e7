#!/usr/bin/env bash
# Instructions per kept-alive FastCGI request, counted by callgrind (repeatable on a noisy
# machine): runs `cgate fastcgi --app APP` under callgrind twice, for N1 and N2 requests on one
# connection, and prints (Ir(N2) - Ir(N1)) / (N2 - N1), which cancels start-up and shutdown.
# With --serve: `cgate serve --app APP` and HTTP/1.1 GETs on one kept-alive TCP connection.
# Usage: bash bench/callgrind.sh [--serve] [--bin PATH] [--app hello] [--n1 2000] [--n2 12000]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin="" app=hello n1=2000 n2=12000 serve=0
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --app) app="$2"; shift 2 ;;
        --n1) n1="$2"; shift 2 ;;
        --n2) n2="$2"; shift 2 ;;
        --serve) serve=1; shift ;;
        *) echo "usage: $0 [--serve] [--bin PATH] [--app SPEC] [--n1 N] [--n2 N]" >&2; exit 2 ;;
    esac
done
if [ -z "$bin" ]; then
    cargo build --release --quiet
    bin=target/release/cgate
fi
work="$(mktemp -d /tmp/cgate-callgrind.XXXXXX)"
trap 'rm -rf "$work"' EXIT

count() {  # count N -> total Ir of a run serving N requests
    if [ "$serve" = 1 ]; then count_serve "$1"; else count_fastcgi "$1"; fi
}
count_fastcgi() {
    local n="$1" sock="$work/s$1.sock" out="$work/cg.$1"
    valgrind --tool=callgrind --callgrind-out-file="$out" --trace-children=no \
        "$bin" fastcgi --listen "unix:$sock" --workers 1 --app "$app" 2>"$work/vg.$n" &
    local pid=$!
    for _ in $(seq 1 600); do [ -S "$sock" ] && break; sleep 0.05; done
    [ -S "$sock" ] || { echo "cgate did not start" >&2; cat "$work/vg.$n" >&2; exit 1; }
    python3 bench/lib/fcgi_ka.py "$sock" "$n"
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}
count_serve() {  # the port comes from the start-up line (--listen :0 picks a free one)
    local n="$1" out="$work/cg.$1" port=""
    valgrind --tool=callgrind --callgrind-out-file="$out" --trace-children=no \
        "$bin" serve --listen 127.0.0.1:0 --app "$app" 2>"$work/vg.$n" &
    local pid=$!
    for _ in $(seq 1 600); do
        port="$(sed -n 's|^cgate: serving on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/vg.$n")"
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { echo "cgate serve did not start" >&2; cat "$work/vg.$n" >&2; exit 1; }
    python3 bench/lib/http_ka.py "$port" "$n"
    kill -INT "$pid"
    wait "$pid" || true
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}
a="$(count "$n1")"
b="$(count "$n2")"
awk -v a="$a" -v b="$b" -v n1="$n1" -v n2="$n2" -v app="$app" 'BEGIN {
    printf "app %s: Ir(%d)=%.0f Ir(%d)=%.0f -> %.0f instructions per kept-alive request\n", app, n1, a, n2, b, (b - a) / (n2 - n1) }'
