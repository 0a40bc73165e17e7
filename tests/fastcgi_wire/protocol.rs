//! Record-level protocol over real sockets: GET_VALUES, unknown type/role/version, multiplexing, keep-conn.

use crate::client::*;
use crate::server::*;

/// The exact GET_VALUES_RESULT for the three standard names.
fn values_result(max_conns: &str, max_reqs: &str, mpxs: &str) -> Vec<u8> {
    let body = nv(&[
        (b"FCGI_MAX_CONNS", max_conns.as_bytes()),
        (b"FCGI_MAX_REQS", max_reqs.as_bytes()),
        (b"FCGI_MPXS_CONNS", mpxs.as_bytes()),
    ]);
    server_rec(GET_VALUES_RESULT, 0, &body)
}

fn get_values_query(padding: u8) -> Vec<u8> {
    let body = nv(&[
        (b"FCGI_MAX_CONNS", b""),
        (b"FCGI_MAX_REQS", b""),
        (b"FCGI_MPXS_CONNS", b""),
    ]);
    rec(GET_VALUES, 0, &body, padding)
}

/// php-src bug 76922: GET_VALUES gets truthful answers and the connection stays usable.
#[test]
fn get_values_truthful_and_connection_usable() {
    for t in BOTH {
        for (args, conns) in [(&[][..], "1024"), (&["--max-conns", "7"][..], "7")] {
            let srv = Server::start(t, "hello", args);
            let mut c = srv.connect();
            c.send(&get_values_query(0));
            let (_, raw) = c.record();
            assert_eq!(raw, values_result(conns, conns, "0"), "{t:?} {args:?}");
            // Only the names asked for, each once; unknown names are left out.
            c.send(&rec(
                GET_VALUES,
                0,
                &nv(&[
                    (b"FCGI_MPXS_CONNS", b""),
                    (b"NO_SUCH", b""),
                    (b"FCGI_MPXS_CONNS", b""),
                ]),
                3,
            ));
            let (_, raw) = c.record();
            assert_eq!(
                raw,
                server_rec(GET_VALUES_RESULT, 0, &nv(&[(b"FCGI_MPXS_CONNS", b"0")]))
            );
            let r = c.roundtrip(1, &get(1, KEEP_CONN, "/"));
            assert_eq!(
                r.raw,
                simple_reply(1, HELLO),
                "{t:?}: request after GET_VALUES"
            );
            c.send(&get_values_query(7));
            assert_eq!(c.record().1, values_result(conns, conns, "0"));
        }
    }
}

/// FastCGI spec 4.2: an unknown management record type gets UNKNOWN_TYPE, exact bytes.
#[test]
fn unknown_record_type_answered_with_unknown_type() {
    for t in BOTH {
        let srv = Server::start(t, "hello", &[]);
        let mut c = srv.connect();
        for type_byte in [42u8, 200, END, STDOUT] {
            c.send(&rec(type_byte, 0, b"abc", 5));
            let (_, raw) = c.record();
            let mut want = vec![1, UNKNOWN_TYPE, 0, 0, 0, 8, 0, 0];
            want.extend_from_slice(&[type_byte, 0, 0, 0, 0, 0, 0, 0]);
            assert_eq!(raw, want, "{t:?} type {type_byte}");
        }
        // Unknown types on a request id are ignored; the connection keeps working.
        c.send(&rec(42, 1, b"zzz", 0));
        let r = c.roundtrip(1, &get(1, 0, "/"));
        assert_eq!(r.raw, simple_reply(1, HELLO));
    }
}

