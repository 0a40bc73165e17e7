#!/usr/bin/env bash
# The project's one test command: installs the web servers the integration tests drive
# (when missing), then runs format, lint, unit, integration and doc tests. Fails on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Programs the end-to-end tests run, and the Debian packages that provide them.
need_packages=()
have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]
}
have nginx || need_packages+=(nginx)
{ have apache2 && [ -f /usr/lib/apache2/modules/mod_proxy_fcgi.so ]; } || need_packages+=(apache2)
have spawn-fcgi || need_packages+=(spawn-fcgi)
have fcgiwrap || need_packages+=(fcgiwrap)
have curl || need_packages+=(curl)
have systemd-socket-activate || need_packages+=(systemd)
# ops (tests/ops): promtool checks the status page's OpenMetrics output.
have promtool || need_packages+=(prometheus)
# ops3 (tests/ops/gauges.rs, reload_cmd.rs): ss shows the listen backlog the status must
# match; python3 runs a SIGHUP-ignoring stand-in process.
have ss || need_packages+=(iproute2)
have python3 || need_packages+=(python3)
# fuzz stage: libfuzzer-sys compiles libFuzzer (C++) when cargo-fuzz builds the targets.
have g++ || need_packages+=(g++)
# fwd (fcgi: forwarding and `cgate call` tests): real FastCGI backends to forward to.
have php-fpm8.2 || need_packages+=(php8.2-fpm)
have go || need_packages+=(golang-go)
have gcc || need_packages+=(gcc)
[ -f /usr/include/fcgiapp.h ] || need_packages+=(libfcgi-dev)
# serve: the tests load the echo page in headless Chromium.
have chromium || need_packages+=(chromium)
# --- interop: the other FastCGI front-ends (tests/interop) and the real cgi-bin programs
# (tests/real_programs). Debian: caddy lighttpd h2o haproxy libapache2-mod-fcgid
# libfcgi-bin (cgi-fcgi) gitweb cgit libcgi-pm-perl git; PyPI: flup (below).
have caddy || need_packages+=(caddy)
have lighttpd || need_packages+=(lighttpd)
have h2o || need_packages+=(h2o)
have haproxy || need_packages+=(haproxy)
[ -f /usr/lib/apache2/modules/mod_fcgid.so ] || need_packages+=(libapache2-mod-fcgid)
have cgi-fcgi || need_packages+=(libfcgi-bin)
[ -f /usr/share/gitweb/gitweb.cgi ] || need_packages+=(gitweb)
[ -x /usr/lib/cgit/cgit.cgi ] || need_packages+=(cgit)
perl -MCGI -e 1 >/dev/null 2>&1 || need_packages+=(libcgi-pm-perl)
{ have git && [ -x /usr/lib/git-core/git-http-backend ]; } || need_packages+=(git)
have python3 || need_packages+=(python3 python3-pip)
# --- end interop
# iface: strace shows that CGI file bodies leave with sendfile (tests/interface_examples.rs).
have strace || need_packages+=(strace)

if [ "${#need_packages[@]}" -gt 0 ]; then
    echo "== installing ${need_packages[*]}"
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo_cmd=(sudo)
    fi
    # Keep the packages' own services from starting (port 80): tests run their own servers
    # with their own configs and ports. Debian's invoke-rc.d honours policy-rc.d exit 101.
    added_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${sudo_cmd[@]}" chmod 0755 /usr/sbin/policy-rc.d
        added_policy=yes
    fi
    remove_policy() {
        if [ -n "$added_policy" ]; then
            "${sudo_cmd[@]}" rm -f /usr/sbin/policy-rc.d
        fi
    }
    trap remove_policy EXIT
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "${need_packages[@]}" </dev/null
    remove_policy
    trap - EXIT
    # Where a service manager did start them anyway, stop them: nothing of ours uses them.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        for svc in nginx apache2 fcgiwrap caddy lighttpd h2o haproxy; do
            "${sudo_cmd[@]}" systemctl stop "$svc" "$svc.socket" >/dev/null 2>&1 || true
        done
    fi
fi

# --- interop: flup's FastCGI client (tests/interop/flup.rs), from PyPI.
if ! python3 -c 'import flup.client.fcgi_app' >/dev/null 2>&1; then
    echo "== installing flup (pip)"
    python3 -m pip install flup || python3 -m pip install --break-system-packages flup
fi
# --- end interop

# rustfmt and clippy (a minimal rustup profile has neither).
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    echo "== adding rustfmt and clippy"
    rustup component add rustfmt clippy
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "== cargo test --doc"
cargo test --doc 2>&1 | tee "$log"
echo "== cargo test --all-targets"
cargo test --all-targets 2>&1 | tee -a "$log"
# One closing line for the whole run, summed over every test binary and the doc tests.
grep -h '^test result:' "$log" | awk '
    { for (i = 1; i < NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i } }
    END { printf "total: %d passed, %d failed\n", p, f; if (p == 0) exit 1 }'

# Fuzzing (never skipped): every cargo-fuzz target for a short bounded time (15 s each,
# about 3 minutes with the build), on stable; scripts/fuzz.sh installs cargo-fuzz if missing.
echo "== fuzz (${CGATE_FUZZ_SECONDS:-15} s a target)"
bash scripts/fuzz.sh "${CGATE_FUZZ_SECONDS:-15}"
