"""Shared helpers for the reliability scenarios: raw FastCGI records, /proc readings, and the
cgate, nginx and wrk processes a scenario starts (each stopped by PID)."""
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
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
    """(sockets, other descriptors) open in `pid`; a socket open on several descriptors
    (the listener is kept twice: once to serve, once for a reload's hand-over) counts once."""
    socks, other = set(), 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            socks.add(target)
        else:
            other += 1
    return len(socks), other


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
        if app.startswith("cgi:") and os.geteuid() == 0:
            # cgate refuses to run scripts as root unless told; these runs measure, as root
            args.append("--allow-root")
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
