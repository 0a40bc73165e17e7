#!/usr/bin/python3
"""Print the table and the targets block of one bench/run.sh results directory.

    report.py RESULTS_DIR

RESULTS_DIR holds run.env, round<R>/<row>/ (one wrk row), round<R>/cgi-run/
(hyperfine) and post-1g/ (the 1 GiB POST). Every figure in the table is the median
over rounds; every ratio is taken within one round first (a row against nginx-static
or against cgate's row of the same group in that round), then its median is shown.
"""
import json
import os
import re
import statistics
import sys

# cgate's targets: (peer row, least cgate req/s / peer req/s) for the throughput ratios.
KA_RATIOS = [("libfcgi-ka", 1.25), ("outer-cgi-ka", 1.45), ("go-fcgi-ka", 2.5)]
PER_REQUEST_RATIOS = [("libfcgi", 1.15)]
CGI_DIR_RATIO = ("fcgiwrap", 1.4)
P99_MAX_MS = 3.0
CPU_MAX_US = 10.0
RSS_MAX_MIB = 6.0
CGI_RUN_MAX_RATIO = 1.2
POST_GROWTH_MAX_MIB = 16.0
# forwarding (fwd): nginx -> cgate fcgi: -> cgate hello against nginx -> cgate hello, the
# forwarder's own CPU, and `cgate call --repeat` against cgate vs against libfcgi.
FWD_MIN_RATIO = 0.6
FWD_CPU_MAX_US = 15.0
CALL_MIN_RATIO = 1.5
CALL_TARGET_CONC = 8  # the backend saturated by 8 kept connections (libfcgi: 8 processes); --concurrency 1 is a round-trip latency, shown beside it
SERVE_MIN_X_STATIC = 0.5  # cgate serve straight from wrk, against nginx's own reply


