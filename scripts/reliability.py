#!/usr/bin/env python3
"""Fault and load figures for docs/RELIABILITY.md: runs each scenario against a real cgate
(and nginx + wrk where a web server is part of it) and prints the document on stdout.

Usage: reliability.py CGATE_BIN SOAK_SECONDS   (scripts/reliability.sh is the one command)."""
import hashlib
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR, GET_VALUES = 1, 2, 3, 4, 5, 6, 7, 9
HELLO = (b"Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Content-Length: 14\r\n\r\nHello, world!\n")


# ---- FastCGI bytes -------------------------------------------------------------------------

def record(rtype, rid, content=b"", version=1):
    pad = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBB", version, rtype, rid, len(content), pad, 0) + content + b"\0" * pad


def pair(name, value):
    def ln(n):
        return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
    return ln(len(name)) + ln(len(value)) + name + value


def begin(rid=1, keep=False, role=1):
    return record(BEGIN, rid, struct.pack(">HB5x", role, 1 if keep else 0))


def get_request(rid=1, keep=False):
    params = pair(b"REQUEST_METHOD", b"GET") + pair(b"SCRIPT_NAME", b"") + pair(b"PATH_INFO", b"/")
    return (begin(rid, keep) + record(PARAMS, rid, params) + record(PARAMS, rid)
            + record(STDIN, rid))


def read_reply(sock):
    """Reads records until END_REQUEST; returns (stdout bytes, app status)."""
    buf, out = b"", b""
    while True:
        while len(buf) >= 8:
            _, rtype, _, clen, pad, _ = struct.unpack(">BBHHBB", buf[:8])
            if len(buf) < 8 + clen + pad:
                break
            content, buf = buf[8:8 + clen], buf[8 + clen + pad:]
            if rtype == STDOUT:
                out += content
            elif rtype == END:
                return out, struct.unpack(">I", content[:4])[0]
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed before END_REQUEST")
        buf += chunk


def connect(path, timeout=30):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def clean_request(path):
    s = connect(path)
    s.sendall(get_request())
    out, _ = read_reply(s)
    s.close()
    return out


# Every process this run starts, so that a failing scenario still stops them (by PID).
STARTED = []


def stop_all():
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop_process(proc, sig):
    """Sends `sig`, waits up to 30 s, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- processes -----------------------------------------------------------------------------

def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_kinds(pid):
    """(sockets, other descriptors) open in `pid`."""
    socks = other = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            socks += 1
        else:
            other += 1
    return socks, other


def cpu_seconds(pid):
    """User plus system CPU time `pid` has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def threads(pid):
    return status_kib(pid, "Threads")


def spool_bytes(pid):
    """Bytes in regular files cgate holds open (the body spool is a deleted temp file)."""
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            st = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if (st.st_mode & 0o170000) == 0o100000:
            total += st.st_blocks * 512
    return total


class Cgate:
    def __init__(self, binary, work, app, extra=()):
        self.sock = os.path.join(work, f"cgate-{len(os.listdir(work))}.sock")
        self.log = open(os.path.join(work, "cgate.log"), "ab")
        args = [binary, "fastcgi", "--listen", self.sock, "--app", app, *extra]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        STARTED.append(self.proc)
        deadline = time.time() + 30
        while True:
            try:
                connect(self.sock, 1).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"cgate did not start: {args}")
                time.sleep(0.02)
        self.pid = self.proc.pid

    def stop(self):
        stop_process(self.proc, signal.SIGTERM)
        self.log.close()


