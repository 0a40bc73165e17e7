//! `fcgi:` end to end: nginx -> cgate (`fcgi:`) -> real backends (cgate, php-fpm, Go, libfcgi);
//! bodies through the chain, streaming, worker recycling, every gateway, client aborts.

#[path = "../support/mod.rs"]
mod support;

mod failover;
mod parked;
mod peers;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::http::Conn;
use support::{Backend, Nginx, Ready, TempDir, cgate_bin, conf, data, request, sha256_hex};

/// `cgate fastcgi --listen unix:SOCK --app fcgi:...` (the forwarder under test).
pub fn front(sock: &Path, spec: &str) -> Backend {
    peers::cgate(sock, &["--app", spec])
}

/// nginx with the shipped upstream and site snippets, its upstream being `sock`.
pub fn nginx_to(sock: &Path) -> Nginx {
    Nginx::start_with(&conf::nginx_upstream(sock), &conf::nginx_site(true))
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[test]
fn posts_of_1m_and_64m_keep_their_sha256_through_the_chain() {
    let dir = TempDir::new("fwd-post");
    let back = dir.join("echo.sock");
    let _echo = peers::cgate(&back, &["--app", "echo"]);
    let sock = dir.join("front.sock");
    let _front = front(&sock, &format!("fcgi:unix:{}", back.display()));
    let nginx = nginx_to(&sock);
    for (len, seed) in [(1 << 20, 1), (64 << 20, 2), (0, 3)] {
        let body = data(len, seed);
        let method = if len == 0 { "GET" } else { "POST" };
        let r = request(method, nginx.port(), "/up?q=1", &[("X-Fwd", "yes")], &body);
        assert_eq!(r.status, 200, "{len}: {}", nginx.error_log());
        let v = json(&r.body);
        assert_eq!(v["input"]["length"], len, "{len}");
        assert_eq!(v["input"]["sha256"], sha256_hex(&body).as_str());
        assert_eq!(v["environ"]["QUERY_STRING"], "q=1");
        assert_eq!(v["environ"]["HTTP_X_FWD"], "yes");
        assert_eq!(v["environ"]["REQUEST_METHOD"], method);
        assert_eq!(v["gateway"]["kind"], "fastcgi");
    }
}

#[test]
fn the_first_chunk_reaches_the_client_before_the_second_is_written() {
    let dir = TempDir::new("fwd-stream");
    let cgi = dir.subdir("cgi");
    let gate = dir.join("gate.fifo");
    let status = Command::new("mkfifo")
        .arg(&gate)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    support::write_script(
        &cgi,
        "stream",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nfirst\\n'\nread go < \"$GATE\"\necho \"second $go\"\n",
    );
    let back = dir.join("cgi.sock");
    let spec = format!("cgi:{}", cgi.display());
    let mut cmd = Command::new(cgate_bin());
    cmd.arg("fastcgi")
        .arg("--listen")
        .arg(format!("unix:{}", back.display()));
    cmd.args(["--app", &spec, "--pass-env", "GATE"])
        .env("GATE", &gate);
    let _cgi = Backend::spawn("cgate-cgi", cmd, &[Ready::Unix(back.clone())]);
    let sock = dir.join("front.sock");
    let _front = front(&sock, &format!("fcgi:unix:{}", back.display()));
    let nginx = nginx_to(&sock);
    let mut conn = Conn::open(nginx.port()).expect("connect to nginx");
    conn.send_request("GET", "/stream", &[("Connection", "close")], b"")
        .unwrap();
    let head = conn.read_head("GET").expect("head before the gate opens");
    assert_eq!(head.status, 200);
    let mut body = conn.body(&head);
    // The script waits on the FIFO until this side has seen its first chunk.
    assert_eq!(body.read_until(b"first\n").unwrap(), b"first\n");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&gate)
        .unwrap()
        .write_all(b"go\n")
        .unwrap();
    assert_eq!(body.read_to_end().unwrap(), b"first\nsecond go\n");
}