def read_kv(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                key, sep, value = line.rstrip("\n").partition("=")
                if sep:
                    out[key] = value
    except OSError:
        pass
    return out


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_status(path):
    try:
        with open(os.path.join(path, "status")) as f:
            return f.read().strip() or "FAILED: empty status"
    except OSError:
        return "FAILED: no status (interrupted?)"


def load_row(path):
    row = read_kv(os.path.join(path, "meta"))
    row["status"] = read_status(path)
    if row["status"] != "OK":
        return row
    with open(os.path.join(path, "wrk.txt")) as f:
        m = re.search(r"^WRK_RESULT (.*)$", f.read(), re.M)
    wrk = {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    row["requests"] = wrk["requests"]
    row["rps"] = wrk["requests"] / (wrk["duration_us"] / 1e6)
    row["p50_ms"] = wrk["p50_us"] / 1000
    row["p99_ms"] = wrk["p99_us"] / 1000
    row["errors"] = int(sum(v for k, v in wrk.items() if k.startswith("err_")))
    before = read_json(os.path.join(path, "cpu-before.json"))
    after = read_json(os.path.join(path, "cpu-after.json"))
    if before and after and "backend" in after["groups"] and row["requests"]:
        ticks = after["groups"]["backend"]["ticks"] - before["groups"]["backend"]["ticks"]
        row["backend_us"] = 1e6 * ticks / after["hz"] / row["requests"]
    if before and after and "front" in after["groups"] and row["requests"]:
        ticks = after["groups"]["front"]["ticks"] - before["groups"]["front"]["ticks"]
        row["front_us"] = 1e6 * ticks / after["hz"] / row["requests"]
    mem = read_json(os.path.join(path, "mem.json"))
    if mem:
        row["rss_mib"] = mem["rss_kib"] / 1024
    return row


def load(results):
    """{round: {row name: row}} in run order, with x_static filled in."""
    rounds = {}
    for name in sorted(os.listdir(results)):
        m = re.fullmatch(r"round(\d+)", name)
        if not m:
            continue
        rows = {}
        base = os.path.join(results, name)
        subs = [s for s in os.listdir(base) if os.path.exists(os.path.join(base, s, "meta"))]
        for sub in sorted(subs, key=lambda s: int(read_kv(os.path.join(base, s, "meta")).get("order", 0))):
            rows[sub] = load_row(os.path.join(base, sub))
        statics = [r["rps"] for r in rows.values() if r.get("kind") == "static" and r["status"] == "OK"]
        ref = statistics.mean(statics) if statics else None
        for r in rows.values():
            if ref and r["status"] == "OK":
                r["x_static"] = r["rps"] / ref
        rounds[int(m.group(1))] = rows
    return rounds


def cgate_row_of(rows, group):
    for name, r in rows.items():
        if r.get("group") == group and name.startswith("cgate"):
            return r
    return None


def summarize(rounds):
    """{row name: medians over rounds} in run order."""
    names = []
    for rows in rounds.values():
        names += [n for n in rows if n not in names]
    out = {}
    for name in names:
        present = [(rows[name], rows) for rows in rounds.values() if name in rows]
        ok = [(r, rows) for r, rows in present if r["status"] == "OK"]
        first = present[0][0]
        s = {"kind": first.get("kind"), "group": first.get("group", ""), "note": first.get("note", ""),
             "ok": len(ok), "runs": len(present),
             "status": next((r["status"] for r, _ in present if r["status"] != "OK"), "OK")}
        for key in ("rps", "x_static", "p50_ms", "p99_ms", "backend_us", "rss_mib"):
            vals = [r[key] for r, _ in ok if key in r]
            s[key] = statistics.median(vals) if vals else None
        s["errors"] = sum(r.get("errors", 0) for r, _ in ok)
        ratios = []
        if s["group"] and not name.startswith("cgate"):
            for r, rows in ok:
                c = cgate_row_of(rows, s["group"])
                if c and c["status"] == "OK" and r["rps"]:
                    ratios.append(c["rps"] / r["rps"])
        s["cgate_x"] = statistics.median(ratios) if ratios else None
        out[name] = s
    return out


def fmt(value, spec):
    return "" if value is None else format(value, spec)


def table(header, rows, align):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) if a == "l" else str(c).rjust(w)
                                 for c, w, a in zip(cells, widths, align)) + " |"

    sep = "|" + "|".join("-" * (w + 1) + ":" if a == "r" else "-" * (w + 2) for w, a in zip(widths, align)) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def cgi_run(results):
    """Median over rounds of hyperfine's mean per program, and of the per-round ratio."""
    means = {"c-hello-cgi": [], "cgate-cgi-hello": []}
    ratios, failures = [], []
    for name in sorted(os.listdir(results)):
        path = os.path.join(results, name, "cgi-run")
        if not re.fullmatch(r"round\d+", name) or not os.path.isdir(path):
            continue
        status = read_status(path)
        data = read_json(os.path.join(path, "hyperfine.json"))
        if status != "OK" or not data:
            failures.append(status)
            continue
        got = {r["command"]: r["mean"] for r in data["results"]}
        for k in means:
            means[k].append(got[k])
        ratios.append(got["cgate-cgi-hello"] / got["c-hello-cgi"])
    if not ratios:
        return {"failures": failures} if failures else None
    return {"c_ms": 1e3 * statistics.median(means["c-hello-cgi"]),
            "cgate_ms": 1e3 * statistics.median(means["cgate-cgi-hello"]),
            "ratio": statistics.median(ratios), "rounds": len(ratios), "failures": failures}


def post(results):
    path = os.path.join(results, "post-1g")
    if not os.path.isdir(path):
        return None
    p = read_json(os.path.join(path, "post.json")) or {}
    before = read_json(os.path.join(path, "hwm-before.json"))
    after = read_json(os.path.join(path, "hwm-after.json"))
    p["status_line"] = read_status(path)
    if before and after:
        p["hwm_before_mib"] = before["max_hwm_kib"] / 1024
        p["hwm_after_mib"] = after["max_hwm_kib"] / 1024
        p["growth_mib"] = p["hwm_after_mib"] - p["hwm_before_mib"]
    p["sha_ok"] = (p.get("status") == 200 and p.get("got_length") == p.get("length")
                   and p.get("got_sha256") is not None and p.get("got_sha256") == p.get("sha256"))
    return p


