#!/usr/bin/env bash
# Instructions per kept-alive FastCGI request, counted by callgrind (repeatable on a noisy
# machine): runs `cgate fastcgi --app APP` under callgrind twice, for N1 and N2 requests on one
# connection, and prints (Ir(N2) - Ir(N1)) / (N2 - N1), which cancels start-up and shutdown.
# --forward: the counted cgate runs `--app fcgi:unix:BACK` in front of a cgate `--app APP` on
# BACK that runs outside valgrind, so the count is the forwarding process alone.
# Usage: bash bench/callgrind.sh [--bin PATH] [--app hello] [--forward] [--n1 2000] [--n2 12000]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin="" app=hello n1=2000 n2=12000 forward=0
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --app) app="$2"; shift 2 ;;
        --forward) forward=1; shift ;;
        --n1) n1="$2"; shift 2 ;;
        --n2) n2="$2"; shift 2 ;;
        *) echo "usage: $0 [--bin PATH] [--app SPEC] [--forward] [--n1 N] [--n2 N]" >&2; exit 2 ;;
    esac
done
if [ -z "$bin" ]; then
    cargo build --release --quiet
    bin=target/release/cgate
fi
work="$(mktemp -d /tmp/cgate-callgrind.XXXXXX)"
back_pid=""
trap 'if [ -n "$back_pid" ]; then kill -TERM "$back_pid" 2>/dev/null; wait "$back_pid" 2>/dev/null; fi; rm -rf "$work"' EXIT
counted="$app"
if [ "$forward" = 1 ]; then
    "$bin" fastcgi --listen "unix:$work/back.sock" --app "$app" 2>"$work/back.log" &
    back_pid=$!
    for _ in $(seq 1 200); do [ -S "$work/back.sock" ] && break; sleep 0.05; done
    [ -S "$work/back.sock" ] || { echo "the backend did not start" >&2; cat "$work/back.log" >&2; exit 1; }
    counted="fcgi:unix:$work/back.sock"
fi

count() {  # count N -> total Ir of a run serving N requests
    local n="$1" sock="$work/s$1.sock" out="$work/cg.$1"
    valgrind --tool=callgrind --callgrind-out-file="$out" --trace-children=no \
        "$bin" fastcgi --listen "unix:$sock" --workers 1 --app "$counted" 2>"$work/vg.$n" &
    local pid=$!
    for _ in $(seq 1 600); do [ -S "$sock" ] && break; sleep 0.05; done
    [ -S "$sock" ] || { echo "cgate did not start" >&2; cat "$work/vg.$n" >&2; exit 1; }
    python3 bench/lib/fcgi_ka.py "$sock" "$n"
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}
a="$(count "$n1")"
b="$(count "$n2")"
awk -v a="$a" -v b="$b" -v n1="$n1" -v n2="$n2" -v app="$app$( [ "$forward" = 1 ] && echo ' (forwarded)')" 'BEGIN {
    printf "app %s: Ir(%d)=%d Ir(%d)=%d -> %.0f instructions per kept-alive request\n", app, n1, a, n2, b, (b - a) / (n2 - n1) }'
