"""Sends N HTTP/1.1 GET requests one after another on one kept-alive TCP connection.

Used by bench/callgrind.sh --serve: the client is not measured, only the server's instruction
count. Usage: http_ka.py PORT N [PATH]   (exits 1 if a reply is not a complete 200)
"""
import socket
import sys


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 else "/"
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    s = socket.create_connection(("127.0.0.1", port))
    buf = b""
    for _ in range(n):
        s.sendall(req)
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = buf[:end].decode("latin-1").split("\r\n")
                if not head[0].startswith("HTTP/1.1 200 "):
                    sys.exit(f"http_ka.py: {head[0]!r}")
                length = None
                for line in head[1:]:
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                if length is None:
                    sys.exit("http_ka.py: a reply without Content-Length")
                if len(buf) >= end + 4 + length:
                    buf = buf[end + 4 + length:]
                    break
            data = s.recv(65536)
            if not data:
                sys.exit("http_ka.py: the server closed the connection")
            buf += data
    s.close()


main()
