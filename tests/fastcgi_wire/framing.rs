//! Record and pair framing over real sockets: padding, 1-byte writes, big params and records, hostile lengths.

use crate::client::*;
use crate::server::*;
use crate::support::sha256_hex;

/// An echo POST of `body` with an X-Test header, built with `padding` on every record and
/// streams cut into records of `chunk` bytes.
fn padded_post(id: u16, body: &[u8], chunk: usize, padding: u8) -> Vec<u8> {
    let len = body.len().to_string();
    let p = params(
        "POST",
        "/pad?q=1",
        &[(b"CONTENT_LENGTH", len.as_bytes()), (b"HTTP_X_TEST", b"v")],
    );
    let mut out = begin(id, RESPONDER, KEEP_CONN, padding);
    out.extend(stream(PARAMS, id, &p, chunk, padding));
    out.extend(stream(STDIN, id, body, chunk, padding));
    out
}

fn assert_echo(r: &Reply, body: &[u8], what: &str) {
    assert_eq!(r.status(), 200, "{what}");
    let j = r.json();
    assert_eq!(j["input"]["length"], body.len(), "{what}");
    assert_eq!(j["input"]["sha256"], sha256_hex(body), "{what}");
    assert_eq!(j["environ"]["HTTP_X_TEST"], "v", "{what}");
    assert_eq!(j["environ"]["QUERY_STRING"], "q=1", "{what}");
}

/// nginx padding desync: padding 1..=255 on BEGIN, PARAMS, STDIN, their empty ends,
/// GET_VALUES and ABORT of an unknown id; every answer equals the unpadded one.
#[test]
fn padding_1_to_255_on_every_record() {
    for t in BOTH {
        let srv = Server::start(t, "echo", &[]);
        let mut c = srv.connect();
        let body = b"padded body \x00\xff".to_vec();
        let plain = c.roundtrip(1, &padded_post(1, &body, 65535, 0));
        assert_echo(&plain, &body, "unpadded");
        for padding in 1..=255u8 {
            let mut req = rec(GET_VALUES, 0, &nv(&[(b"FCGI_MPXS_CONNS", b"")]), padding);
            req.extend(rec(ABORT, 9, b"", padding));
            req.extend(padded_post(1, &body, 5, padding));
            c.send(&req);
            let (_, raw) = c.record();
            assert_eq!(
                raw,
                server_rec(GET_VALUES_RESULT, 0, &nv(&[(b"FCGI_MPXS_CONNS", b"0")])),
                "{t:?} padding {padding}"
            );
            let r = c.reply(1);
            assert_eq!(r.raw, plain.raw, "{t:?} padding {padding}");
        }
    }
}

/// nginx-tests fastcgi_keepalive.t: a request written one byte per write gets the same
/// reply as one written at once.
#[test]
fn one_byte_writes_same_as_unsplit() {
    for t in BOTH {
        let srv = Server::start(t, "echo", &[]);
        let body: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let req = padded_post(1, &body, 1000, 3);
        let mut c = srv.connect();
        let whole = c.roundtrip(1, &req);
        assert_echo(&whole, &body, "unsplit");
        let mut c = srv.connect();
        c.send_bytewise(&req);
        let split = c.reply(1);
        assert_eq!(split.raw, whole.raw, "{t:?}: 1-byte writes");
        // Pairs split across PARAMS records at every offset give the same environ.
        let p = params(
            "POST",
            "/pad?q=1",
            &[(b"CONTENT_LENGTH", b"3"), (b"HTTP_X_TEST", b"v")],
        );
        for cut in 1..p.len() {
            let mut req = begin(1, RESPONDER, KEEP_CONN, 0);
            req.extend(rec(PARAMS, 1, &p[..cut], 0));
            req.extend(rec(PARAMS, 1, &p[cut..], 0));
            req.extend(rec(PARAMS, 1, b"", 0));
            req.extend(stream(STDIN, 1, b"abc", 1, 0));
            let r = c.roundtrip(1, &req);
            assert_echo(&r, b"abc", &format!("{t:?} params cut at {cut}"));
        }
    }
}

/// HAProxy length overflow: a 100 KiB header value (PARAMS over 64 KiB, a 4-byte length,
/// several records) and 65535-byte STDIN records arrive intact.
#[test]
fn big_params_and_full_size_records() {
    for t in BOTH {
        let srv = Server::start(t, "echo", &[]);
        let mut c = srv.connect();
        let big: String = (0..100 * 1024)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect();
        let body = crate::support::data(3 * 65535 + 17, 251);
        let len = body.len().to_string();
        let p = params(
            "POST",
            "/big",
            &[
                (b"HTTP_X_BIG", big.as_bytes()),
                (b"CONTENT_LENGTH", len.as_bytes()),
            ],
        );
        assert!(p.len() > 64 * 1024);
        let r = c.roundtrip(1, &request(1, KEEP_CONN, &p, &body));
        assert_eq!(r.status(), 200, "{t:?}");
        let j = r.json();
        assert_eq!(
            j["environ"]["HTTP_X_BIG"].as_str(),
            Some(big.as_str()),
            "{t:?}"
        );
        assert_eq!(j["input"]["length"], body.len());
        assert_eq!(j["input"]["sha256"], sha256_hex(&body));
        // Full 65535-byte records with maximal padding, kept-alive connection reused.
        let mut req = begin(2, RESPONDER, KEEP_CONN, 0);
        req.extend(stream(PARAMS, 2, &p, 65535, 255));
        req.extend(stream(STDIN, 2, &body, 65535, 255));
        let r2 = c.roundtrip(2, &req);
        assert_eq!(r2.stdout, r.stdout, "{t:?}: padded full-size records");
    }
}

