//! Request metadata through the real server: CONTENT_LENGTH strictness, short bodies, httpoxy, non-UTF-8 params.

use crate::client::*;
use crate::server::*;
use crate::support::sha256_hex;

/// The exact 400 the gateway sends for an invalid CONTENT_LENGTH.
const BAD_REQUEST: &[u8] =
    b"Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 12\r\n\r\nBad Request\n";

/// CVE-2023-38697: only `[0-9]+` in range is a CONTENT_LENGTH; anything else is a 400 that
/// never reaches the app.
#[test]
fn lenient_content_length_rejected_with_400() {
    for t in BOTH {
        let srv = Server::start(t, "echo", &[]);
        for cl in [
            "+5",
            "0x10",
            "-1",
            " 5",
            "5 ",
            "1e3",
            "18446744073709551616",
            "99999999999999999999999",
        ] {
            let mut c = srv.connect();
            let p = params("POST", "/", &[(b"CONTENT_LENGTH", cl.as_bytes())]);
            let r = c.roundtrip(1, &request(1, 0, &p, b"hello"));
            assert_eq!(r.stdout, BAD_REQUEST, "{t:?} CONTENT_LENGTH {cl:?}");
            assert!(
                r.stderr.starts_with(b"cgate: 400 Bad Request"),
                "{cl:?}: {}",
                String::from_utf8_lossy(&r.stderr)
            );
            assert_eq!((r.app_status, r.protocol_status), (0, REQUEST_COMPLETE));
        }
        // A valid one on the same server, as a control.
        let mut c = srv.connect();
        let p = params("POST", "/", &[(b"CONTENT_LENGTH", b"5")]);
        let r = c.roundtrip(1, &request(1, 0, &p, b"hello"));
        assert_eq!(r.status(), 200);
        assert_eq!(r.json()["input"]["sha256"], sha256_hex(b"hello"));
    }
}

/// CVE-2025-23016 pattern: CONTENT_LENGTH far larger than the body. Nothing is allocated from
/// it; the app sees the bytes that came, then an error (echo answers 400 with it).
#[test]
fn content_length_larger_than_body_gets_error_not_hang() {
    for t in BOTH {
        let srv = Server::start(t, "echo", &[]);
        for cl in ["100", "1000000000000"] {
            let mut c = srv.connect();
            let p = params("POST", "/", &[(b"CONTENT_LENGTH", cl.as_bytes())]);
            let r = c.roundtrip(1, &request(1, KEEP_CONN, &p, b"hello"));
            assert_eq!(r.status(), 400, "{t:?} {cl}");
            let j = r.json();
            assert_eq!(j["received"], 5, "{t:?} {cl}: {j}");
            assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{j}");
            // The connection survives: the body's end was seen.
            let p = params("POST", "/", &[(b"CONTENT_LENGTH", b"2")]);
            let r = c.roundtrip(1, &request(1, 0, &p, b"ok"));
            assert_eq!(r.json()["input"]["sha256"], sha256_hex(b"ok"));
        }
    }
}

/// Exactly-once framing: without CONTENT_LENGTH the body is read to the end of STDIN; with
/// one, bytes past it are not body.
#[test]
fn body_without_content_length_read_to_stdin_end() {
    for t in BOTH {
        let srv = Server::start(t, "echo", &[]);
        let mut c = srv.connect();
        let body: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 256) as u8).collect();
        let r = c.roundtrip(1, &request(1, KEEP_CONN, &params("POST", "/", &[]), &body));
        let j = r.json();
        assert_eq!(j["input"]["length"], body.len(), "{t:?}");
        assert_eq!(j["input"]["sha256"], sha256_hex(&body), "{t:?}");
        // CONTENT_LENGTH shorter than STDIN: the app sees exactly CONTENT_LENGTH bytes, and
        // the rest never reaches the next request on the connection.
        let p = params("POST", "/", &[(b"CONTENT_LENGTH", b"4")]);
        let r = c.roundtrip(1, &request(1, KEEP_CONN, &p, b"bodyEXTRA"));
        assert_eq!(r.json()["input"]["sha256"], sha256_hex(b"body"));
        let r = c.roundtrip(
            1,
            &request(1, KEEP_CONN, &params("POST", "/", &[]), b"next"),
        );
        assert_eq!(r.json()["input"]["sha256"], sha256_hex(b"next"), "{t:?}");
    }
}

/// CVE-2016-5385 (httpoxy): HTTP_PROXY from the web server never reaches the app.
#[test]
fn httpoxy_param_never_reaches_app() {
    for t in BOTH {
        let srv = Server::start(t, "echo", &[]);
        let mut c = srv.connect();
        let p = params(
            "GET",
            "/",
            &[
                (b"HTTP_PROXY", b"http://evil.example:8080"),
                (b"HTTP_X_CONTROL", b"seen"),
            ],
        );
        let r = c.roundtrip(1, &request(1, 0, &p, b""));
        let env = &r.json()["environ"];
        assert_eq!(env["HTTP_X_CONTROL"], "seen", "{t:?}");
        assert!(env.get("HTTP_PROXY").is_none(), "{t:?}: {env}");
        assert!(find(&r.stdout, b"evil.example").is_none(), "{t:?}");
    }
}

/// PEP 3333 bytes: non-UTF-8 param names and values survive (shown as ISO-8859-1 and listed
/// under non_utf8).
#[test]
fn non_utf8_params_survive() {
    for t in BOTH {
        let srv = Server::start(t, "echo", &[]);
        let mut c = srv.connect();
        let p = params(
            "GET",
            "/",
            &[(b"HTTP_X_BIN", b"\xff\xfe\x80a"), (b"X_\xe9", b"ok")],
        );
        let r = c.roundtrip(1, &request(1, 0, &p, b""));
        let j = r.json();
        assert_eq!(j["environ"]["HTTP_X_BIN"], "\u{ff}\u{fe}\u{80}a", "{t:?}");
        assert_eq!(j["environ"]["X_\u{e9}"], "ok", "{t:?}");
        let mut listed: Vec<&str> = j["non_utf8"]
            .as_array()
            .expect("non_utf8 list")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        listed.sort_unstable();
        assert_eq!(listed, ["HTTP_X_BIN", "X_\u{e9}"], "{t:?}");
    }
}
