//! Concurrency and shutdown: a slow app or a stalled upload does not hold the others, even on one loop thread; Ctrl-C lets a request in flight finish.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::bodies::{input_of, read_100_continue};
use crate::support::http::{Conn, Framing, get};
use crate::support::{Backend, Ready, TIMEOUT, TempDir, cgate_bin, sha256_hex};
use crate::{Serve, cgi_dir, open_gate};

/// 100 GETs of hello from 100 threads: each gets the exact hello.
fn hundred_hellos(port: u16) {
    let clients: Vec<_> = (0..100)
        .map(|i| thread::spawn(move || get(port, &format!("/hello/n{i}"))))
        .collect();
    for c in clients {
        let r = c.join().expect("client thread");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"Hello, world!\n"[..])
        );
    }
}

#[test]
fn hundred_requests_finish_while_a_slow_script_holds_the_only_loop_thread() {
    let dir = TempDir::new("serve-concurrent");
    let cgi = cgi_dir(&dir);
    let app = format!("cgi:{}", cgi.display());
    // One event-loop thread: the script's wait must hand the loop to another thread.
    let s = Serve::start(&["--workers", "1", "--app", &app, "--mount", "/hello=hello"]);
    let mut c = Conn::open(s.port).expect("connect");
    c.send_request("GET", "/slow.sh", &[], b"").expect("send");
    let head = c.read_head("GET").expect("head");
    assert_eq!(head.framing, Framing::Chunked);
    let mut slow = c.body(&head);
    assert_eq!(slow.read_until(b"one\n").expect("first chunk"), b"one\n");
    hundred_hellos(s.port);
    // All 100 were answered while slow.sh still waits at its gate.
    open_gate(&cgi);
    assert_eq!(slow.read_to_end().expect("rest"), b"one\ntwo\n");
}

#[test]
fn hundred_requests_finish_while_an_upload_stalls_the_only_loop_thread() {
    let s = Serve::start(&["--workers", "1", "--app", "echo", "--mount", "/hello=hello"]);
    let mut c = Conn::open(s.port).expect("connect");
    let head = "POST /up HTTP/1.1\r\nHost: t\r\nAccept: application/json\r\n\
                Content-Length: 10\r\nExpect: 100-continue\r\n\r\n";
    c.write_raw(head.as_bytes()).expect("head");
    // hyper sends 100 Continue from echo's first body read, which then waits for the body.
    read_100_continue(&mut c);
    hundred_hellos(s.port);
    c.write_raw(b"0123456789").expect("body");
    let r = c.read_response("POST").expect("echo");
    assert_eq!(r.status, 200);
    assert_eq!(input_of(&r.body), (10, sha256_hex(b"0123456789")));
}

#[test]
fn hundred_requests_finish_while_a_forwarded_request_waits_on_the_only_loop_thread() {
    let dir = TempDir::new("serve-forward-slow");
    let cgi = cgi_dir(&dir);
    let sock = dir.join("back.sock");
    let mut back = Command::new(cgate_bin());
    back.env_remove("CGATE_APP")
        .args([
            "fastcgi",
            "--app",
            &format!("cgi:{}", cgi.display()),
            "--listen",
        ])
        .arg(format!("unix:{}", sock.display()));
    let _back = Backend::spawn("cgate fastcgi", back, &[Ready::Unix(sock.clone())]);
    let fwd = format!("fcgi:unix:{}", sock.display());
    let s = Serve::start(&["--workers", "1", "--app", &fwd, "--mount", "/hello=hello"]);
    let mut c = Conn::open(s.port).expect("connect");
    c.send_request("GET", "/slow.sh", &[], b"").expect("send");
    let head = c.read_head("GET").expect("head");
    let mut slow = c.body(&head);
    assert_eq!(slow.read_until(b"one\n").expect("first chunk"), b"one\n");
    // The forwarder now waits for its backend, which waits for the gate.
    hundred_hellos(s.port);
    open_gate(&cgi);
    assert_eq!(slow.read_to_end().expect("rest"), b"one\ntwo\n");
}

#[test]
fn sigint_lets_the_request_in_flight_finish_then_exits_0() {
    let dir = TempDir::new("serve-sigint");
    let cgi = cgi_dir(&dir);
    let mut s = Serve::start(&["--app", &format!("cgi:{}", cgi.display())]);
    let mut c = Conn::open(s.port).expect("connect");
    c.send_request("GET", "/slow.sh", &[], b"").expect("send");
    let head = c.read_head("GET").expect("head");
    let mut slow = c.body(&head);
    assert_eq!(slow.read_until(b"one\n").expect("first chunk"), b"one\n");
    s.backend.proc.signal(Signal::SIGINT);
    s.wait_log("cgate: SIGINT received: no new connections, finishing 1 connection(s)\n");
    open_gate(&cgi);
    assert_eq!(slow.read_to_end().expect("rest"), b"one\ntwo\n");
    drop(slow);
    // The server closes the connection after this last reply and exits by itself.
    assert!(c.is_closed_by_peer(TIMEOUT));
    let start = Instant::now();
    while !s.backend.proc.has_exited() {
        assert!(start.elapsed() < TIMEOUT, "still running\n{}", s.log());
        thread::sleep(Duration::from_millis(10));
    }
    let status = s.backend.stop().expect("exit status");
    assert!(status.success(), "{status:?}\n{}", s.log());
    assert!(
        s.log().contains("127.0.0.1 GET /slow.sh 200 8 "),
        "{}",
        s.log()
    );
}

#[test]
fn sigterm_closes_idle_connections_at_once_and_exits_0() {
    let mut s = Serve::start(&["--app", "hello"]);
    let mut kept = Conn::open(s.port).expect("connect");
    assert_eq!(kept.roundtrip("GET", "/", &[], b"").status, 200);
    let mut fresh = Conn::open(s.port).expect("connect");
    s.backend.proc.signal(Signal::SIGTERM);
    // Both are closed when the stop is seen; had either been waited for until the shutdown
    // timeout, the exit status would be 1.
    assert!(kept.is_closed_by_peer(TIMEOUT));
    assert!(fresh.is_closed_by_peer(TIMEOUT));
    let start = Instant::now();
    while !s.backend.proc.has_exited() {
        assert!(start.elapsed() < TIMEOUT, "still running\n{}", s.log());
        thread::sleep(Duration::from_millis(10));
    }
    let status = s.backend.stop().expect("exit status");
    assert!(status.success(), "{status:?}\n{}", s.log());
    assert!(s.log().contains("cgate: SIGTERM received"), "{}", s.log());
}