/// Sends one hostile request on a fresh connection and asserts it is closed without a reply.
fn assert_rejected(srv: &Server, req: &[u8], what: &str) {
    let mut c = srv.connect();
    c.send_lossy(req);
    c.assert_closed_silently(what);
}

/// A PARAMS stream growing over the 1 MiB cap: 17 records of 65535 bytes, never ended.
fn endless_params() -> Vec<u8> {
    let mut req = begin(1, RESPONDER, KEEP_CONN, 0);
    let chunk = vec![b'p'; 65535];
    for _ in 0..17 {
        req.extend(rec(PARAMS, 1, &chunk, 0));
    }
    req
}

/// A pair declaring a 0x7fffffff-byte name (libfcgi CVE-2025-23016), then the end of PARAMS.
fn huge_name_length() -> Vec<u8> {
    let mut pair = vec![0xff, 0xff, 0xff, 0xff, 1];
    pair.extend_from_slice(b"NAMEv");
    let mut req = begin(1, RESPONDER, KEEP_CONN, 0);
    req.extend(stream(PARAMS, 1, &pair, 65535, 0));
    req
}

/// Go issue 81548 / libfcgi CVE-2025-23016: PARAMS over the cap and a 0x7fffffff name length
/// close the connection without a reply and without growing the process: RSS stays flat
/// over 50 attempts of each, the peak address space shows no peer-sized buffer; the
/// process keeps serving.
#[test]
fn params_over_cap_and_huge_lengths_close_with_flat_rss() {
    for t in BOTH {
        let srv = Server::start(t, "hello", &[]);
        let cases: [(&str, Vec<u8>); 2] = [
            ("PARAMS over 1 MiB", endless_params()),
            ("name length 0x7fffffff", huge_name_length()),
        ];
        let peak_before = status_kib(srv.pid(), "VmPeak");
        // Warm up allocator arenas and thread stacks before taking the baseline.
        for (what, req) in &cases {
            for _ in 0..5 {
                assert_rejected(&srv, req, what);
            }
        }
        srv.assert_serves_hello("after warm-up");
        let before = rss_kib(srv.pid());
        for (what, req) in &cases {
            for _ in 0..50 {
                assert_rejected(&srv, req, what);
            }
            srv.assert_serves_hello(what);
        }
        let after = rss_kib(srv.pid());
        assert!(
            after <= before + 8 * 1024,
            "{t:?}: RSS grew from {before} KiB to {after} KiB over 100 hostile requests"
        );
        // A buffer sized from the declared 0x7fffffff length would add 2 GiB of address
        // space, even if never touched and freed at once.
        let peak = status_kib(srv.pid(), "VmPeak");
        assert!(
            peak < peak_before + 1024 * 1024,
            "{t:?}: peak address space grew from {peak_before} KiB to {peak} KiB"
        );
    }
}

/// Go issue 11824: pair lengths beyond the PARAMS stream (and other malformed pairs) close
/// the connection cleanly; the process keeps serving.
#[test]
fn pair_lengths_beyond_record_close_cleanly() {
    let cases: [(&str, Vec<u8>); 5] = [
        ("value beyond the stream", {
            let mut p = vec![4, 100];
            p.extend_from_slice(b"NAME");
            p.extend_from_slice(&[b'v'; 50]);
            p
        }),
        ("name beyond the stream", vec![90, 0, b'N']),
        ("4-byte length cut short", vec![0x80, 0x00]),
        ("value 4-byte length over the value cap", {
            let mut p = vec![1, 0x80, 0x10, 0x00, 0x00];
            p.push(b'N');
            p
        }),
        ("too many pairs", [1u8, 0, b'A'].repeat(5000)),
    ];
    for t in BOTH {
        let srv = Server::start(t, "hello", &[]);
        for (what, pairs) in &cases {
            let mut req = begin(1, RESPONDER, KEEP_CONN, 0);
            req.extend(stream(PARAMS, 1, pairs, 65535, 0));
            req.extend(stream(STDIN, 1, b"", 65535, 0));
            assert_rejected(&srv, &req, what);
            srv.assert_serves_hello(what);
        }
        assert!(
            !srv.backend.output().contains("panicked"),
            "{}",
            srv.backend.output()
        );
    }
}
