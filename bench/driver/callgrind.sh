#!/usr/bin/env bash
# callgrind.sh: instructions per in-process `hello` request, two revisions side by side (the
# interface's hot path without the server: environ, driver, Response, head validation).
#
#   bash bench/driver/callgrind.sh REV_BEFORE REV_AFTER [N]
#
# For each revision: exports it to a temp dir, builds a release driver loop (hello.rs: N
# in-process requests through run_app over a CgiSink) and counts its instructions with
# valgrind --tool=callgrind. The FastCGI keep-alive figure is bench/callgrind.sh. The temp
# dir is removed at exit.
set -euo pipefail
before=${1:?REV_BEFORE}; after=${2:?REV_AFTER}; n=${3:-100000}
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for rev in "$before" "$after"; do
  src="$work/src-$rev"; mkdir -p "$src" "$work/drv-$rev/src"
  git -C "$root" archive "$rev" | tar -x -C "$src"
  cp "$here/hello.rs" "$work/drv-$rev/src/main.rs"
  cat > "$work/drv-$rev/Cargo.toml" <<TOML
[package]
name = "drv"
version = "0.1.0"
edition = "2024"
[dependencies]
cgate = { path = "$src" }
[profile.release]
lto = "fat"
codegen-units = 1
TOML
  (cd "$work/drv-$rev" && CARGO_TARGET_DIR="$work/t-$rev" cargo build -q --release)
  loop=$(valgrind --tool=callgrind --callgrind-out-file="$work/loop-$rev.out" \
    "$work/t-$rev/release/drv" "$n" 2>&1 | sed -n 's/.*Collected : //p')
  echo "$rev driver-loop $((loop / n)) instructions/request"
done