/// Starts php-fpm pools, cgate as the shipped unit runs it, and nginx with the PHP snippet.
fn php_chain(dir: &TempDir, max_requests: u32) -> (Vec<peers::PhpFpm>, Backend, Nginx) {
    let pools: Vec<peers::PhpFpm> = ["a", "b"]
        .iter()
        .map(|n| peers::php_fpm(dir, n, 2, max_requests))
        .collect();
    let sock = dir.join("front.sock");
    let unit = conf::render(
        "fcgi/cgate-php-fpm.service",
        &[
            ("@CGATE@", cgate_bin().to_str().unwrap()),
            ("@SOCKET@", sock.to_str().unwrap()),
            ("@POOL_A@", pools[0].sock.to_str().unwrap()),
            ("@POOL_B@", pools[1].sock.to_str().unwrap()),
            ("@CHILDREN@", "2"),
        ],
    );
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("unit has ExecStart");
    let mut words = exec.split_whitespace();
    let mut cmd = Command::new(words.next().unwrap());
    cmd.args(words);
    let front = Backend::spawn("cgate-front", cmd, &[Ready::Unix(sock.clone())]);
    let root = dir.path().to_path_buf();
    let site = conf::render(
        "nginx/cgate-php.conf",
        &[("@SCRIPT_ROOT@", root.to_str().unwrap())],
    );
    let nginx = Nginx::start_with(&conf::nginx_upstream(&sock), &site);
    (pools, front, nginx)
}

#[test]
fn php_fpm_recycling_workers_every_10_requests_gives_no_errors() {
    let dir = TempDir::new("fwd-php");
    let (pools, _front, nginx) = php_chain(&dir, 10);
    let port = nginx.port();
    std::thread::scope(|s| {
        for t in 0..3u64 {
            s.spawn(move || {
                for i in 0..40u64 {
                    let body = if i % 2 == 0 {
                        Vec::new()
                    } else {
                        data(1000 + i as usize * 37, t * 100 + i)
                    };
                    let method = if body.is_empty() { "GET" } else { "POST" };
                    let r = request(method, port, &format!("/echo.php?t={t}&i={i}"), &[], &body);
                    assert_eq!(r.status, 200, "{method} {t}/{i}: {}", r.text());
                    let text = r.text();
                    assert!(
                        text.starts_with(&format!(
                            "length={}\nsha256={}\n",
                            body.len(),
                            sha256_hex(&body)
                        )),
                        "{text}"
                    );
                    assert!(
                        text.contains(&format!("param:QUERY_STRING=t={t}&i={i}\n")),
                        "{text}"
                    );
                }
            });
        }
    });
    drop(pools);
}

/// A backend that never answers: reads each connection until the peer closes and returns
/// the bytes of the first one that carried a request (the pool's GET_VALUES comes first).
pub(crate) fn mute_backend(sock: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let listener = UnixListener::bind(sock).unwrap();
    std::thread::spawn(move || {
        loop {
            let (mut c, _) = listener.accept().expect("accept");
            let mut got = Vec::new();
            let _ = c.read_to_end(&mut got);
            if got.first_chunk::<2>() == Some(&[1, 1]) {
                return got;
            }
        }
    })
}

