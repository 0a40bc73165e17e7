"""Fault scenarios: malformed connections, idle connections, SIGTERM under load through nginx,
SIGKILL with CGI scripts running."""
import os
import random
import re
import signal
import socket
import tempfile
import threading
import time

from .common import (ABORT, BEGIN, HELLO, PARAMS, STDIN, Cgate, Nginx, begin, clean_request,
                     connect, cpu_seconds, fds, get_request, pair, record, status_kib, threads,
                     wrk)


def malformed_inputs(n):
    rnd = random.Random(11)
    kinds = [
        lambda: bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 200))),
        lambda: record(BEGIN, 1, b"\0\1\0\0\0\0\0\0", version=2),
        lambda: begin()[:5],
        lambda: begin() + record(PARAMS, 1, b"\x7f")[:9],
        lambda: begin() + record(PARAMS, 1, b"\xff\xff\xff\xff\x01") + record(PARAMS, 1),
        lambda: begin() + record(STDIN, 1, b"x"),
        lambda: begin() + begin(),
        lambda: record(rnd.randint(11, 255), 0, b"12345678") * 50,
        lambda: begin(role=9) + get_request(2),
        lambda: begin(rid=0),
        lambda: begin() + record(PARAMS, 1) + record(PARAMS, 1, pair(b"A", b"b")),
        lambda: record(PARAMS, 1, b"\x04\x04NAMEVALU") + record(ABORT, 1),
    ]
    return [kinds[i % len(kinds)]() for i in range(n)]


