"""N hello requests over one kept-alive FastCGI connection (Unix socket): python3 fcgi_keepalive.py SOCK N."""
import socket, struct, sys, time
path, n = sys.argv[1], int(sys.argv[2])
def rec(t, rid, content):
    return struct.pack(">BBHHBx", 1, t, rid, len(content), 0) + content
def nv(pairs):
    out = b""
    for k, v in pairs:
        out += bytes([len(k), len(v)]) + k + v
    return out
params = nv([(k.encode(), v.encode()) for k, v in [
    ("QUERY_STRING", ""), ("REQUEST_METHOD", "GET"), ("CONTENT_TYPE", ""), ("CONTENT_LENGTH", ""),
    ("SCRIPT_NAME", ""), ("PATH_INFO", "/"), ("REQUEST_URI", "/"), ("DOCUMENT_URI", "/"),
    ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_SCHEME", "http"), ("GATEWAY_INTERFACE", "CGI/1.1"),
    ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_PORT", "5555"), ("SERVER_ADDR", "127.0.0.1"),
    ("SERVER_PORT", "80"), ("SERVER_NAME", "localhost"), ("HTTP_HOST", "localhost"),
    ("HTTP_USER_AGENT", "wrk"), ("HTTP_ACCEPT", "*/*")]])
req = rec(1, 1, struct.pack(">HB5x", 1, 1)) + rec(4, 1, params) + rec(4, 1, b"") + rec(5, 1, b"")
for _ in range(300):
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(path); break
    except OSError:
        time.sleep(0.2)
f = s.makefile("rb")
body = 0
for i in range(n):
    s.sendall(req)
    while True:
        h = f.read(8)
        v, t, rid, ln, pad = struct.unpack(">BBHHBx", h)
        c = f.read(ln + pad)
        if t == 6: body += ln
        if t == 3: break
print(n, body)
