#!/usr/bin/env bash
# Fault and load figures: builds the release binary, runs scripts/reliability.py (malformed
# connections, idle connections, SIGTERM under load through nginx, SIGKILL with scripts
# running, a 1 GiB upload, a soak at 80% of peak) and writes docs/RELIABILITY.md.
# Not part of the test suite: it takes minutes and measures this machine.
#   bash scripts/reliability.sh          # the documented run: a 600 s soak
#   bash scripts/reliability.sh 60       # a quick check: a 60 s soak
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

soak="${1:-600}"
for p in nginx wrk python3; do
    command -v "$p" >/dev/null || { echo "reliability: $p is missing (scripts/test.sh installs nginx)" >&2; exit 1; }
done
cargo build --release --bin cgate
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
python3 scripts/reliability.py target/release/cgate "$soak" >"$out"
mv "$out" docs/RELIABILITY.md
trap - EXIT
echo "reliability: wrote docs/RELIABILITY.md"
