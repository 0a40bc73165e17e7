//! Hostile and slow peers against the real server: output floods, aborts mid-stream, silent and trickling peers, spool cap, id 0.

use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

use crate::client::*;
use crate::server::*;

/// The head of a POST without CONTENT_LENGTH (body to the end of STDIN), plus `body`.
fn open_post(id: u16, flags: u8, extra: &[(&[u8], &[u8])], body: &[u8]) -> Vec<u8> {
    let p = params("POST", "/", extra);
    let mut req = begin(id, RESPONDER, flags, 0);
    req.extend(stream(PARAMS, id, &p, 65535, 0));
    req.extend(rec(STDIN, id, body, 0));
    req
}

/// Writes `data` from a thread in 64 KiB pieces until done or a write fails; returns the
/// bytes written.
fn spawn_writer(c: &Conn, data: Vec<u8>) -> thread::JoinHandle<usize> {
    let mut w = c.try_clone();
    thread::spawn(move || {
        let mut sent = 0;
        for piece in data.chunks(64 * 1024) {
            if w.write_all(piece).is_err() {
                break;
            }
            sent += piece.len();
        }
        sent
    })
}

/// Floods `srv` with 48 MiB of 8-byte unknown-type management records after a POST head
/// to `target` and `body`, reading no reply; asserts RSS stays flat, the flood is not all
/// taken, the connection is closed within the request timeout, and `probe` still gets a 200.
fn flood_keeps_memory_flat(srv: &Server, target: &str, body: &[u8], probe: &str, what: &str) {
    let before = rss_kib(srv.pid());
    let mut c = srv.connect();
    let mut head = begin(1, RESPONDER, KEEP_CONN, 0);
    head.extend(stream(PARAMS, 1, &params("POST", target, &[]), 65535, 0));
    for part in body.chunks(65535) {
        head.extend(rec(STDIN, 1, part, 0));
    }
    c.send(&head);
    let flood: Vec<u8> = rec(20, 0, b"", 0).repeat(6 * 1024 * 1024);
    let writer = spawn_writer(&c, flood);
    let sent = writer.join().expect("writer");
    let after = rss_kib(srv.pid());
    assert!(
        after < before + 16 * 1024,
        "{what}: RSS {before} KiB -> {after} KiB after {sent} flood bytes"
    );
    assert!(sent < 48 * 1024 * 1024, "{what}: the whole flood was read");
    c.set_timeout(Duration::from_secs(20));
    c.drain_to_close();
    let r = srv.connect().roundtrip(1, &get(1, 0, probe));
    assert_eq!(r.status(), 200, "{what}: {}", srv.backend.output());
}

/// Issue 11 finding 1: 48 MiB of 8-byte unknown-type management records while a request
/// waits for its body, with no reply read: before its app starts (small body so far), and
/// while the app runs and answers at length (bytes:1048576), or runs a CGI script. Output
/// queued for the peer is bounded, so the server stops reading from it and closes it
/// within the request timeout: RSS stays flat, and the server keeps serving.
#[test]
fn management_flood_keeps_memory_flat() {
    for t in BOTH {
        let srv = Server::start(t, "bytes:1048576", &["--request-timeout", "2"]);
        let mut warm = srv.connect();
        assert_eq!(warm.roundtrip(1, &get(1, 0, "/")).body().len(), 1048576);
        flood_keeps_memory_flat(&srv, "/", b"x", "/", &format!("{t:?}, app not started"));
        let started = vec![b'y'; 70_000];
        flood_keeps_memory_flat(&srv, "/", &started, "/", &format!("{t:?}, app running"));
    }
    let dir = crate::support::TempDir::new("flood-cgi");
    let bin = dir.subdir("cgi-bin");
    let script = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\nexec sleep 30\n";
    crate::support::write_script(&bin, "slow.sh", script);
    let ok = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n";
    crate::support::write_script(&bin, "ok.sh", ok);
    let app = format!("cgi:{}", bin.display());
    let srv = Server::start(Transport::Unix, &app, &["--request-timeout", "2"]);
    let body = vec![b'z'; 70_000];
    flood_keeps_memory_flat(&srv, "/slow.sh", &body, "/ok.sh", "cgi:DIR script running");
}

