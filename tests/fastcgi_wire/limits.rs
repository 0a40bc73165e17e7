//! Resource limits of the real server: slowloris timeouts and a flood of connections over the cap.

use std::io::{self, Read};
use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::client::*;
use crate::server::*;

/// CVE-2007-6750 (slowloris): with `--request-timeout 1`, connections that stall inside a
/// record header or inside PARAMS are closed without a reply, while another connection is
/// served normally at the same time; idle connections obey `--idle-timeout`.
#[test]
fn slowloris_partial_requests_time_out() {
    for t in BOTH {
        let srv = Server::start(
            t,
            "hello",
            &["--request-timeout", "1", "--idle-timeout", "2"],
        );
        let full = get(1, KEEP_CONN, "/");
        let mut half_header = srv.connect();
        half_header.send(&full[..4]);
        let mut half_params = srv.connect();
        let params_at = 16; // after the BEGIN record
        half_params.send(&full[..params_at + 12]);
        let mut idle = srv.connect();
        // Served normally while the others stall.
        let mut c = srv.connect();
        let r = c.roundtrip(1, &full);
        assert_eq!(r.raw, simple_reply(1, HELLO), "{t:?}");
        for (conn, what) in [
            (&mut half_header, "half a record header"),
            (&mut half_params, "half a PARAMS record"),
            (&mut idle, "idle connection"),
            (&mut c, "kept-alive connection left idle"),
        ] {
            conn.set_timeout(Duration::from_secs(15));
            conn.assert_closed_silently(what);
        }
        srv.assert_serves_hello("after the slow connections");
    }
}

/// A body that stalls mid-way (`--request-timeout 1`) ends the request and the connection
/// instead of holding the slot.
#[test]
fn slowloris_stalled_body_times_out() {
    for t in BOTH {
        let srv = Server::start(t, "echo", &["--request-timeout", "1"]);
        let mut c = srv.connect();
        let p = params("POST", "/", &[(b"CONTENT_LENGTH", b"10")]);
        let mut req = begin(1, RESPONDER, KEEP_CONN, 0);
        req.extend(stream(PARAMS, 1, &p, 65535, 0));
        req.extend(rec(STDIN, 1, b"abc", 0));
        c.send(&req);
        c.set_timeout(Duration::from_secs(15));
        // Closed (after an optional reply) within the bound; drain_to_close panics otherwise.
        let got = c.drain_to_close();
        assert!(
            got.is_empty() || got.starts_with(&[1, STDOUT, 0, 1]),
            "{t:?}: {got:?}"
        );
        let mut c = srv.connect();
        let r = c.roundtrip(1, &get(1, 0, "/"));
        assert_eq!(r.status(), 200);
    }
}

/// Raises this process's open-file limit so it can hold `n` more sockets.
fn allow_fds(n: u64) {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let want = (n + 512).max(soft);
    assert!(
        hard >= want,
        "this test needs {want} open files; the hard limit is {hard}"
    );
    setrlimit(Resource::RLIMIT_NOFILE, want, hard).expect("setrlimit");
}

/// True when the server has closed `c` (without sending anything).
fn is_closed(c: &mut Conn) -> bool {
    let mut buf = [0u8; 16];
    match c.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("refused connection got {:?}", &buf[..n]),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

fn set_nonblocking(c: &Conn, on: bool) {
    match c {
        Conn::Unix(s) => s.set_nonblocking(on),
        Conn::Tcp(s) => s.set_nonblocking(on),
    }
    .expect("set_nonblocking");
}

/// libfcgi CVE-2012-6687: 1500 connections against `--max-conns 100` do not crash the
/// server; exactly 100 are kept (and still served), the rest are closed; once all are gone
/// the descriptor and thread counts return to their baseline and requests are served.
#[test]
fn thousands_of_connections_over_the_cap() {
    allow_fds(2 * 1500);
    for t in BOTH {
        let srv = Server::start(t, "hello", &["--max-conns", "100"]);
        srv.assert_serves_hello("warm-up");
        let pid = srv.pid();
        let fds = fd_count(pid);
        let threads = thread_count(pid);
        let mut conns: Vec<Conn> = (0..1500).map(|_| srv.connect()).collect();
        for c in &conns {
            set_nonblocking(c, true);
        }
        let mut closed = vec![false; conns.len()];
        let all_refused = eventually(Duration::from_secs(60), || {
            for (c, done) in conns.iter_mut().zip(closed.iter_mut()) {
                if !*done {
                    *done = is_closed(c);
                }
            }
            closed.iter().filter(|d| **d).count() >= 1400
        });
        let n_closed = closed.iter().filter(|d| **d).count();
        assert!(all_refused, "{t:?}: only {n_closed} of 1500 closed");
        assert!(!srv.backend.proc.has_exited(), "{}", srv.backend.output());
        // Exactly the cap is being served: those connections still answer.
        std::thread::sleep(Duration::from_millis(500));
        let mut open: Vec<Conn> = Vec::new();
        for (c, done) in conns.drain(..).zip(closed) {
            if !done {
                open.push(c);
            }
        }
        for c in &mut open {
            assert!(!is_closed(c), "a kept connection was closed");
        }
        assert_eq!(open.len(), 100, "{t:?}: connections kept");
        for c in open.iter_mut().step_by(10) {
            set_nonblocking(c, false);
            let r = c.roundtrip(1, &get(1, KEEP_CONN, "/"));
            assert_eq!(r.raw, simple_reply(1, HELLO));
        }
        drop(open);
        let settled = eventually(Duration::from_secs(30), || {
            fd_count(pid) <= fds && thread_count(pid) <= threads + 2
        });
        assert!(
            settled,
            "{t:?}: {} fds (baseline {fds}), {} threads (baseline {threads})",
            fd_count(pid),
            thread_count(pid)
        );
        srv.assert_serves_hello("after the flood");
    }
}
