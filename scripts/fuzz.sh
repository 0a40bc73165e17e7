#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 15) from its seed corpus in
# fuzz/corpus/<target>/, on the stable toolchain (RUSTC_BOOTSTRAP=1 lets it take the
# sanitizer flags). New inputs go to a scratch directory, so the committed seeds stay as
# they are; a crash is saved under fuzz/artifacts/<target>/ and fails the run.
#   bash scripts/fuzz.sh            # the short stage of scripts/test.sh
#   bash scripts/fuzz.sh 1800       # the longer run: 30 minutes a target
#   bash scripts/fuzz.sh 60 pairs   # one target
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-15}"
shift || true
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
cargo fmt --manifest-path fuzz/Cargo.toml --check
echo "== cargo fuzz build"
cargo fuzz build
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
    # The socket target's server threads outlive each input and the process (replacement
    # threads the pool starts are never joined), so leak checks, per input or at exit, see
    # their bookkeeping; memory there is bounded by the RSS limit instead.
    extra=()
    asan="${ASAN_OPTIONS:-}"
    if [ "$t" = responder_socket ]; then
        extra=(-detect_leaks=0)
        asan="detect_leaks=0${asan:+:$asan}"
    fi
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    if ASAN_OPTIONS="$asan" cargo fuzz run "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=1024 -timeout=20 \
        "${extra[@]}" >"$log" 2>&1; then
        echo "fuzz $t: $(grep -E '^Done [0-9]+ runs' "$log" | tail -1)"
    else
        echo "fuzz $t: FAILED"
        grep -E -A12 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|Failing input' "$log" |
            head -40
        failed+=("$t")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]} (inputs under fuzz/artifacts/)"
    exit 1
fi