/// FastCGI spec 5.1: Authorizer, Filter and unknown roles get END_REQUEST(UNKNOWN_ROLE).
#[test]
fn unknown_role_rejected_with_unknown_role() {
    for t in BOTH {
        let srv = Server::start(t, "hello", &[]);
        let mut c = srv.connect();
        for (i, role) in [2u16, 3, 999, 0].into_iter().enumerate() {
            let id = 10 + i as u16;
            let mut req = begin(id, role, KEEP_CONN, 0);
            req.extend(stream(PARAMS, id, &params("GET", "/", &[]), 65535, 0));
            req.extend(stream(STDIN, id, b"ignored", 65535, 0));
            c.send(&req);
            let (_, raw) = c.record();
            assert_eq!(raw, end_request(id, 0, UNKNOWN_ROLE), "{t:?} role {role}");
        }
        // The rejected requests' PARAMS and STDIN were dropped: the next one is served.
        let r = c.roundtrip(1, &get(1, KEEP_CONN, "/"));
        assert_eq!(r.raw, simple_reply(1, HELLO));
        // Without FCGI_KEEP_CONN the server closes after the rejection.
        c.send(&begin(2, 2, 0, 0));
        assert_eq!(c.record().1, end_request(2, 0, UNKNOWN_ROLE));
        c.assert_closed_silently("after UNKNOWN_ROLE without keep-conn");
    }
}

/// FastCGI spec 5.1 / FCGI_MPXS_CONNS=0: a second BEGIN while one request is active gets
/// CANT_MPX_CONN; the first request is still served, with its own body.
#[test]
fn second_begin_gets_cant_mpx_conn() {
    for t in BOTH {
        let srv = Server::start(t, "echo", &[]);
        let mut c = srv.connect();
        // While PARAMS is being collected.
        let p = params("POST", "/a", &[(b"CONTENT_LENGTH", b"3")]);
        let mut first = begin(1, RESPONDER, KEEP_CONN, 0);
        first.extend(rec(PARAMS, 1, &p, 0));
        first.extend(begin(2, RESPONDER, KEEP_CONN, 0));
        c.send(&first);
        assert_eq!(c.record().1, end_request(2, 0, CANT_MPX_CONN), "{t:?}");
        // While the app reads the body.
        c.send(&rec(PARAMS, 1, b"", 0));
        c.send(&rec(STDIN, 1, b"x", 0));
        c.send(&begin(3, RESPONDER, 0, 0));
        assert_eq!(c.record().1, end_request(3, 0, CANT_MPX_CONN), "{t:?}");
        c.send(&rec(STDIN, 3, b"NOT", 0));
        let mut rest = rec(STDIN, 1, b"yz", 0);
        rest.extend(rec(STDIN, 1, b"", 0));
        let r = c.roundtrip(1, &rest);
        assert_eq!(r.status(), 200);
        let j = r.json();
        assert_eq!(j["input"]["length"], 3);
        assert_eq!(j["input"]["sha256"], crate::support::sha256_hex(b"xyz"));
        assert_eq!(j["environ"]["PATH_INFO"], "/a");
        assert_eq!((r.app_status, r.protocol_status), (0, REQUEST_COMPLETE));
    }
}

/// FastCGI spec 3.3: a version byte other than 1 closes the connection; others are served.
#[test]
fn bad_version_closes_connection() {
    for t in BOTH {
        let srv = Server::start(t, "hello", &[]);
        for version in [0u8, 2, 255] {
            let mut c = srv.connect();
            let mut bad = get(1, KEEP_CONN, "/");
            bad[0] = version;
            c.send_lossy(&bad);
            c.assert_closed_silently("bad version");
            // The same, after a good request on a kept-alive connection.
            let mut c = srv.connect();
            let r = c.roundtrip(1, &get(1, KEEP_CONN, "/"));
            assert_eq!(r.raw, simple_reply(1, HELLO));
            let mut bad = rec(GET_VALUES, 0, b"", 0);
            bad[0] = version;
            c.send_lossy(&bad);
            c.assert_closed_silently("bad version after a request");
            srv.assert_serves_hello("after a bad version");
        }
    }
}