/// Reads request 1 up to its empty STDIN record; returns its bytes.
fn read_to_stdin_end(c: &mut std::os::unix::net::UnixStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(&[1, 5, 0, 1, 0, 0, 0, 0]) {
        let n = c.read(&mut buf).expect("read the request");
        assert!(n > 0, "request ended early");
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// A backend that answers one request with `reply` (STDOUT content) once its STDIN ended.
fn raw_backend(sock: &Path, reply: &'static [u8]) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(sock).unwrap();
    std::thread::spawn(move || {
        let (mut c, _) = listener.accept().expect("accept");
        read_to_stdin_end(&mut c);
        let mut out = Vec::new();
        cgate::fastcgi::record::encode_record(
            &mut out,
            cgate::fastcgi::RecordType::Stdout,
            1,
            reply,
        );
        cgate::fastcgi::record::encode_end_request(
            &mut out,
            1,
            0,
            cgate::fastcgi::ProtocolStatus::RequestComplete,
        );
        c.write_all(&out).unwrap();
    })
}

#[test]
fn a_client_that_leaves_gets_the_backend_request_aborted() {
    let dir = TempDir::new("fwd-abort");
    let back = dir.join("mute.sock");
    let mute = mute_backend(&back);
    let sock = dir.join("front.sock");
    let _front = front(&sock, &format!("fcgi:unix:{};timeout=120", back.display()));
    let mut client = UnixStream::connect(&sock).unwrap();
    let mut req = Vec::new();
    cgate::fastcgi::client::Exchange::new(1, true)
        .begin(&mut req, [(&b"REQUEST_METHOD"[..], &b"GET"[..])]);
    req.extend_from_slice(&[1, 5, 0, 1, 0, 0, 0, 0]);
    client.write_all(&req).unwrap();
    // The request must be running (forwarded: the front connected to the backend) before
    // the client leaves; one that closed before it ran is not run at all.
    let back_path = back.display().to_string();
    let deadline = std::time::Instant::now() + crate::support::TIMEOUT;
    while std::fs::read_to_string("/proc/net/unix")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with(&format!(" {back_path}")))
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the request was never forwarded"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Leave as nginx does (it closes; it never sends ABORT_REQUEST).
    drop(client);
    let got = mute.join().unwrap();
    assert_eq!(&got[..8], &[1, 1, 0, 1, 0, 8, 0, 0], "BEGIN_REQUEST first");
    assert!(
        got.ends_with(&[1, 2, 0, 1, 0, 0, 0, 0]),
        "ABORT_REQUEST last, then close: {:?}",
        &got[got.len().saturating_sub(16)..]
    );
}

fn cgate_local(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(cgate_bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("cgate runs")
}

#[test]
fn go_and_libfcgi_behind_fcgi_under_the_cgi_and_local_gateways() {
    let dir = TempDir::new("fwd-peers");
    let go_sock = dir.join("go.sock");
    let _go = peers::go_fcgi(&dir, &go_sock);
    let c_sock = dir.join("c.sock");
    let _c = peers::libfcgi(&dir, &c_sock);
    for sock in [&go_sock, &c_sock] {
        let spec = format!("fcgi:unix:{}", sock.display());
        let out = cgate_local(&["request", "--app", &spec, "/x"], &[]);
        let reply = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{reply}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            reply.starts_with("Status: 200 OK\r\nContent-Type: text/plain"),
            "{reply}"
        );
        // The whole body, with its length when the backend's reply had arrived whole by the
        // time the head went out (Go writes its head and body in separate records, so its
        // reply may also be streamed, without one).
        let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
        assert_eq!(body, "Hello, world!\n", "{reply}");
        let lengths: Vec<&str> = head
            .split("\r\n")
            .filter_map(|l| l.strip_prefix("Content-Length: "))
            .collect();
        assert!(lengths.is_empty() || lengths == ["14"], "{reply}");
        let cgi_env = [
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", "/cgi-bin/x"),
            ("QUERY_STRING", ""),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
        ];
        let out = cgate_local(&["cgi", "--app", &spec], &cgi_env);
        let reply = String::from_utf8_lossy(&out.stdout);
        assert!(
            reply.ends_with("\r\n\r\nHello, world!\n"),
            "{reply}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0));
    }
}

#[test]
fn a_bad_reply_head_is_a_502_and_a_dead_backend_too() {
    let dir = TempDir::new("fwd-502");
    let back = dir.join("raw.sock");
    let raw = raw_backend(
        &back,
        b"Content-Type: text/plain\r\nConnection: close\r\n\r\nx",
    );
    let fwd = format!("fcgi:unix:{}", back.display());
    let out = cgate_local(&["request", "--app", &fwd, "/"], &[]);
    raw.join().unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(reply.starts_with("Status: 502 Bad Gateway\r\n"), "{reply}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("reply head refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone: PathBuf = dir.join("nobody.sock");
    let out = cgate_local(
        &[
            "request",
            "--app",
            &format!("fcgi:unix:{}", gone.display()),
            "/",
        ],
        &[],
    );
    let reply = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        reply,
        "Status: 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nBad Gateway\n"
    );
    assert_eq!(out.status.code(), Some(1));
}

/// A backend that refuses one request with END_REQUEST `status` and no output.
fn refusing_backend(
    sock: &Path,
    status: cgate::fastcgi::ProtocolStatus,
) -> std::thread::JoinHandle<usize> {
    let listener = UnixListener::bind(sock).unwrap();
    std::thread::spawn(move || {
        let (mut c, _) = listener.accept().expect("accept");
        let got = read_to_stdin_end(&mut c);
        let mut out = Vec::new();
        cgate::fastcgi::record::encode_end_request(&mut out, 1, 0, status);
        c.write_all(&out).unwrap();
        got.len()
    })
}

#[test]
fn an_overloaded_backend_is_skipped_and_a_silent_one_times_out() {
    let dir = TempDir::new("fwd-refuse");
    let over = dir.join("over.sock");
    let refused = refusing_backend(&over, cgate::fastcgi::ProtocolStatus::Overloaded);
    let hello = dir.join("hello.sock");
    let _hello = peers::cgate(&hello, &["--app", "hello"]);
    let spec = format!("fcgi:unix:{},unix:{}", over.display(), hello.display());
    let out = cgate_local(&["request", "--app", &spec, "-d", "posted", "/"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\nHello, world!\n"
    );
    assert!(
        refused.join().unwrap() > 0,
        "the first try went to the overloaded backend"
    );
    let mute = dir.join("mute.sock");
    let silent = mute_backend(&mute);
    let spec = format!("fcgi:unix:{};timeout=1", mute.display());
    let out = cgate_local(&["request", "--app", &spec, "/"], &[]);
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        reply.starts_with("Status: 504 Gateway Timeout\r\n"),
        "{reply}"
    );
    assert_eq!(out.status.code(), Some(1));
    let got = silent.join().unwrap();
    assert!(
        got.ends_with(&[1, 5, 0, 1, 0, 0, 0, 0]),
        "the whole request went out"
    );
}

/// Reads one record (header, content, padding) from `c`: `(type, content)`.
fn read_record(c: &mut UnixStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 8];
    c.read_exact(&mut h).expect("record header");
    let len = usize::from(u16::from_be_bytes([h[4], h[5]])) + usize::from(h[6]);
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).expect("record content");
    body.truncate(usize::from(u16::from_be_bytes([h[4], h[5]])));
    (h[1], body)
}

