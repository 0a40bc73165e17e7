#!/usr/bin/env bash
# setup.sh: install what cgate's benchmark needs and build its peer servers.
#
#   bash bench/setup.sh
#
# 1. apt-installs the packages that are missing (nginx, wrk, hyperfine, golang-go,
#    libfcgi-dev, php-fpm, fcgiwrap, spawn-fcgi, python3, gcc, curl) without
#    starting any of them as a system service.
# 2. builds the peers into bench/build/ (git-ignored), each only when out of date:
#    C (gcc), Go (go build, standard library only), Rust (cargo, the workspace in
#    bench/peers/rust with its own Cargo.lock).
# 3. checks that the C hello CGI answers.
#
# Safe to run again. Writes only bench/build/, /tmp/cgate-bench-go/ (Go's build
# cache) and, when a package is missing, the system (needs root then).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS="$BENCH/peers"
BUILD="$BENCH/build"

die() { echo "setup.sh: error: $*" >&2; exit 1; }
log() { echo "setup.sh: $*" >&2; }

# --- 1. packages ---------------------------------------------------------------
PACKAGES=(nginx wrk hyperfine golang-go gcc libc6-dev libfcgi-dev php-fpm fcgiwrap
          spawn-fcgi python3 curl)
missing=()
for p in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
  [[ $status == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $EUID -eq 0 ]] || die "missing packages (${missing[*]}); run as root to install them"
  log "installing: ${missing[*]}"
  # The bench starts its own nginx / php-fpm / fcgiwrap: keep apt from starting the
  # system services (policy-rc.d exiting 101 means "not allowed").
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- 2. peers ------------------------------------------------------------------
mkdir -p "$BUILD"

cc_peer() {  # cc_peer SRC OUT [LIBS...]: compile when SRC is newer than OUT
  local src=$1 out=$2
  shift 2
  if [[ ! -x $out || $src -nt $out ]]; then
    log "cc $src"
    gcc -O2 -Wall -Wextra -o "$out" "$src" "$@"
  fi
}
cc_peer "$PEERS/c/hello_cgi.c"  "$BUILD/hello-cgi"
cc_peer "$PEERS/c/hello_fcgi.c" "$BUILD/hello-fcgi" -lfcgi
cc_peer "$PEERS/c/bytes_fcgi.c" "$BUILD/bytes-fcgi" -lfcgi
cc_peer "$PEERS/c/floor_fcgi.c" "$BUILD/floor-fcgi"
cc_peer "$PEERS/c/floor_proxy.c" "$BUILD/floor-proxy"

# Go: standard library only, no network; go's own cache decides what to rebuild.
export GOCACHE=/tmp/cgate-bench-go/cache GOPATH=/tmp/cgate-bench-go/path GOPROXY=off
(cd "$PEERS/go" && go build -trimpath -o "$BUILD/go-fcgi-hello" ./fcgi-hello)

# Rust: versions pinned by peers/rust/Cargo.lock; crates.io is reached on the first
# build only. cargo decides what to rebuild.
command -v cargo >/dev/null || die "cargo not found: the Rust peers need a Rust toolchain"
cargo build -q --release --locked --manifest-path "$PEERS/rust/Cargo.toml" --target-dir "$BUILD/rust"
for p in tokio-fastcgi outer-cgi; do
  install -m 0755 "$BUILD/rust/release/rust-$p-hello" "$BUILD/rust-$p-hello"
done

# --- 3. smoke test -----------------------------------------------------------------
out="$(env -i GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET "$BUILD/hello-cgi" </dev/null)"
[[ $out == *"Hello, world!"* ]] || die "$BUILD/hello-cgi printed no hello: $out"
log "peers ready in $BUILD"