/// Issue 11 finding 5: ABORT_REQUEST while the app streams (body complete): END_REQUEST
/// follows promptly (the stream stops long before its last chunk), and the kept-alive
/// connection carries the next request.
#[test]
fn abort_while_app_streams_ends_the_request() {
    for t in BOTH {
        let srv = Server::demo(t, &[]);
        let mut c = srv.connect();
        c.send(&get(1, KEEP_CONN, "/stream?n=1000&ms=20"));
        // Gate: the first chunk arrived, so the app is streaming.
        let (first, _) = c.record();
        assert_eq!((first.record_type, first.id), (STDOUT, 1), "{t:?}");
        c.send(&rec(ABORT, 1, b"", 0));
        let r = c.reply(1);
        assert_eq!(r.protocol_status, REQUEST_COMPLETE, "{t:?}");
        assert!(
            find(&r.stdout, b"chunk 1000\n").is_none(),
            "{t:?}: the whole stream was sent after ABORT_REQUEST"
        );
        let r = c.roundtrip(1, &get(1, KEEP_CONN, "/"));
        assert_eq!(r.status(), 200, "{t:?}: next request");
    }
}

/// Issue 11 finding 6: a connection that never sends a byte is closed at the first-request
/// deadline (`--request-timeout`), not held for the idle timeout.
#[test]
fn silent_connection_closed_at_first_request_deadline() {
    for t in BOTH {
        let srv = Server::start(
            t,
            "hello",
            &["--request-timeout", "2", "--idle-timeout", "300"],
        );
        let mut silent = srv.connect();
        silent.set_timeout(Duration::from_secs(20));
        silent.assert_closed_silently("a connection that never sent a byte");
        srv.assert_serves_hello("after the silent connection");
    }
}

/// Issue 11 finding 6: a body trickled one byte per 1.5 s under `--request-timeout 2` is cut
/// by the whole-body deadline, not kept alive by each byte.
#[test]
fn trickled_body_is_cut_by_the_body_deadline() {
    for t in BOTH {
        let srv = Server::start(t, "echo", &["--request-timeout", "2"]);
        let mut c = srv.connect();
        let p = params("POST", "/", &[(b"CONTENT_LENGTH", b"20")]);
        let mut head = begin(1, RESPONDER, KEEP_CONN, 0);
        head.extend(stream(PARAMS, 1, &p, 65535, 0));
        c.send(&head);
        let mut w = c.try_clone();
        let trickler = thread::spawn(move || {
            for i in 0..20 {
                if w.write_all(&rec(STDIN, 1, b"t", 0)).is_err() {
                    return i;
                }
                thread::sleep(Duration::from_millis(1500));
            }
            20
        });
        c.set_timeout(Duration::from_secs(40));
        let got = c.drain_to_close();
        assert!(
            got.is_empty() || got.starts_with(&[1, STDOUT, 0, 1]),
            "{t:?}: {got:?}"
        );
        let sent = trickler.join().expect("trickler");
        assert!(sent < 20, "{t:?}: the trickled body was never cut");
    }
}

/// Issue 11 finding 6: 300 requests trickling small bodies do not mean 300 threads: their
/// bodies wait in the event loop, not in parked threads.
#[test]
fn trickling_requests_do_not_park_threads() {
    let srv = Server::start(Transport::Unix, "echo", &["--request-timeout", "30"]);
    srv.assert_answers_200("echo");
    let pid = srv.pid();
    let baseline = thread_count(pid);
    let p = params("POST", "/", &[(b"CONTENT_LENGTH", b"100")]);
    let mut conns = Vec::new();
    for _ in 0..300 {
        let mut c = srv.connect();
        let mut head = begin(1, RESPONDER, KEEP_CONN, 0);
        head.extend(stream(PARAMS, 1, &p, 65535, 0));
        head.extend(rec(STDIN, 1, b"a", 0));
        c.send(&head);
        conns.push(c);
    }
    // Gate: a request on a fresh connection is served after all 300 were accepted.
    srv.assert_answers_200("echo");
    let mut most = 0;
    eventually(Duration::from_secs(3), || {
        most = most.max(thread_count(pid));
        false
    });
    assert!(
        most <= baseline + 16,
        "{most} threads for 300 trickling bodies (baseline {baseline})"
    );
    // Each still completes once its body does.
    for c in conns.iter_mut().take(5) {
        c.send(&stream(STDIN, 1, &[b'b'; 99], 65535, 0));
        let r = c.reply(1);
        assert_eq!(r.json()["input"]["length"], 100);
    }
}

