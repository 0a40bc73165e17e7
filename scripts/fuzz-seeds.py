#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: golden FastCGI records, PARAMS streams, CGI
replies and response specs, one small file each, under fuzz/corpus/<target>/.

Run from anywhere: python3 scripts/fuzz-seeds.py (rewrites the seed files, keeps others)."""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR, DATA, GET_VALUES = 1, 2, 3, 4, 5, 6, 7, 8, 9


def record(rtype, rid, content=b"", padding=None):
    pad = (8 - len(content) % 8) % 8 if padding is None else padding
    return struct.pack(">BBHHBB", 1, rtype, rid, len(content), pad, 0) + content + b"\0" * pad


def length(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def pair(name, value):
    return length(len(name)) + length(len(value)) + name + value


def pairs(items):
    return b"".join(pair(n, v) for n, v in items)


def begin(rid=1, role=1, keep=False):
    return record(BEGIN, rid, struct.pack(">HB5x", role, 1 if keep else 0))


def request(rid=1, keep=False, params=None, body=b"", split_body=False):
    params = params if params is not None else [(b"REQUEST_METHOD", b"GET"), (b"QUERY_STRING", b"a=1")]
    out = begin(rid, keep=keep) + record(PARAMS, rid, pairs(params)) + record(PARAMS, rid)
    if split_body and body:
        half = len(body) // 2
        out += record(STDIN, rid, body[:half]) + record(STDIN, rid, body[half:])
    elif body:
        out += record(STDIN, rid, body)
    return out + record(STDIN, rid)


POST = [(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"5"), (b"CONTENT_TYPE", b"text/plain")]

STREAMS = {
    "get": request(),
    "get-keep-twice": request(keep=True) + request(rid=2, keep=True),
    "post": request(params=POST, body=b"hello"),
    "post-split-body": request(params=POST, body=b"hello", split_body=True),
    "get-values": record(GET_VALUES, 0, pairs([(b"FCGI_MAX_CONNS", b""), (b"FCGI_MPXS_CONNS", b"")])),
    "unknown-management": record(42, 0, b"12345678"),
    "abort-in-params": begin() + record(PARAMS, 1, pair(b"A", b"b")) + record(ABORT, 1),
    "abort-running": begin(keep=True) + record(PARAMS, 1) + record(ABORT, 1) + request(rid=3),
    "second-begin": begin() + begin(rid=2) + record(PARAMS, 1) + record(STDIN, 1),
    "unknown-role": begin(role=3, keep=True) + request(rid=2),
    "padding": record(PARAMS, 1, b"x", padding=255),
    "bad-version": b"\x02" + record(BEGIN, 1)[1:],
    "data-record": begin() + record(PARAMS, 1) + record(DATA, 1, b"filter") + record(STDIN, 1),
    "stdin-before-params": begin() + record(STDIN, 1, b"x"),
    "long-param": request(params=[(b"HTTP_X", b"v" * 300), (b"N" * 130, b"")]),
    "null-id-begin": begin(rid=0),
}

REPLIES = {
    "plain": b"Content-Type: text/plain\r\n\r\nhello",
    "lf-only": b"Content-Type: text/html\nX-A: 1\n\n<p>",
    "status": b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope",
    "status-no-reason": b"Status: 503\nContent-Type: text/plain\n\n",
    "redirect": b"Location: https://example.org/\r\n\r\n",
    "local-redirect": b"Location: /other\n\n",
    "no-content": b"Status: 204 No Content\n\nbody ignored",
    "not-modified": b"Status: 304 Not Modified\nContent-Length: 10\n\n0123456789",
    "content-length": b"Content-Type: text/plain\nContent-Length: 4\n\nbody",
    "content-length-twice": b"Content-Type: text/plain\nContent-Length: 1\nContent-Length: 100\n\nbody",
    "content-length-junk": b"Content-Type: text/plain\nContent-Length: +4\n\nbody",
    "folded": b"Content-Type: text/plain\n X-Folded: 1\n\n",
    "bare-cr": b"Content-Type: text/plain\nX: a\rb\n\n",
    "no-colon": b"Content-Type text/plain\n\n",
    "bad-status": b"Status: 99 Low\nContent-Type: text/plain\n\n",
    "no-end": b"Content-Type: text/plain\n",
    "hop-by-hop": b"Content-Type: text/plain\nConnection: close\n\n",
}

APP_SPECS = {
    "ok": b"200 OK\nContent-Type: text/plain\x00hello",
    "length": b"200 OK\nContent-Type: text/plain\nContent-Length: 3\x00hello",
    "length-twice": b"200 OK\nContent-Length: 1\nContent-Length: 5\x00hello",
    "length-junk": b"200 OK\nContent-Length: 5G\x00hello",
    "injected": b"200 OK\nX: a\rInjected: 1\x00",
    "nul": b"200 OK\nX: a\x00b",
    "no-reason": b"404 \nContent-Type: text/plain\x00",
    "bad-status": b"2000 OK\x00",
    "empty-body": b"204 No Content\x00",
}

PARAM_SETS = {
    "typical": [(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"12"), (b"HTTP_HOST", b"x")],
    "duplicates": [(b"HTTP_X_FORWARDED_FOR", b"proxy"), (b"HTTP_X_FORWARDED_FOR", b"client")],
    "httpoxy": [(b"HTTP_PROXY", b"http://evil"), (b"HTTP_CONTENT_LENGTH", b"1")],
    "content-length-plus": [(b"CONTENT_LENGTH", b"+4")],
    "content-length-huge": [(b"CONTENT_LENGTH", b"18446744073709551616")],
    "content-length-max": [(b"CONTENT_LENGTH", b"18446744073709551615")],
    "content-length-empty": [(b"CONTENT_LENGTH", b"")],
    "path-info": [(b"PATH_INFO", b"/a/b"), (b"DOCUMENT_ROOT", b"/srv/"), (b"HTTP_A-B", b"dash")],
    "nul-value": [(b"HTTP_X", b"a\x00b"), (b"QUERY_STRING", b"q")],
    "equals-name": [(b"HTTP_A=B", b"x")],
}


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for name, data in STREAMS.items():
        for target in ("record", "responder_socket"):
            write(target, name, data)
        # connection_split and cgi_reply take a cut count and cut lengths first.
        write("connection_split", name, bytes([3, 1, 7, 9]) + data)
    for name, items in PARAM_SETS.items():
        write("pairs", name, b"\x00" + pairs(items))
        write("environ", name, pairs(items))
    for name, data in REPLIES.items():
        write("cgi_reply", name, bytes([2, 5, 1]) + data)
        write("response_head", "reply-" + name, b"\x00" + data)
    for name, data in APP_SPECS.items():
        write("response_head", "app-" + name, b"\x01" + data)


if __name__ == "__main__":
    main()
