//! Never end or close while the web server is still sending: late empty STDIN (Caddy, cgi-fcgi) and unread bodies.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::thread;

use crate::client::*;
use crate::server::*;

/// GET_VALUES for FCGI_MAX_CONNS: its result is a gate. The server handles records in order,
/// so once the result is back, every record sent before it has been acted on.
fn get_values_gate() -> Vec<u8> {
    rec(GET_VALUES, 0, &nv(&[(b"FCGI_MAX_CONNS", b"")]), 0)
}

/// Reads the next record and asserts it is the GET_VALUES_RESULT of [`get_values_gate`].
fn expect_gate(c: &mut Conn, what: &str) {
    let (r, _) = c.record();
    assert_eq!(
        (r.record_type, r.id),
        (GET_VALUES_RESULT, 0),
        "{what}: the server sent {r:?} before the empty STDIN record"
    );
}

/// Caddy and `cgi-fcgi` write BEGIN and PARAMS, start reading, and write the empty STDIN
/// record afterwards. Nothing of the reply (and no close) may come before that record: the
/// peer's late write would meet a closed socket (EPIPE, caddy's 502).
#[test]
fn late_empty_stdin_is_awaited_before_reply_and_close() {
    for t in BOTH {
        let srv = Server::start(t, "hello", &[]);
        for flags in [0, KEEP_CONN] {
            let mut c = srv.connect();
            let mut head = begin(1, RESPONDER, flags, 0);
            head.extend(stream(PARAMS, 1, &params("GET", "/", &[]), 65535, 0));
            head.extend(get_values_gate());
            c.send(&head);
            expect_gate(&mut c, &format!("{t:?} flags {flags}"));
            // The late empty STDIN record must be accepted, then the whole reply follows.
            c.write_all(&rec(STDIN, 1, b"", 0))
                .unwrap_or_else(|e| panic!("{t:?}: late empty STDIN: {e}"));
            assert_eq!(c.reply(1).raw, simple_reply(1, HELLO), "{t:?}");
            if flags == 0 {
                c.assert_closed_silently("after the reply without FCGI_KEEP_CONN");
            } else {
                let r = c.roundtrip(1, &get(1, KEEP_CONN, "/"));
                assert_eq!(r.raw, simple_reply(1, HELLO), "{t:?}: next request");
            }
        }
    }
}

/// The real `cgi-fcgi -bind -connect` (libfcgi) against `--app hello`: exit 0 with the exact
/// reply every time (it exited 32, EPIPE, when the server closed before its empty STDIN).
#[test]
fn cgi_fcgi_connect_gets_hello_every_time() {
    let srv = Server::start(Transport::Unix, "hello", &[]);
    let Addr::Unix(path) = &srv.addr else {
        unreachable!("a Unix server")
    };
    for i in 0..30 {
        let out = Command::new("cgi-fcgi")
            .args(["-bind", "-connect"])
            .arg(path)
            .env_clear()
            .envs([
                ("REQUEST_METHOD", "GET"),
                ("SCRIPT_NAME", "/"),
                ("QUERY_STRING", ""),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("cgi-fcgi runs (Debian package libfcgi-bin)");
        assert_eq!(
            (out.status.code(), out.stdout.as_slice()),
            (Some(0), HELLO),
            "run {i}: stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A POST whose body `hello` never reads, sent whole by a writer thread; returns whether the
/// writer got all of it out (the server kept reading until the empty STDIN record).
fn unread_post(c: &Conn, flags: u8, len: usize) -> thread::JoinHandle<bool> {
    let cl = len.to_string();
    let p = params("POST", "/", &[(b"CONTENT_LENGTH", cl.as_bytes())]);
    let body = crate::support::data(len, 7);
    let mut req = begin(1, RESPONDER, flags, 0);
    req.extend(stream(PARAMS, 1, &p, 65535, 0));
    req.extend(stream(STDIN, 1, &body, 65535, 0));
    let mut w = c.try_clone();
    thread::spawn(move || w.write_all(&req).is_ok())
}

/// 64 KiB and 1 MiB bodies the app never reads: the server reads and discards the rest of
/// STDIN up to its empty record, then sends the reply and END_REQUEST, and the kept-alive
/// connection carries the next request; without FCGI_KEEP_CONN it closes only after the
/// peer has written the whole request.
#[test]
fn unread_body_is_read_to_its_end_then_next_request() {
    for t in BOTH {
        let srv = Server::start(t, "hello", &[]);
        for len in [64 * 1024, 1024 * 1024] {
            let mut c = srv.connect();
            let writer = unread_post(&c, KEEP_CONN, len);
            assert_eq!(c.reply(1).raw, simple_reply(1, HELLO), "{t:?} {len}");
            assert!(
                writer.join().expect("writer"),
                "{t:?} {len}: body write failed"
            );
            let r = c.roundtrip(1, &get(1, KEEP_CONN, "/"));
            assert_eq!(r.raw, simple_reply(1, HELLO), "{t:?} {len}: next request");

            let mut c = srv.connect();
            let writer = unread_post(&c, 0, len);
            assert_eq!(c.reply(1).raw, simple_reply(1, HELLO), "{t:?} {len}");
            assert!(
                writer.join().expect("writer"),
                "{t:?} {len}: closed while the peer was still writing"
            );
            c.assert_closed_silently("after the reply without FCGI_KEEP_CONN");
        }
    }
}

/// A request refused without FCGI_KEEP_CONN while its records are still on the way (an
/// unknown role here): the server answers, stops writing, and lingers, reading and
/// discarding until the peer is done, so the peer's later writes still succeed.
#[test]
fn refused_request_lingers_while_the_peer_writes() {
    for t in BOTH {
        let srv = Server::start(t, "hello", &[]);
        let mut c = srv.connect();
        c.send(&begin(1, 2, 0, 0));
        let r = c.reply(1);
        assert_eq!(r.protocol_status, UNKNOWN_ROLE, "{t:?}");
        // The writing side is shut: end of stream, while the socket still takes our bytes.
        let mut byte = [0u8; 1];
        assert_eq!(c.read(&mut byte).expect("read"), 0, "{t:?}");
        let mut rest = stream(PARAMS, 1, &params("GET", "/", &[]), 65535, 0);
        rest.extend(stream(STDIN, 1, &vec![b'r'; 1 << 20], 65535, 0));
        let writer = thread::spawn({
            let mut w = c.try_clone();
            move || w.write_all(&rest).map_err(|e| e.to_string())
        });
        assert_eq!(
            writer.join().expect("writer"),
            Ok(()),
            "{t:?}: the late records"
        );
        drop(c);
        srv.assert_serves_hello("after the lingering close");
    }
}
