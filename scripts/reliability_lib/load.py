"""Load scenarios: a 1 GiB upload (to echo, and through cgi:DIR) and a soak through nginx at 80%
of peak."""
import hashlib
import os
import re
import tempfile
import threading
import time

from .common import (PARAMS, STDIN, Cgate, Nginx, begin, connect, fd_kinds, pair, read_reply,
                     record, spool_bytes, status_kib, threads, wrk)


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