/// nginx-tests fastcgi_keepalive.t: 100 requests on one kept-alive connection, each exact;
/// without FCGI_KEEP_CONN the server closes after END_REQUEST.
#[test]
fn keep_conn_serves_many_and_closes_without_it() {
    for t in BOTH {
        let srv = Server::start(t, "hello", &[]);
        let mut c = srv.connect();
        for i in 0..100u16 {
            let id = 1 + i % 3;
            let r = c.roundtrip(id, &get(id, KEEP_CONN, "/"));
            assert_eq!(r.raw, simple_reply(id, HELLO), "{t:?} request {i}");
            assert_eq!((r.app_status, r.protocol_status), (0, REQUEST_COMPLETE));
        }
        let r = c.roundtrip(7, &get(7, 0, "/"));
        assert_eq!(r.raw, simple_reply(7, HELLO));
        c.assert_closed_silently("after a request without FCGI_KEEP_CONN");
    }
}

/// A CONTENT_LENGTH above `--max-body` does not raise the bound: the body the app left
/// unread is skipped only up to `--max-body`, then the connection closes (before, the bound
/// was the declared length, so a peer declaring 10^12 bytes kept cgate reading and
/// discarding until the request deadline).
#[test]
fn a_declared_length_over_max_body_does_not_raise_the_bound() {
    for t in BOTH {
        let srv = Server::start(
            t,
            "hello",
            &["--max-body", "100000", "--request-timeout", "65"],
        );
        let mut c = srv.connect();
        let p = params("POST", "/", &[(b"CONTENT_LENGTH", b"1000000000000")]);
        let mut req = begin(1, RESPONDER, KEEP_CONN, 0);
        req.extend(stream(PARAMS, 1, &p, 65535, 0));
        for _ in 0..7 {
            req.extend(rec(STDIN, 1, &[b'w'; 16384], 0));
        }
        c.send_lossy(&req);
        c.assert_closed_silently("after a body over --max-body");
        srv.assert_serves_hello("after the refused body");
    }
}

/// Exactly-once framing: a body the app never reads is read to the end of its STDIN stream
/// before the reply goes out, so the next request on the kept-alive connection starts clean,
/// even when the empty STDIN record comes long after the app finished; a body over the
/// bound (`--max-body` here) closes the connection instead.
#[test]
fn unread_body_skipped_or_connection_closed() {
    for t in BOTH {
        let srv = Server::start(t, "hello", &["--max-body", "100000"]);
        let mut c = srv.connect();
        let p = params("POST", "/", &[]);
        let mut req = begin(1, RESPONDER, KEEP_CONN, 0);
        req.extend(stream(PARAMS, 1, &p, 65535, 0));
        req.extend(stream(STDIN, 1, &[b'u'; 1000], 100, 0));
        assert_eq!(c.roundtrip(1, &req).raw, simple_reply(1, HELLO), "{t:?}");
        // 80 KiB, then the STDIN stream's end in a later write: the reply follows it.
        let mut req = begin(1, RESPONDER, KEEP_CONN, 0);
        req.extend(stream(PARAMS, 1, &p, 65535, 0));
        for _ in 0..5 {
            req.extend(rec(STDIN, 1, &[b'v'; 16384], 0));
        }
        c.send(&req);
        assert_eq!(
            c.roundtrip(1, &rec(STDIN, 1, b"", 0)).raw,
            simple_reply(1, HELLO),
            "{t:?}"
        );
        assert_eq!(
            c.roundtrip(1, &get(1, KEEP_CONN, "/")).raw,
            simple_reply(1, HELLO)
        );
        // Over --max-body without CONTENT_LENGTH: closed, no reply.
        let mut req = begin(1, RESPONDER, KEEP_CONN, 0);
        req.extend(stream(PARAMS, 1, &p, 65535, 0));
        for _ in 0..7 {
            req.extend(rec(STDIN, 1, &[b'w'; 16384], 0));
        }
        c.send_lossy(&req);
        c.assert_closed_silently("after a body over --max-body");
        srv.assert_serves_hello("after an unread body");
    }
}
