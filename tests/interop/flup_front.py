"""HTTP front for the interop tests: Python's wsgiref server in front of flup's FastCGI client.

Usage: flup_front.py PORT APP_SOCKET CGI_SOCKET PID_FILE

Each request becomes one FastCGI request through flup.client.fcgi_app.FCGIApp: /cgi/NAME...
goes to CGI_SOCKET (SCRIPT_NAME /cgi/NAME, the rest PATH_INFO), everything else to
APP_SOCKET. wsgiref speaks HTTP/1.0 and closes every connection after its response.
The PID file appears once the port is bound.
"""

import os
import socketserver
import sys
import traceback
import types
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

# flup's client still checks isinstance(connect, types.StringTypes) (Python 2) to tell a
# Unix socket path from a (host, port) pair.
types.StringTypes = (str,)

from flup.client.fcgi_app import FCGIApp  # noqa: E402


class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 64


class Handler(WSGIRequestHandler):
    def log_message(self, format, *args):
        sys.stderr.write("flup-front: " + (format % args) + "\n")


def main():
    port, app_sock, cgi_sock, pid_file = sys.argv[1:5]
    app = FCGIApp(connect=app_sock)
    cgi = FCGIApp(connect=cgi_sock)

    def route(environ, start_response):
        # flup's client hands the status and headers over as bytes (its Python 2 heritage);
        # a WSGI server wants native strings.
        def start(status, headers, exc_info=None):
            text = lambda b: b.decode("latin-1") if isinstance(b, bytes) else b
            headers = [(text(n), text(v)) for n, v in headers]
            return start_response(text(status), headers, exc_info)

        path = environ.get("PATH_INFO", "")
        target = app
        if path.startswith("/cgi/"):
            parts = path.split("/", 3)
            environ["SCRIPT_NAME"] = "/".join(parts[:3])
            environ["PATH_INFO"] = "/" + parts[3] if len(parts) > 3 else ""
            target = cgi
        try:
            return target(environ, start)
        except OSError as e:
            # wsgiref drops the client connection without a word on a broken pipe (it takes
            # it for the client's): say that it was the FastCGI side.
            sys.stderr.write(f"flup-front: FastCGI connection: {e!r}\n")
            traceback.print_exc()
            raise

    httpd = make_server("127.0.0.1", int(port), route, Server, Handler)
    with open(pid_file + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(pid_file + ".tmp", pid_file)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