def fwd(results):
    """Forwarding figures: per-round fwd/direct req/s ratio, the forwarder's CPU, and the
    `cgate call --repeat` req/s against cgate and libfcgi (medians over rounds)."""
    ratios, front_us, call = [], [], {}
    floor_ratios, floor_us = [], []
    failures = []
    for n, rows in sorted(load(results).items()):
        f, d, fl = rows.get("cgate-fwd-ka"), rows.get("cgate-ka"), rows.get("floor-fwd-ka")
        if f and d and f["status"] == "OK" and d["status"] == "OK":
            ratios.append(f["rps"] / d["rps"])
            if "front_us" in f:
                front_us.append(f["front_us"])
        if fl and d and fl["status"] == "OK" and d["status"] == "OK":
            floor_ratios.append(fl["rps"] / d["rps"])
            if "front_us" in fl:
                floor_us.append(fl["front_us"])
        path = os.path.join(results, f"round{n}", "call-repeat")
        if os.path.isdir(path):
            status = read_status(path)
            if status != "OK":
                failures.append(status)
                continue
            for name in sorted(os.listdir(path)):
                m = re.fullmatch(r"(cgate|libfcgi|floor)-c(\d+)(?:-(cross|same))?\.txt", name)
                if not m:
                    continue
                with open(os.path.join(path, name)) as fh:
                    rate = re.search(r"([0-9.]+) req/s", fh.read())
                key = (int(m.group(2)), m.group(3) or "", m.group(1))
                call.setdefault(key, []).append(float(rate.group(1)))
    med = lambda v: statistics.median(v) if v else None
    ratio = lambda a, b: med([x / y for x, y in zip(a, b) if y])
    per_conc, pinned = {}, {}
    for conc, place in sorted({(c, p) for c, p, _ in call}):
        c, l, f = (call.get((conc, place, peer), []) for peer in ("cgate", "libfcgi", "floor"))
        one = {"cgate": med(c), "libfcgi": med(l), "floor": med(f),
               "ratio": ratio(c, l), "floor_ratio": ratio(f, l)}
        if place:
            pinned[place] = one
        else:
            per_conc[conc] = one
    return {"ratio": med(ratios), "front_us": med(front_us), "call": per_conc, "pinned": pinned,
            "floor_ratio": med(floor_ratios), "floor_us": med(floor_us), "failures": failures}


def fwd_targets(f):
    out = []
    if f["ratio"] is None:
        out.append("(8) NOT MEASURED cgate-fwd-ka / cgate-ka req/s: a row failed or was not run")
    else:
        out.append(f"(8) {'MET   ' if f['ratio'] >= FWD_MIN_RATIO else 'MISSED'} cgate-fwd-ka / cgate-ka req/s = "
                   f"{f['ratio']:.2f}x (target >= {FWD_MIN_RATIO}x)")
    if f["front_us"] is None:
        out.append("(9) NOT MEASURED forwarding CPU: cgate-fwd-ka failed or was not run")
    else:
        out.append(f"(9) {'MET   ' if f['front_us'] <= FWD_CPU_MAX_US else 'MISSED'} forwarding CPU (the fcgi: "
                   f"process alone) {f['front_us']:.1f} us/req (target <= {FWD_CPU_MAX_US} us)")
    if f["floor_ratio"] is not None and f["floor_us"] is not None:
        out.append(f"(  ) (info) floor-fwd-ka (an epoll byte copier in front of the same hello, the least a "
                   f"forwarder on an event loop does): {f['floor_ratio']:.2f}x cgate-ka, its CPU "
                   f"{f['floor_us']:.1f} us/req")
    for conc, c in f["call"].items():
        if c["ratio"] is None:
            continue
        label, target = ("10", f" (target >= {CALL_MIN_RATIO}x)") if conc == CALL_TARGET_CONC else ("  ", "")
        verdict = ("MET    " if c["ratio"] >= CALL_MIN_RATIO else "MISSED ") if target else "(info) "
        out.append(f"({label}) {verdict}cgate call --repeat --concurrency {conc}: cgate {c['cgate']:.0f} req/s / "
                   f"libfcgi ({conc} processes) {c['libfcgi']:.0f} req/s = {c['ratio']:.2f}x{target}")
        if c["floor_ratio"] is not None:
            out.append(f"(  ) (info) the same client against floor (a C responder that only answers): "
                       f"{c['floor']:.0f} req/s = {c['floor_ratio']:.2f}x libfcgi (unpinned: where the scheduler "
                       f"puts client and backend decides a round trip, see the pinned runs)")
    for place, c in f["pinned"].items():
        if c["ratio"] is None or c["floor_ratio"] is None:
            continue
        where = {"cross": "client on CPU 0, backend on CPU 1", "same": "client and backend on CPU 0"}[place]
        out.append(f"(  ) (info) --concurrency 1 pinned ({where}): cgate {c['cgate']:.0f} / libfcgi "
                   f"{c['libfcgi']:.0f} / floor {c['floor']:.0f} req/s: cgate {c['ratio']:.2f}x, "
                   f"floor {c['floor_ratio']:.2f}x libfcgi (about the most any backend reaches here)")
    if CALL_TARGET_CONC not in f["call"] or f["call"][CALL_TARGET_CONC]["ratio"] is None:
        why = "; ".join(f["failures"]) or "not run"
        out.append(f"(10) NOT MEASURED cgate call --repeat: {why}")
    return out