def row_malformed(binary, work):
    cg = Cgate(binary, work, "hello")
    rss0, fd0 = status_kib(cg.pid, "VmRSS"), fds(cg.pid)
    inputs = malformed_inputs(10_000)
    closed, held = [0], [0]
    lock = threading.Lock()

    def worker(chunk):
        for data in chunk:
            s = connect(cg.sock, 10)
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
                ok = True
            except socket.timeout:
                ok = False
            except OSError:
                ok = True
            s.close()
            with lock:
                if ok:
                    closed[0] += 1
                else:
                    held[0] += 1

    start = time.time()
    ts = [threading.Thread(target=worker, args=(inputs[i::8],)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.time() - start
    clean = clean_request(cg.sock) == HELLO
    rss1, fd1 = status_kib(cg.pid, "VmRSS"), fds(cg.pid)
    alive = cg.proc.poll() is None
    cg.stop()
    held_ok = clean and alive and held[0] == 0 and fd1 <= fd0 + 2
    return ("10,000 malformed connections (12 kinds: garbage, bad version, cut headers, "
            "oversized pair lengths, STDIN before PARAMS, duplicate BEGIN, unknown types, "
            "bad role, id 0, PARAMS after end, records before BEGIN), 8 clients, each "
            "half-closed after its bytes; then one clean GET",
            f"{'yes' if held_ok else 'NO'}: every connection closed by cgate "
            f"({closed[0]} closed, {held[0]} held past 10 s); clean request answered with "
            f"the exact hello bytes: {'yes' if clean else 'NO'}; process alive: "
            f"{'yes' if alive else 'NO'}",
            f"{took:.1f} s ({10_000 / took:.0f} conn/s); RSS {rss0} -> {rss1} KiB; "
            f"fds {fd0} -> {fd1}")


def closed_by_peer(sock):
    """True when the peer has closed `sock` (a read would return EOF at once)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def row_idle(binary, work):
    cg = Cgate(binary, work, "hello", ["--max-conns", "1100"])
    ng = Nginx(work, cg.sock)
    wrk(ng.port, 2, 32)
    # Five 3 s runs each, interleaved. Throughput on a shared machine moves with the other
    # work on it; cgate's CPU time per request much less, so that is what must hold.
    def measured():
        cpu0 = cpu_seconds(cg.pid)
        rps, total, bad, err = wrk(ng.port, 3, 32)
        return rps, (cpu_seconds(cg.pid) - cpu0) * 1e6 / max(total, 1), bad, err

    base, loaded, idle = [], [], []
    for _ in range(5):
        base.append(measured())
        idle = [connect(cg.sock) for _ in range(1000)]
        time.sleep(0.5)
        rss, fd, thr = status_kib(cg.pid, "VmRSS"), fds(cg.pid), threads(cg.pid)
        loaded.append(measured())
        if len(loaded) < 5:
            for s in idle:
                s.close()
            time.sleep(0.5)
    dropped = sum(1 for s in idle if closed_by_peer(s))
    alive = cg.proc.poll() is None
    for s in idle:
        s.close()
    ng.stop()
    cg.stop()
    before, after = max(r[0] for r in base), max(r[0] for r in loaded)
    cpu_before = sum(r[1] for r in base) / len(base)
    cpu_after = sum(r[1] for r in loaded) / len(loaded)
    spread = " / ".join(f"{min(r[1] for r in rs):.1f}-{max(r[1] for r in rs):.1f}"
                        for rs in (base, loaded))
    bad0, err0 = sum(r[2] for r in base), sum(r[3] for r in base)
    bad1, err1 = sum(r[2] for r in loaded), sum(r[3] for r in loaded)
    ratio = after / before
    cpu_ratio = cpu_after / cpu_before
    held = cpu_ratio <= 1.1 and bad0 + bad1 + err0 + err1 == 0 and alive
    return ("1,000 idle FastCGI connections (connected, nothing sent) held open while "
            "wrk -t2 -c32 runs through nginx (keepalive upstream) to `hello`; the same "
            "runs without them (five 3 s runs each, interleaved; mean CPU time)",
            f"{'yes' if held else 'NO'}: cgate CPU per request {cpu_ratio:.0%} of the runs "
            f"without them, throughput (best run) {ratio:.0%}; "
            f"{bad0 + bad1} non-2xx, {err0 + err1} socket errors; cgate alive: "
            f"{'yes' if alive else 'NO'}; idle connections cgate had closed by the end: "
            f"{dropped} of 1,000",
            f"{before:.0f} -> {after:.0f} req/s, {cpu_before:.2f} -> {cpu_after:.2f} us CPU "
            f"per request (run ranges {spread}); with 1,000 idle: RSS {rss} KiB, "
            f"{fd} fds, {thr} threads")


def row_sigterm(binary, work):
    cg = Cgate(binary, work, "bytes:16384", ["--shutdown-timeout", "10"])
    ng = Nginx(work, cg.sock)
    result = {}

    def load():
        result["wrk"] = wrk(ng.port, 6, 32)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(2.5)
    sent = time.time()
    cg.proc.send_signal(signal.SIGTERM)
    code = cg.proc.wait(30)
    exit_s = time.time() - sent
    t.join()
    log = ng.error_log()
    ng.stop()
    cg.log.close()
    kinds = nginx_errors(log)
    refused = sum(n for k, n in kinds.items() if k.startswith("connect() "))
    # A write that fails on a kept-alive connection cgate closed as idle never reached
    # cgate (nginx retries it on a new connection, which is refused). A request is lost
    # when cgate had it and its answer broke or never came.
    unsent = sum(n for k, n in kinds.items() if "while sending request" in k)
    lost = sum(n for k, n in kinds.items()
               if not k.startswith("connect() ") and "while sending request" not in k)
    detail = "; ".join(f"{n} x {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    statuses = ng.statuses()
    ok = statuses.get("200", 0)
    held = lost == 0 and code == 0
    return ("wrk -t2 -c32 for 6 s through nginx (keepalive upstream) to `bytes:16384`; "
            "SIGTERM to cgate 2.5 s in (`--shutdown-timeout 10`)",
            f"{'yes' if held else 'NO'}: {lost} requests lost on connections cgate had "
            f"received (nginx: upstream closed, reset or timed out while reading the "
            f"answer); cgate exit code {code}; after its listener closed, nginx's connects "
            f"were refused ({refused}, answered 502: never accepted), {unsent} of them "
            f"retries of requests nginx wrote on kept-alive connections after cgate had "
            f"stopped reading them (the write failed: never received). nginx's errors: "
            f"{detail}",
            f"{ok} x 200 before and during shutdown, {statuses.get('502', 0)} x 502 after; "
            f"cgate exited {exit_s:.2f} s after SIGTERM")


def nginx_errors(log):
    """Counts nginx's upstream error messages by kind (paths, clients and ids left out)."""
    kinds = {}
    for line in log.splitlines():
        m = re.search(r"\[(?:error|crit|alert)\] \d+#\d+: \*\d+ (.*?)(?:, client:|$)", line)
        if m:
            k = re.sub(r"unix:\S+", "unix:SOCK", m.group(1))
            kinds[k] = kinds.get(k, 0) + 1
    return kinds


def script_processes(path):
    """Processes started for `path` (cgate gives scripts SCRIPT_FILENAME; children inherit it)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if b"SCRIPT_FILENAME=" + path.encode() + b"\0" in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def row_sigkill(binary, work):
    cgi = tempfile.mkdtemp(prefix="cgi-", dir=work)
    os.chmod(cgi, 0o755)
    script = os.path.join(cgi, "sleeper.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nstarted\\n'\nsleep 120\n")
    os.chmod(script, 0o755)
    cg = Cgate(binary, work, f"cgi:{cgi}")
    conns = []
    for rid in range(1, 4):
        s = connect(cg.sock)
        params = (pair(b"REQUEST_METHOD", b"GET") + pair(b"SCRIPT_NAME", b"")
                  + pair(b"PATH_INFO", b"/sleeper.sh"))
        s.sendall(begin(rid) + record(PARAMS, rid, params) + record(PARAMS, rid)
                  + record(STDIN, rid))
        conns.append(s)
    deadline = time.time() + 20
    # Each script is a shell and its `sleep` child: 6 processes for 3 requests.
    while len(script_processes(script)) < 6 and time.time() < deadline:
        time.sleep(0.05)
    running = len(script_processes(script))
    cg.proc.send_signal(signal.SIGKILL)
    cg.proc.wait()
    cg.log.close()
    deadline = time.time() + 2
    while script_processes(script) and time.time() < deadline:
        time.sleep(0.05)
    left = script_processes(script)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    for s in conns:
        s.close()
    held = running == 6 and not left
    return ("cgi:DIR with 3 requests to a script that prints its head then sleeps 120 s; "
            "SIGKILL to cgate once the 3 scripts run",
            f"{'yes' if held else 'NO'}: script processes left 2 s after the SIGKILL "
            f"(killed by pid afterwards)",
            f"{running} script processes (3 shells, 3 sleep children) before, "
            f"{len(left)} left after")
