//! Requests that end early or badly over real sockets: ABORT_REQUEST, vanished clients, app failures, SIGTERM.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::client::*;
use crate::server::*;

use crate::support::golden::DEMO_HELLO;

fn assert_demo_serves(srv: &Server, what: &str) {
    srv.assert_serves(DEMO_HELLO, what);
}

/// The begin of an echo POST declaring a large body, with `sent` of it.
fn partial_post(id: u16, flags: u8, sent: &[u8]) -> Vec<u8> {
    let p = params("POST", "/", &[(b"CONTENT_LENGTH", b"1000000")]);
    let mut req = begin(id, RESPONDER, flags, 0);
    req.extend(stream(PARAMS, id, &p, 65535, 0));
    for part in sent.chunks(65535) {
        req.extend(rec(STDIN, id, part, 0));
    }
    req
}

/// FastCGI spec 5.4: ABORT_REQUEST while the app reads the body gets END_REQUEST at once
/// (an empty STDOUT, no app output), and a kept-alive connection carries the next request.
#[test]
fn abort_request_while_reading_body() {
    for t in BOTH {
        let srv = Server::start(t, "echo", &[]);
        let mut c = srv.connect();
        // More than the server reads ahead, so the app starts and reads the body itself.
        c.send(&partial_post(1, KEEP_CONN, &[b'b'; 70_000]));
        // Gate: records are handled in order, so once GET_VALUES is answered the app has
        // read everything sent before it and waits in its body read for more.
        c.send(&rec(GET_VALUES, 0, &nv(&[(b"FCGI_MAX_CONNS", b"")]), 0));
        let (gate, _) = c.record();
        assert_eq!((gate.record_type, gate.id), (GET_VALUES_RESULT, 0), "{t:?}");
        c.send(&rec(ABORT, 1, b"", 0));
        let r = c.reply(1);
        let mut want = server_rec(STDOUT, 1, b"");
        want.extend(end_request(1, 0, REQUEST_COMPLETE));
        assert_eq!(r.raw, want, "{t:?}: {}", srv.backend.output());
        // The connection is still usable, and nothing of the aborted body leaks into it.
        let p = params("POST", "/", &[(b"CONTENT_LENGTH", b"4")]);
        let r = c.roundtrip(1, &request(1, KEEP_CONN, &p, b"next"));
        assert_eq!(
            r.json()["input"]["sha256"],
            crate::support::sha256_hex(b"next")
        );
        // ABORT while PARAMS is still arriving: ended at once, the app never runs.
        c.send(&begin(2, RESPONDER, KEEP_CONN, 0));
        c.send(&rec(PARAMS, 2, &params("GET", "/", &[]), 0));
        c.send(&rec(ABORT, 2, b"", 0));
        assert_eq!(c.reply(2).raw, end_request(2, 0, REQUEST_COMPLETE), "{t:?}");
        // Without FCGI_KEEP_CONN the connection closes after the END_REQUEST.
        c.send(&partial_post(3, 0, b"abc"));
        c.send(&rec(ABORT, 3, b"", 0));
        let r = c.reply(3);
        assert_eq!(r.protocol_status, REQUEST_COMPLETE);
        c.assert_closed_silently("after an aborted request without keep-conn");
    }
}

/// nginx just closes: a client that disconnects mid-response stops that response only; the
/// server keeps serving and its connection threads return to the baseline.
#[test]
fn client_gone_mid_response_no_thread_leak() {
    for t in BOTH {
        let srv = Server::demo(t, &[]);
        assert_demo_serves(&srv, "warm-up");
        let baseline = thread_count(srv.pid());
        for _ in 0..20 {
            let mut c = srv.connect();
            c.send(&get(1, KEEP_CONN, "/stream?n=50&ms=50"));
            let (first, _) = c.record();
            assert_eq!(first.record_type, STDOUT);
            assert!(
                first.content.starts_with(b"Status: 200 OK\r\n"),
                "{first:?}"
            );
            drop(c);
        }
        assert_demo_serves(&srv, "after 20 vanished clients");
        let settled = eventually(Duration::from_secs(20), || {
            thread_count(srv.pid()) <= baseline + 2
        });
        assert!(
            settled,
            "{t:?}: {} threads, baseline {baseline}",
            thread_count(srv.pid())
        );
        let out = srv.backend.output();
        assert!(!out.contains("panicked"), "{out}");
    }
}