/// Issue 11 finding 7: CONTENT_LENGTH 10^12 to an app that answers early and at length: the
/// body spooled ahead of the app stops at `--max-spool`, then the connection is closed.
#[test]
fn body_spool_stops_at_its_cap() {
    for t in BOTH {
        let cap = 8 * 1024 * 1024;
        // A 64 MiB reply cannot be queued whole: the app's writes make cgate read the body
        // into the spool (no reply goes out before STDIN's end) until the cap. Should the
        // app end first, the body it left is skipped, which --max-body bounds.
        let max_body = (12 * 1024 * 1024).to_string();
        let srv = Server::start(
            t,
            "bytes:67108864",
            &["--max-spool", &cap.to_string(), "--max-body", &max_body],
        );
        let mut c = srv.connect();
        c.send(&open_post(
            1,
            0,
            &[(b"CONTENT_LENGTH", b"1000000000000")],
            b"",
        ));
        let body: Vec<u8> = rec(STDIN, 1, &[b'z'; 65528], 0).repeat(1024);
        let total = body.len();
        let writer = spawn_writer(&c, body);
        c.set_timeout(Duration::from_secs(30));
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
        let sent = writer.join().expect("writer");
        assert!(
            sent < cap + 1024 * 1024 + 16 * 1024 * 1024 && sent < total,
            "{t:?}: {sent} body bytes taken with a spool cap of {cap}"
        );
        srv.assert_answers_200("after the spool cap");
    }
}

/// Issue 11 finding 12: BEGIN_REQUEST on request id 0 (the management id) closes the
/// connection without an answer.
#[test]
fn begin_request_on_id_zero_closes() {
    for t in BOTH {
        let srv = Server::start(t, "hello", &[]);
        let mut c = srv.connect();
        c.send(&begin(0, RESPONDER, KEEP_CONN, 0));
        c.send_lossy(&stream(PARAMS, 0, &params("GET", "/", &[]), 65535, 0));
        c.assert_closed_silently("BEGIN_REQUEST on id 0");
        srv.assert_serves_hello("after id 0");
    }
}

impl Server {
    /// Asserts a fresh GET is answered with 200 (any app).
    fn assert_answers_200(&self, what: &str) {
        let mut c = self.connect();
        let r = c.roundtrip(1, &get(1, 0, "/"));
        assert_eq!(r.status(), 200, "{what}: {}", self.backend.output());
    }
}

/// Issue 10: ABORT_REQUEST for a cgi:DIR script that is silent (no output, hung) ends it:
/// END_REQUEST follows promptly and the script is gone. (The script pump waits on the
/// FastCGI socket through `Response::watch_fd` beside the script's pipes.)
#[test]
fn abort_ends_a_silent_cgi_script() {
    let dir = crate::support::TempDir::new("silent-cgi");
    let bin = dir.subdir("cgi-bin");
    let pid_file = dir.join("script.pid");
    crate::support::write_script(
        &bin,
        "silent.sh",
        &format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 100\n",
            pid_file.display()
        ),
    );
    let app = format!("cgi:{}", bin.display());
    let srv = Server::start(Transport::Unix, &app, &[]);
    let mut c = srv.connect();
    c.send(&get(1, KEEP_CONN, "/silent.sh"));
    // Gate: the script is running (it wrote its pid).
    let started = eventually(Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    assert!(
        started,
        "the script did not start: {}",
        srv.backend.output()
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid");
    c.send(&rec(ABORT, 1, b"", 0));
    c.set_timeout(Duration::from_secs(20));
    let r = c.reply(1);
    assert_eq!(r.protocol_status, REQUEST_COMPLETE);
    let gone = eventually(Duration::from_secs(20), || {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
    });
    assert!(gone, "the script {pid} outlived its aborted request");
}

/// Issue 11 finding 6: requests with large bodies that stall once their app has started do
/// not park a thread each: at most MAX_BODY_WAITERS (64) wait, the others are refused, and
/// the server keeps serving.
#[test]
fn stalled_large_bodies_park_a_bounded_number_of_threads() {
    allow_more_fds(400);
    let srv = Server::start(Transport::Unix, "echo", &["--request-timeout", "30"]);
    srv.assert_answers_200("echo");
    let pid = srv.pid();
    let baseline = thread_count(pid);
    let p = params("POST", "/", &[(b"CONTENT_LENGTH", b"10000000")]);
    let mut conns = Vec::new();
    for _ in 0..150 {
        let mut c = srv.connect();
        let mut head = begin(1, RESPONDER, KEEP_CONN, 0);
        head.extend(stream(PARAMS, 1, &p, 65535, 0));
        // More than the server reads ahead: the app starts and waits for the rest.
        head.extend(rec(STDIN, 1, &[b'a'; 65535], 0));
        head.extend(rec(STDIN, 1, &[b'a'; 10000], 0));
        c.send(&head);
        conns.push(c);
    }
    srv.assert_answers_200("after 150 stalled bodies");
    let mut most = 0;
    eventually(Duration::from_secs(3), || {
        most = most.max(thread_count(pid));
        false
    });
    assert!(
        most <= baseline + 64 + 16,
        "{most} threads for 150 stalled large bodies (baseline {baseline})"
    );
    drop(conns);
    srv.assert_answers_200("after the stalled bodies left");
}

/// Raises this process's open-file limit by `n`.
fn allow_more_fds(n: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let want = (soft + n).min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, want, hard).expect("setrlimit");
}