class Nginx:
    def __init__(self, work, upstream_sock):
        self.dir = tempfile.mkdtemp(prefix="nginx-", dir=work)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        user = "user root;" if os.geteuid() == 0 else ""
        d = self.dir
        conf = f"""{user}
worker_processes 2;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 4096; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream cgate {{ server unix:{upstream_sock}; keepalive 512; }}
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        location / {{
            fastcgi_pass cgate;
            fastcgi_keep_conn on;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_NAME "";
            fastcgi_param PATH_INFO $uri;
        }}
    }}
}}
"""
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(["nginx", "-p", d, "-c", f"{d}/nginx.conf"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        STARTED.append(self.proc)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("nginx did not start")
                time.sleep(0.02)

    def error_log(self):
        with open(f"{self.dir}/error.log", errors="replace") as f:
            return f.read()

    def statuses(self):
        counts = {}
        with open(f"{self.dir}/access.log", errors="replace") as f:
            for line in f:
                m = re.search(r'" (\d{3}) ', line)
                if m:
                    counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        return counts

    def stop(self):
        stop_process(self.proc, signal.SIGQUIT)


def wrk(port, seconds, conns, delay_ms=0, work="/tmp"):
    args = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s"]
    if delay_ms:
        lua = os.path.join(work, f"delay-{delay_ms}.lua")
        with open(lua, "w") as f:
            f.write(f"function delay() return {delay_ms} end\n")
        args += ["-s", lua]
    out = subprocess.run(args + [f"http://127.0.0.1:{port}/"], capture_output=True,
                         text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in m.groups()) if m else 0
    return rps, total, bad, errors


# ---- scenarios -----------------------------------------------------------------------------

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
            f"retries of requests nginx had written on kept-alive connections cgate had "
            f"closed as idle (write failed: never received). nginx's errors: {detail}",
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


def hashing_script(work):
    cgi = tempfile.mkdtemp(prefix="cgi-", dir=work)
    os.chmod(cgi, 0o755)
    with open(os.path.join(cgi, "sha.sh"), "w") as f:
        f.write("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nexec sha256sum\n")
    os.chmod(os.path.join(cgi, "sha.sh"), 0o755)
    return cgi


def row_upload(binary, work, cgi=False):
    app = f"cgi:{hashing_script(work)}" if cgi else "echo"
    cg = Cgate(binary, work, app, ["--max-body", str(2 << 30)])
    size, block = 1 << 30, bytes(range(256)) * 256
    rss0 = status_kib(cg.pid, "VmRSS")
    peak_rss, peak_disk, stop = [rss0], [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak_rss[0] = max(peak_rss[0], status_kib(cg.pid, "VmRSS"))
            peak_disk[0] = max(peak_disk[0], spool_bytes(cg.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.time()
    s = connect(cg.sock, 120)
    params = (pair(b"REQUEST_METHOD", b"POST") + pair(b"CONTENT_LENGTH", str(size).encode())
              + pair(b"SCRIPT_NAME", b"") + pair(b"PATH_INFO", b"/sha.sh" if cgi else b"/"))
    s.sendall(begin() + record(PARAMS, 1, params) + record(PARAMS, 1))
    digest = hashlib.sha256()
    chunk = record(STDIN, 1, block[:65528])
    sent = 0
    while sent < size:
        n = min(65528, size - sent)
        s.sendall(chunk if n == 65528 else record(STDIN, 1, block[:n]))
        digest.update(block[:n])
        sent += n
    try:
        s.sendall(record(STDIN, 1))
    except (BrokenPipeError, ConnectionResetError):
        # cgate may answer and close once CONTENT_LENGTH bytes arrived, before the empty
        # record that ends the stream; its reply is already in our receive buffer.
        pass
    out, _ = read_reply(s)
    took = time.time() - start
    stop.set()
    sampler.join()
    s.close()
    hwm = status_kib(cg.pid, "VmHWM")
    cg.stop()
    m = re.search(rb'([0-9a-f]{64})', out)
    match = bool(m) and m.group(1).decode() == digest.hexdigest()
    grew = peak_rss[0] - rss0
    held = match and grew < 16 * 1024 and peak_disk[0] < 64 << 20
    what = ("`cgi:DIR` running `sha256sum` as a CGI script (cgate keeps a disk "
            "spool for what the script has not read yet)" if cgi else "`echo`, which hashes the body as it streams")
    return ("1 GiB POST (CONTENT_LENGTH 1073741824) in 64 KiB STDIN records straight to "
            + what,
            f"{'yes' if held else 'NO'}: sha256 reported by cgate matches the client's: "
            f"{'yes' if match else 'NO'}; RSS sampled every 50 ms",
            f"RSS {rss0} KiB -> peak {peak_rss[0]} KiB (+{grew} KiB; VmHWM {hwm} KiB); "
            f"disk held by cgate at most {peak_disk[0] >> 20} MiB; {took:.1f} s "
            f"({size / took / (1 << 20):.0f} MiB/s)")


def row_soak(binary, work, seconds):
    cg = Cgate(binary, work, "hello")
    ng = Nginx(work, cg.sock)
    conns = 256
    wrk(ng.port, 2, conns)
    peak, _, _, _ = wrk(ng.port, 5, conns)
    target = 0.8 * peak
    # wrk waits delay() ms before each request on a connection: find the delay whose rate
    # is closest to 80% of the peak (3 s probes).
    best = None
    for d in range(1, 40):
        rate, _, _, _ = wrk(ng.port, 3, conns, d, work)
        if best is None or abs(rate - target) < abs(best[1] - target):
            best = (d, rate)
        if rate < target:
            break
    delay, rate = best
    # One step on the connection count, which moves the rate in finer steps than 1 ms.
    conns2 = max(8, round(conns * target / rate))
    rate2, _, _, _ = wrk(ng.port, 3, conns2, delay, work)
    if abs(rate2 - target) < abs(rate - target):
        conns = conns2
    series, stop = [], threading.Event()
    step = max(1, seconds // 20)

    def point(t0):
        socks, other = fd_kinds(cg.pid)
        return (int(time.time() - t0), status_kib(cg.pid, "VmRSS"), socks, other,
                threads(cg.pid))

    def sample():
        t0 = time.time()
        while not stop.wait(0 if not series else step):
            series.append(point(t0))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.time()
    # In chunks of up to 30 s; after each, the connection count is corrected toward 80% of
    # the peak, as the other work on a shared machine comes and goes.
    done, total, bad, errors, chunks = 0, 0, 0, 0, []
    while done < seconds:
        d = min(30, seconds - done)
        r, n, b, e = wrk(ng.port, d, conns, delay, work)
        chunks.append(r / peak)
        done, total, bad, errors = done + d, total + n, bad + b, errors + e
        # Halfway to the estimate, and below cgate's default --max-conns (1024) with room
        # for nginx's extra upstream connections.
        want = conns * target / max(r, 1)
        conns = min(384, max(16, round((conns + want) / 2)))
    rate = total / (time.time() - t0)
    stop.set()
    sampler.join()
    ng.stop()
    deadline = time.time() + 5
    while fd_kinds(cg.pid)[0] > 1 and time.time() < deadline:
        time.sleep(0.05)
    series.append(point(t0) + ("after nginx stopped",))
    cg.stop()
    # Flat: the second half rises no higher than the first half (after the first sample,
    # taken before the load), and descriptors other than sockets do not grow at all.
    body = series[1:-1] or series
    half = len(body) // 2 or 1
    first, second = body[:half], body[half:] or body[:half]
    rss_rise = max(p[1] for p in second) - max(p[1] for p in first)
    other_rise = max(p[3] for p in second) - max(p[3] for p in first)
    flat = rss_rise <= 256 and other_rise <= 0
    held = flat and bad == 0 and errors == 0
    rss = [p[1] for p in body]
    socks = [p[2] for p in body]
    row = (f"{seconds} s soak through nginx to `hello` at {rate / peak:.0%} of peak on "
           f"average (wrk -t2 with a {delay} ms delay per request, in 30 s runs whose "
           f"connection count is corrected toward 80%: {min(chunks):.0%}-{max(chunks):.0%} "
           f"of peak; peak {peak:.0f} req/s at -c256)",
           f"{'yes' if held else 'NO'}: {bad} non-2xx, {errors} socket errors; second half "
           f"vs first half: RSS {rss_rise:+d} KiB, non-socket fds {other_rise:+d}; "
           f"connections back to 0 after nginx stopped: "
           f"{'yes' if series[-1][2] <= 1 else 'NO'}",
           f"{total} requests, {rate:.0f} req/s; RSS {min(rss)}-{max(rss)} KiB; "
           f"sockets {min(socks)}-{max(socks)} (nginx's upstream connections)")
    return row, series


def main():
    binary, soak = sys.argv[1], int(sys.argv[2])
    work = tempfile.mkdtemp(prefix="cgate-reliability-")
    os.chmod(work, 0o755)
    try:
        rows, series = run_all(binary, work, soak)
    finally:
        stop_all()
        subprocess.run(["rm", "-rf", work])
    print_doc(rows, series, soak)


def run_all(binary, work, soak):
    rows = []
    scenarios = {"malformed": row_malformed, "idle": row_idle, "sigterm": row_sigterm,
                 "sigkill": row_sigkill, "upload": row_upload,
                 "upload-cgi": lambda b, w: row_upload(b, w, cgi=True)}
    for name in ROWS[:-1]:
        fn = scenarios[name]
        print(f"reliability: {name}", file=sys.stderr)
        rows.append(fn(binary, work))
        print(f"  {rows[-1][1]}", file=sys.stderr)
    print("reliability: soak", file=sys.stderr)
    soak_row, series = row_soak(binary, work, soak)
    rows.append(soak_row)
    print(f"  {soak_row[1]}", file=sys.stderr)
    return rows, series


# The scenarios in table order (the soak last), and what a failed row means.
ROWS = ["malformed", "idle", "sigterm", "sigkill", "upload", "upload-cgi", "soak"]
NOTES = {
    "malformed": "Malformed connections: a connection cgate did not close, a wrong answer to "
                 "the clean request afterwards, or a grown descriptor count is a bug in the "
                 "protocol core or the pool (issue 11).",
    "idle": "Idle connections: cgate spent over 10% more CPU per request while 1,000 idle "
            "connections were open. On a shared 2-core machine single runs vary by tens of "
            "percent (see the run ranges); rerun the command to tell a cost in the pool "
            "(src/fastcgi/server/pool.rs) from noise.",
    "sigterm": "SIGTERM: requests were lost on connections cgate had accepted. The nginx "
               "errors in the row say how: `upstream prematurely closed connection while "
               "reading response header` is a request nginx wrote onto a kept-alive "
               "connection just as cgate closed it as idle during shutdown; cgate never "
               "read it, and nginx does not retry after a successful write. Graceful "
               "shutdown has to serve (or refuse with a reply) what is already in an idle "
               "connection's buffer (shutdown is the ops branch's, the pool core's).",
    "sigkill": "SIGKILL: CGI scripts outlive a killed cgate, reparented to init (issue 11, "
               "finding 3). The cgi branch makes scripts die with cgate "
               "(PR_SET_PDEATHSIG or a subreaper); until it lands this row stays >0.",
    "upload": "1 GiB upload to echo: RSS grew or the hash did not match.",
    "upload-cgi": "1 GiB upload through cgi:DIR: RSS grew, the spool held more than 64 MiB "
                  "on disk, or the hash did not match (issue 11, finding 7: the spool has "
                  "no disk cap yet).",
    "soak": "Soak: errors, or RSS / non-socket descriptors rising in the second half.",
}


def print_doc(rows, series, soak):
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cores = os.cpu_count()
    print(f"""# Reliability figures

Produced by one command, `bash scripts/reliability.sh [SOAK_SECONDS]` (not part of the test
suite; it builds the release binary and drives it with raw FastCGI clients, nginx and wrk).
This run: {when}, {cores} cores shared with other work, soak {soak} s. "Held" says whether
the scenario's rule held in this run; the figure is what was measured.

| scenario: what was sent | held | figure |
|---|---|---|""")
    for sent, held, figure in rows:
        print(f"| {sent} | {held} | {figure} |")
    notes = [NOTES[key] for key, (_, held, _) in zip(ROWS, rows) if not held.startswith("yes")
             and key in NOTES]
    if notes:
        print("\n## Where a rule did not hold\n")
        for note in notes:
            print(f"- {note}")
    print("""
## Soak series

Sampled from /proc during the soak (seconds since the start, cgate's resident set, open
sockets (the listener and nginx's connections), other descriptors, threads; the last row
after nginx stopped):

| t (s) | RSS (KiB) | sockets | other fds | threads |
|---:|---:|---:|---:|---:|""")
    for t, rss, socks, other, thr, *note in series:
        label = f"{t} ({note[0]})" if note else str(t)
        print(f"| {label} | {rss} | {socks} | {other} | {thr} |")


if __name__ == "__main__":
    main()