def targets(rows, cgi, big):
    lines = []

    def check(label, ok, text):
        lines.append(f"({label}) {'MET   ' if ok else 'MISSED'} {text}")

    def unknown(label, text):
        lines.append(f"({label}) NOT MEASURED {text}")

    def state(name):
        r = rows.get(name)
        return "not run" if not r else "failed" if r["ok"] == 0 else "ok"

    def ratio_check(label, peer, least):
        r = rows.get(peer)
        if not r or r["cgate_x"] is None:
            mine = next((n for n, x in rows.items() if n.startswith("cgate") and r and x["group"] == r["group"]), None)
            why = f"{peer} {state(peer)}" if state(peer) != "ok" else f"{mine or 'its cgate row'} {state(mine or '')}"
            unknown(label, f"cgate / {peer} req/s: {why}")
        else:
            check(label, r["cgate_x"] >= least, f"cgate / {peer} req/s = {r['cgate_x']:.2f}x (target >= {least}x)")

    for peer, least in KA_RATIOS:
        ratio_check("1", peer, least)
    for peer, least in PER_REQUEST_RATIOS:
        ratio_check("2", peer, least)
    cgate_rows = [(n, rows.get(n)) for n in ("cgate-ka", "cgate")]
    have = [(n, r) for n, r in cgate_rows if r and r["p99_ms"] is not None]
    if len(have) < 2:
        unknown("3", f"cgate p99: cgate-ka {state('cgate-ka')}, cgate {state('cgate')}")
    else:
        check("3", all(r["p99_ms"] <= P99_MAX_MS for _, r in have),
              ", ".join(f"{n} p99 {r['p99_ms']:.2f} ms" for n, r in have) + f" (target <= {P99_MAX_MS} ms)")
    have = [(n, r) for n, r in cgate_rows if r and r["backend_us"] is not None and r["rss_mib"] is not None]
    if len(have) < 2:
        unknown("4", f"cgate CPU and RSS: cgate-ka {state('cgate-ka')}, cgate {state('cgate')}")
    else:
        check("4", all(r["backend_us"] <= CPU_MAX_US and r["rss_mib"] <= RSS_MAX_MIB for _, r in have),
              ", ".join(f"{n} {r['backend_us']:.1f} us/req RSS {r['rss_mib']:.1f} MiB" for n, r in have)
              + f" (target <= {CPU_MAX_US} us, <= {RSS_MAX_MIB} MiB)")
    ratio_check("5", *CGI_DIR_RATIO)
    if not cgi or "ratio" not in cgi:
        unknown("6", "cgate cgi run: " + ("; ".join(cgi["failures"]) if cgi else "not run"))
    else:
        check("6", cgi["ratio"] <= CGI_RUN_MAX_RATIO,
              f"cgate cgi --app hello {cgi['cgate_ms']:.3f} ms vs C hello CGI {cgi['c_ms']:.3f} ms = "
              f"{cgi['ratio']:.2f}x (target <= {CGI_RUN_MAX_RATIO}x)")
    if not big:
        unknown("7", "1 GiB POST: not run")
    elif "growth_mib" not in big or big.get("got_sha256") is None:
        check("7", False, f"1 GiB POST: {big['status_line']}")
    else:
        check("7", big["sha_ok"] and big["growth_mib"] <= POST_GROWTH_MAX_MIB,
              f"1 GiB POST sha256 {'right' if big['sha_ok'] else 'WRONG'}, cgate peak RSS growth "
              f"{big['growth_mib']:.1f} MiB (target <= {POST_GROWTH_MAX_MIB} MiB)")
    r = rows.get("cgate-serve")
    if not r or r.get("x_static") is None:
        unknown("8", f"cgate serve req/s: cgate-serve {state('cgate-serve')}")
    else:
        check("8", r["x_static"] >= SERVE_MIN_X_STATIC,
              f"cgate serve / nginx static req/s = {r['x_static']:.2f}x (target >= {SERVE_MIN_X_STATIC}x)")
    return lines


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    results = sys.argv[1]
    env = read_kv(os.path.join(results, "run.env"))
    rows = summarize(load(results))
    cgi, big = cgi_run(results), post(results)

    print(f"\n## cgate bench {env.get('date', '')}\n")
    print(f"- host `{env.get('host', '')}`, {env.get('ncpu', '?')} CPUs, load {env.get('loadavg_at_start', '?')} at start, "
          f"{env.get('loadavg_at_end', '?')} at end, "
          f"nginx {env.get('nginx', '?')}")
    print(f"- wrk {env.get('wrk', '')}; rounds {env.get('rounds', '?')} (medians); `{env.get('command', '')}`")
    print("- x static: req/s / nginx's own `return 200` req/s of the same round (mean of its 3 rows);"
          " cgate x: cgate's req/s / this row's in the same round (`-ka`: fastcgi_keep_conn + upstream keepalive)")
    print("- backend us/req: CPU time of the backend's process tree per request; RSS: summed over it, 1 s after the run\n")
    header = ["row", "req/s", "x static", "p50 ms", "p99 ms", "errors", "backend us/req", "RSS MiB", "cgate x", "backend"]
    out = []
    for name, r in rows.items():
        if r["ok"] == 0:
            out.append([name, "FAILED"] + [""] * 7 + [r["note"]])
            continue
        out.append([name, fmt(r["rps"], ".0f"), fmt(r["x_static"], ".3f"), fmt(r["p50_ms"], ".2f"),
                    fmt(r["p99_ms"], ".2f"), str(r["errors"]), fmt(r["backend_us"], ".1f"),
                    fmt(r["rss_mib"], ".1f"), fmt(r["cgate_x"], ".2f"),
                    r["note"] + ("" if r["ok"] == r["runs"] else f" ({r['ok']}/{r['runs']} rounds ok)")])
    print(table(header, out, "lrrrrrrrrl"))
    print()
    for n, round_rows in sorted(load(results).items()):
        statics = [r["rps"] for r in round_rows.values() if r.get("kind") == "static" and r["status"] == "OK"]
        if statics:
            ref = statistics.mean(statics)
            print(f"- round {n}: static reference {ref:.0f} req/s, its rows {min(statics):.0f}..{max(statics):.0f} "
                  f"(drift {100 * (max(statics) - min(statics)) / ref:.0f}%: other load on the machine shows here)")
    for name, r in rows.items():
        if r["status"] != "OK":
            print(f"- {name}: {r['status']}")
    if cgi and "ratio" in cgi:
        print(f"- one CGI run (hyperfine -N, {env.get('hyperfine', '')}, median of {cgi['rounds']} rounds): "
              f"C hello CGI {cgi['c_ms']:.3f} ms, `cgate cgi --app hello` {cgi['cgate_ms']:.3f} ms, "
              f"ratio {cgi['ratio']:.2f}")
    elif cgi:
        print(f"- one CGI run: {'; '.join(cgi['failures'])}")
    if big:
        if "growth_mib" in big and big.get("sha256"):
            rate = big["length"] / big["seconds"] / 2**20 if big.get("seconds") else 0
            print(f"- {big['length']} bytes POSTed through nginx to cgate's echo app in {big['seconds']:.1f} s "
                  f"({rate:.0f} MiB/s): sha256 sent {big['sha256']}, returned {big.get('got_sha256')} "
                  f"({'MATCH' if big['sha_ok'] else 'MISMATCH'}); cgate VmHWM {big['hwm_before_mib']:.1f} -> "
                  f"{big['hwm_after_mib']:.1f} MiB, peak RSS growth {big['growth_mib']:.1f} MiB")
        else:
            print(f"- 1 GiB POST: {big['status_line']}")
    print("\n### targets\n")
    print("\n".join(targets(rows, cgi, big)))
    print("\n".join(fwd_targets(fwd(results))))
    print()


if __name__ == "__main__":
    main()
