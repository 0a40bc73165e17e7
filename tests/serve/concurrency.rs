//! Concurrency and shutdown: a slow app does not hold the others; Ctrl-C lets a request in flight finish.

use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::http::{Conn, Framing, get};
use crate::support::{TIMEOUT, TempDir};
use crate::{Serve, cgi_dir, open_gate};

#[test]
fn hundred_requests_finish_while_a_slow_one_is_held() {
    let dir = TempDir::new("serve-concurrent");
    let cgi = cgi_dir(&dir);
    let app = format!("cgi:{}", cgi.display());
    let s = Serve::start(&["--app", &app, "--mount", "/hello=hello"]);
    let mut c = Conn::open(s.port).expect("connect");
    c.send_request("GET", "/slow.sh", &[], b"").expect("send");
    let head = c.read_head("GET").expect("head");
    assert_eq!(head.framing, Framing::Chunked);
    let mut slow = c.body(&head);
    assert_eq!(slow.read_until(b"one\n").expect("first chunk"), b"one\n");
    let port = s.port;
    let workers: Vec<_> = (0..100)
        .map(|i| thread::spawn(move || get(port, &format!("/hello/n{i}"))))
        .collect();
    for w in workers {
        let r = w.join().expect("client thread");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"Hello, world!\n"[..])
        );
    }
    // All 100 were answered while slow.sh still waits at its gate.
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