/// A backend that reads a request up to its body (all but the closing empty STDIN record),
/// "acts" (counts it), then dies with that record unread: the client sees a reset.
fn acting_then_dying_backend(sock: &Path, wants_body: bool) -> std::thread::JoinHandle<usize> {
    let listener = UnixListener::bind(sock).unwrap();
    std::thread::spawn(move || {
        let (mut c, _) = listener.accept().expect("accept");
        while read_record(&mut c) != (4, Vec::new()) {}
        if wants_body {
            let (t, body) = read_record(&mut c);
            assert_eq!((t, body.is_empty()), (5, false), "the body's STDIN record");
        }
        1
    })
}

#[test]
fn a_backend_that_acted_and_died_unanswered_gets_no_second_post_but_a_get_is_retried() {
    let dir = TempDir::new("fwd-acted");
    let hello = dir.join("hello.sock");
    let _hello = peers::cgate(&hello, &["--app", "hello"]);
    for (method, wants_body) in [("POST", true), ("GET", false)] {
        let dying = dir.join(&format!("dying-{method}.sock"));
        let acted = acting_then_dying_backend(&dying, wants_body);
        let spec = format!("fcgi:unix:{},unix:{}", dying.display(), hello.display());
        let mut args = vec!["request", "--app", &spec, "-X", method];
        if wants_body {
            args.extend(["-d", "pay once"]);
        }
        args.push("/");
        let out = cgate_local(&args, &[]);
        let reply = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            acted.join().unwrap(),
            1,
            "{method}: the first try reached the dying backend"
        );
        if method == "POST" {
            assert!(
                reply.starts_with("Status: 502 Bad Gateway\r\n"),
                "POST must not run twice: {reply}"
            );
        } else {
            assert!(
                reply.ends_with("\r\n\r\nHello, world!\n"),
                "GET is retried: {reply}"
            );
        }
    }
}