/// Apache CVE-2024-24795 / app failures: a header with CR LF before the body and a panic each
/// become the exact clean 500 (none of the bad header), reported on STDERR; the process keeps
/// serving.
#[test]
fn app_errors_become_clean_500() {
    for t in BOTH {
        let srv = Server::demo(t, &[]);
        let mut c = srv.connect();
        let r = c.roundtrip(1, &get(1, KEEP_CONN, "/bad-header"));
        assert_eq!(r.stdout, ERROR_500, "{t:?}");
        assert!(find(&r.stdout, b"Injected").is_none() && find(&r.stdout, b"X-Bad").is_none());
        let err = String::from_utf8_lossy(&r.stderr).into_owned();
        assert!(err.contains("X-Bad"), "{err}");
        assert_eq!((r.app_status, r.protocol_status), (0, REQUEST_COMPLETE));
        let r = c.roundtrip(1, &get(1, KEEP_CONN, "/panic"));
        assert_eq!(r.stdout, ERROR_500, "{t:?}");
        let err = String::from_utf8_lossy(&r.stderr).into_owned();
        assert!(err.contains("demo panic"), "{err}");
        // The same kept-alive connection and a new one are both served afterwards.
        let r = c.roundtrip(1, &get(1, 0, "/"));
        assert_eq!(r.raw, simple_reply(1, DEMO_HELLO));
        for _ in 0..3 {
            let mut c = srv.connect();
            let r = c.roundtrip(1, &get(1, 0, "/panic"));
            assert_eq!(r.stdout, ERROR_500);
        }
        assert_demo_serves(&srv, "after panics");
    }
}

/// Whether a fresh connection to `addr` is refused (connect fails, or the server closes it
/// without answering).
/// True once `addr` no longer takes requests: refused, or closed without an answer.
pub(crate) fn refused(addr: &Addr) -> bool {
    match addr.try_connect() {
        Err(_) => true,
        Ok(mut c) => {
            c.set_timeout(Duration::from_secs(5));
            c.send_lossy(&get(1, 0, "/"));
            let mut buf = [0u8; 64];
            match std::io::Read::read(&mut c, &mut buf) {
                Ok(n) => n == 0,
                Err(e) => !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            }
        }
    }
}

/// php-fpm reload complaints: SIGTERM stops accepting, closes idle connections, lets the
/// request in flight finish with its full response, removes the socket file and exits 0.
#[test]
fn sigterm_finishes_in_flight_request_and_exits_0() {
    for t in BOTH {
        let mut srv = Server::demo(t, &[]);
        let mut idle = srv.connect();
        let r = idle.roundtrip(1, &get(1, KEEP_CONN, "/"));
        assert_eq!(r.raw, simple_reply(1, DEMO_HELLO));
        let mut c = srv.connect();
        c.send(&get(1, 0, "/stream?n=6&ms=300"));
        // The first chunk proves the request is in flight.
        let (first, _) = c.record();
        assert!(first.content.ends_with(b"chunk 1\n"), "{first:?}");
        srv.backend.proc.signal(Signal::SIGTERM);
        assert!(
            eventually(Duration::from_secs(20), || refused(&srv.addr)),
            "{t:?}: still accepting after SIGTERM"
        );
        idle.assert_closed_silently("idle kept-alive connection at SIGTERM");
        let mut rest = c.reply(1);
        let mut stdout = first.content.clone();
        stdout.append(&mut rest.stdout);
        let body = find(&stdout, b"\r\n\r\n").map(|i| &stdout[i + 4..]);
        assert_eq!(
            body,
            Some(&b"chunk 1\nchunk 2\nchunk 3\nchunk 4\nchunk 5\nchunk 6\n"[..]),
            "{t:?}"
        );
        assert_eq!(
            (rest.app_status, rest.protocol_status),
            (0, REQUEST_COMPLETE)
        );
        assert!(eventually(Duration::from_secs(30), || srv
            .backend
            .proc
            .has_exited()));
        let status = srv.backend.stop().expect("exit status");
        assert_eq!(status.code(), Some(0), "{t:?}: {}", srv.backend.output());
        if let Addr::Unix(p) = &srv.addr {
            assert!(!p.exists(), "socket file {} left behind", p.display());
        }
    }
}

/// A second SIGTERM during the grace period exits at once with a non-zero status.
#[test]
fn second_sigterm_exits_at_once() {
    for t in BOTH {
        let mut srv = Server::demo(t, &["--shutdown-timeout", "120"]);
        let mut c = srv.connect();
        c.send(&get(1, 0, "/stream?n=1000&ms=100"));
        let (first, _) = c.record();
        assert_eq!(first.record_type, STDOUT);
        srv.backend.proc.signal(Signal::SIGTERM);
        // Once connections are refused the first signal has been taken.
        assert!(eventually(Duration::from_secs(20), || refused(&srv.addr)));
        assert!(
            !srv.backend.proc.has_exited(),
            "exited before the stream ended"
        );
        srv.backend.proc.signal(Signal::SIGTERM);
        assert!(
            eventually(Duration::from_secs(20), || srv.backend.proc.has_exited()),
            "{t:?}: second SIGTERM did not stop the process"
        );
        let status = srv.backend.stop().expect("exit status");
        assert_ne!(status.code(), Some(0), "{t:?}: {status:?}");
        assert!(
            status.code().is_some(),
            "{t:?}: killed by a signal: {status:?}"
        );
    }
}
