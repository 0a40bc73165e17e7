"""Sends N FastCGI requests one after another on one kept-alive Unix-socket connection.

Used by bench/callgrind.sh: the client is not measured, only the backend's instruction count.
Usage: fcgi_ka.py SOCKET N [PATH]   (exits 1 if a reply is not a complete 200)
"""
import socket
import struct
import sys


def record(rtype, rid, content=b""):
    pad = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBB", 1, rtype, rid, len(content), pad, 0) + content + b"\0" * pad


def pairs(items):
    out = b""
    for k, v in items:
        for n in (len(k), len(v)):
            out += bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
        out += k + v
    return out


def request(path):
    params = pairs([
        (b"REQUEST_METHOD", b"GET"), (b"SCRIPT_NAME", b""), (b"PATH_INFO", path),
        (b"REQUEST_URI", path), (b"QUERY_STRING", b""), (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"SERVER_NAME", b"localhost"), (b"SERVER_PORT", b"80"), (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"GATEWAY_INTERFACE", b"CGI/1.1"), (b"CONTENT_LENGTH", b""), (b"HTTP_HOST", b"localhost"),
    ])
    return (record(1, 1, struct.pack(">HB5x", 1, 1)) + record(4, 1, params) + record(4, 1)
            + record(5, 1))


def read_reply(sock, buf):
    """Reads records up to END_REQUEST; returns (stdout bytes, rest of buffer)."""
    out = b""
    while True:
        while len(buf) < 8:
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit("connection closed")
            buf += chunk
        _, rtype, _, clen, plen, _ = struct.unpack(">BBHHBB", buf[:8])
        total = 8 + clen + plen
        while len(buf) < total:
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit("connection closed")
            buf += chunk
        content, buf = buf[8:8 + clen], buf[total:]
        if rtype == 6:
            out += content
        elif rtype == 3:
            return out, buf


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    target = sys.argv[3].encode() if len(sys.argv) > 3 else b"/"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    req, buf = request(target), b""
    for _ in range(n):
        sock.sendall(req)
        out, buf = read_reply(sock, buf)
        if not out.startswith(b"Status: 200"):
            raise SystemExit(f"bad reply: {out[:80]!r}")
    sock.close()


if __name__ == "__main__":
    main()
