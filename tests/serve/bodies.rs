//! Request and response bodies: large and chunked uploads, 100-continue, streamed replies, a client that leaves.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::http::{Conn, Framing, chunked, request};
use crate::support::{TIMEOUT, TempDir, data, sha256_hex, write_script};
use crate::{Serve, cgi_dir, environ_of, open_gate};

pub(crate) fn input_of(body: &[u8]) -> (u64, String) {
    let v: Value = serde_json::from_slice(body).expect("echo JSON");
    let len = v["input"]["length"].as_u64().expect("length");
    (len, v["input"]["sha256"].as_str().expect("sha").to_owned())
}

/// Reads the interim `100 Continue` response (hyper sends it at the app's first body read).
pub(crate) fn read_100_continue(c: &mut Conn) {
    assert_eq!(
        c.read_line("interim").expect("100"),
        "HTTP/1.1 100 Continue"
    );
    assert_eq!(c.read_line("interim end").expect("blank"), "");
}

#[test]
fn post_64_mib_arrives_whole() {
    let s = Serve::start(&["--app", "echo"]);
    let body = data(64 << 20, 7);
    let r = request("POST", s.port, "/upload", &[], &body);
    assert_eq!(r.status, 200, "{}", s.log());
    assert_eq!(input_of(&r.body), (64 << 20, sha256_hex(&body)));
    assert_eq!(
        environ_of(&r.body)["CONTENT_LENGTH"],
        (64u64 << 20).to_string()
    );
}

#[test]
fn chunked_upload_is_dechunked_without_a_length() {
    let s = Serve::start(&["--app", "echo", "--max-body", "100000"]);
    let pieces = [&b"hello "[..], &data(70_000, 3), b"world"];
    let whole: Vec<u8> = pieces.concat();
    let te = [("Transfer-Encoding", "chunked")];
    let r = request("PUT", s.port, "/c", &te, &chunked(&pieces));
    assert_eq!(r.status, 200, "{}", s.log());
    assert_eq!(input_of(&r.body), (whole.len() as u64, sha256_hex(&whole)));
    let env = environ_of(&r.body);
    assert_eq!(env["CONTENT_LENGTH"], "");
    assert!(!env.contains_key("HTTP_TRANSFER_ENCODING"));

    // Past --max-body the app's read fails: echo answers its 400 with what it received.
    let big = data(100_001, 4);
    let r = request("PUT", s.port, "/c", &te, &chunked(&[&big]));
    assert_eq!(r.status, 400);
    let v: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(v["error"], "request body larger than the 100000-byte limit");
}

#[test]
fn expect_100_continue_then_body() {
    let s = Serve::start(&["--app", "echo"]);
    let mut c = Conn::open(s.port).expect("connect");
    let head = "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    c.write_raw(head.as_bytes()).expect("head");
    read_100_continue(&mut c);
    c.write_raw(b"12345").expect("body");
    let r = c.read_response("POST").expect("reply");
    assert_eq!(r.status, 200);
    assert_eq!(input_of(&r.body), (5, sha256_hex(b"12345")));
}

#[test]
fn streamed_reply_first_chunk_before_the_second() {
    let dir = TempDir::new("serve-stream");
    let cgi = cgi_dir(&dir);
    let s = Serve::start(&["--app", &format!("cgi:{}", cgi.display())]);
    let mut c = Conn::open(s.port).expect("connect");
    c.send_request("GET", "/slow.sh", &[], b"").expect("send");
    let head = c.read_head("GET").expect("head");
    assert_eq!(head.status, 200);
    assert_eq!(head.framing, Framing::Chunked);
    assert_eq!(head.header("content-type"), Some("text/plain"));
    let mut body = c.body(&head);
    // "one\n" arrives while the script is held at its gate: nothing waits for "two\n".
    assert_eq!(body.read_until(b"one\n").expect("first chunk"), b"one\n");
    open_gate(&cgi);
    assert_eq!(body.read_to_end().expect("rest"), b"one\ntwo\n");
    drop(body);
    s.wait_log("127.0.0.1 GET /slow.sh 200 8 ");
}

#[test]
fn client_gone_fails_the_apps_writes_and_runs_its_cleanup() {
    let dir = TempDir::new("serve-gone");
    let cgi = dir.subdir("cgi");
    let pidfile = dir.join("pid");
    let script = format!(
        "#!/bin/sh\necho $$ > {}\nprintf 'Content-Type: text/plain\\n\\n'\n\
         while :; do echo 'a line of endless output'; done\n",
        pidfile.display()
    );
    write_script(&cgi, "endless.sh", &script);
    let s = Serve::start(&["--app", &format!("cgi:{}", cgi.display())]);
    let mut c = Conn::open(s.port).expect("connect");
    c.send_request("GET", "/endless.sh", &[], b"")
        .expect("send");
    let head = c.read_head("GET").expect("head");
    assert_eq!(head.status, 200);
    let got = c.body(&head).read_at_least(100_000).expect("some output");
    assert!(got.starts_with(b"a line of endless output\n"));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    drop(c);
    // The next write of the script's output fails, the runner kills the script, reaps it.
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            start.elapsed() < TIMEOUT,
            "script {pid} still runs\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    s.wait_log("127.0.0.1 GET /endless.sh 200 ");
    let line = s
        .log()
        .lines()
        .find(|l| l.contains("GET /endless.sh"))
        .expect("access line")
        .to_owned();
    assert!(line.ends_with(" cut"), "{line}");
}
