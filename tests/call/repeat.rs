//! `cgate call --repeat` (one event loop over kept connections): a backend
//! that closes every connection after its reply, and one that never answers.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};

use super::{call, sock_arg, text};
use crate::support::TempDir;

/// Reads records up to the empty STDIN; `None` when the client closed first.
fn read_request(c: &mut UnixStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut at = 0;
        while got.len() >= at + 8 {
            let len = usize::from(u16::from_be_bytes([got[at + 4], got[at + 5]]));
            let total = 8 + len + usize::from(got[at + 6]);
            if got.len() < at + total {
                break;
            }
            if got[at + 1] == 5 && len == 0 {
                return Some(got);
            }
            at += total;
        }
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One STDOUT record with `Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok`, the
/// empty STDOUT and END_REQUEST (request id 1).
fn reply() -> Vec<u8> {
    let body = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok";
    let mut out = vec![1, 6, 0, 1, 0, body.len() as u8, 0, 0];
    out.extend_from_slice(body);
    out.extend_from_slice(&[1, 6, 0, 1, 0, 0, 0, 0]);
    out.extend_from_slice(&[1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out
}

#[test]
fn a_backend_closing_each_kept_connection_costs_no_request() {
    let dir = TempDir::new("call-closing");
    let sock = dir.join("closing.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    // Serves one request per connection (it ignores FCGI_KEEP_CONN) and counts them.
    let server = std::thread::spawn(move || {
        let mut served = 0;
        while served < 40 {
            let (mut c, _) = listener.accept().unwrap();
            if read_request(&mut c).is_some() {
                c.write_all(&reply()).unwrap();
                served += 1;
            }
        }
        served
    });
    let out = call(&[&sock_arg(&sock), "--repeat", "40", "--expect", "200", "/"]);
    assert!(
        text(&out.stdout).starts_with("requests 40  errors 0  "),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(server.join().unwrap(), 40, "each request ran exactly once");
}

#[test]
fn repeat_against_a_backend_that_never_answers_times_out_each_request() {
    let dir = TempDir::new("call-repeat-mute");
    let sock = dir.join("mute.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    // Takes every request whole and answers none; holds each connection until it closes.
    let holder = std::thread::spawn(move || {
        let mut requests = 0;
        let mut held = Vec::new();
        while requests < 3 {
            let (mut c, _) = listener.accept().unwrap();
            if read_request(&mut c).is_some() {
                requests += 1;
            }
            held.push(c);
        }
        for mut c in held {
            let mut rest = Vec::new();
            let _ = c.read_to_end(&mut rest);
        }
        requests
    });
    let out = call(&[&sock_arg(&sock), "--timeout", "0.3", "--repeat", "3", "/"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("requests 3  errors 3  "),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("no progress in 300ms"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(holder.join().unwrap(), 3);
}

/// The STDIN bytes of one request (the contents of its STDIN records, in order).
fn stdin_of(request: &[u8]) -> Vec<u8> {
    let mut at = 0;
    let mut body = Vec::new();
    while at + 8 <= request.len() {
        let len = usize::from(u16::from_be_bytes([request[at + 4], request[at + 5]]));
        if request[at + 1] == 5 {
            body.extend_from_slice(&request[at + 8..at + 8 + len]);
        }
        at += 8 + len + usize::from(request[at + 6]);
    }
    body
}

#[test]
fn repeat_posts_go_out_whole_on_every_kept_connection() {
    let dir = TempDir::new("call-repeat-post");
    let sock = dir.join("post.sock");
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let file = dir.join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let listener = UnixListener::bind(&sock).unwrap();
    // Four kept connections, 15 requests each; every body is checked byte for byte.
    let expected = body.clone();
    let server = std::thread::spawn(move || {
        let conns: Vec<_> = (0..4).map(|_| listener.accept().unwrap().0).collect();
        let handlers: Vec<_> = conns
            .into_iter()
            .map(|mut c| {
                let expected = expected.clone();
                std::thread::spawn(move || {
                    let mut right = 0;
                    while let Some(req) = read_request(&mut c) {
                        right += usize::from(stdin_of(&req) == expected);
                        c.write_all(&reply()).unwrap();
                    }
                    right
                })
            })
            .collect();
        handlers
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<usize>()
    });
    let data = format!("@{}", file.display());
    let args = [
        &sock_arg(&sock),
        "-X",
        "POST",
        "-d",
        &data,
        "--repeat",
        "60",
    ];
    let out = call(&[&args[..], &["--concurrency", "4", "--expect", "200", "/"]].concat());
    assert!(
        text(&out.stdout).starts_with("requests 60  errors 0  "),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        server.join().unwrap(),
        60,
        "every request carried the whole body"
    );
}

#[test]
fn repeat_reads_replies_whose_records_span_reads() {
    let dir = TempDir::new("call-repeat-big");
    let sock = dir.join("big.sock");
    // 200,000 body bytes: full 65,535-byte STDOUT records, each longer than one read.
    let _b = super::peers::cgate(&sock, &["--app", "bytes:200000"]);
    let out = call(&[
        &sock_arg(&sock),
        "--repeat",
        "50",
        "--concurrency",
        "4",
        "--expect",
        "200",
    ]);
    assert!(
        text(&out.stdout).starts_with("requests 50  errors 0  "),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn repeat_against_nobody_counts_every_request_failed_and_exits_3() {
    let dir = TempDir::new("call-repeat-nobody");
    let gone = sock_arg(&dir.join("nobody.sock"));
    // Every request fails at once: the load must go through all of them without growing.
    let out = call(&[&gone, "--repeat", "100000", "--concurrency", "2", "/"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("requests 100000  errors 100000  "),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("connect:"),
        "{}",
        text(&out.stderr)
    );
}
