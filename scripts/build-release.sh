#!/usr/bin/env bash
# Builds the deployment binary: optimised and statically linked against glibc, so a CGI run
# skips the dynamic loader (about half the start-up cost of a dynamically linked C hello).
# Prints the path of the binary. Plain `cargo build --release` also works (dynamic).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
host="$(rustc -vV | sed -n 's/^host: //p')"
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --target "$host" --bin cgate >&2
echo "$PWD/target/$host/release/cgate"
