//! SIGHUP reload: the same listening socket handed to a new process, which serves; the old one drains and exits. Under load through nginx nothing is lost.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Ops, alive, wait_for};
use crate::support::http::Conn;
use crate::support::{Nginx, TIMEOUT, TempDir, conf};

/// The successor's pid from the old process's `reload: pid N serves` line.
fn successor(ops: &Ops) -> i32 {
    wait_for("the reload line", || {
        ops.output().contains("cgate: reload: pid ")
    });
    let out = ops.output();
    let rest = out.split("cgate: reload: pid ").nth(1).unwrap();
    rest.split(' ').next().unwrap().parse().unwrap()
}

/// Stops a successor (not our child) by PID and waits until it is gone.
fn stop_successor(pid: i32) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    wait_for("the successor to exit", || !alive(pid));
}

#[test]
fn sighup_hands_the_same_socket_to_a_new_process() {
    let mut ops = Ops::start(&["--app", "hello"]);
    let sock = ops.sock();
    let inode = std::fs::metadata(&sock).unwrap().ino();
    let old = ops.server.pid();
    ops.server.backend.proc.signal(Signal::SIGHUP);
    let new = successor(&ops);
    assert_ne!(new, old);
    wait_for("the old process to exit", || {
        ops.server.backend.proc.has_exited()
    });
    assert!(alive(new), "{}", ops.output());
    assert_eq!(
        std::fs::metadata(&sock).unwrap().ino(),
        inode,
        "same socket file"
    );
    let start = format!(
        "cgate: start version={} pid={new} listen=unix:{}",
        env!("CARGO_PKG_VERSION"),
        sock.display()
    );
    assert!(ops.output().contains(&start), "{}", ops.output());
    ops.server.assert_serves_hello("after the reload");
    // The successor shares the old process group, which the harness kills on stop: stop
    // the successor first, then reap the old process.
    stop_successor(new);
    assert!(
        !sock.exists(),
        "the successor removes the socket file on exit"
    );
    let status = ops.server.backend.stop().unwrap();
    assert_eq!(status.code(), Some(0), "{}", ops.output());
}

#[test]
fn notify_socket_gets_ready_reloading_mainpid_and_stopping() {
    let dir = TempDir::new("ops-notify");
    let path = dir.join("notify.sock");
    let stub = UnixDatagram::bind(&path).unwrap();
    stub.set_read_timeout(Some(TIMEOUT)).unwrap();
    let recv = || {
        let mut buf = [0u8; 512];
        let n = stub.recv(&mut buf).expect("a notification");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };
    let mut ops = Ops::start_env(
        &["--app", "hello"],
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    let old = ops.server.pid();
    assert_eq!(recv(), format!("READY=1\nMAINPID={old}"));
    ops.server.backend.proc.signal(Signal::SIGHUP);
    let reloading = recv();
    let usec = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .expect("RELOADING=1");
    assert!(usec.parse::<u64>().unwrap() > 0);
    let new = successor(&ops);
    // The successor and the old process each report the new main pid.
    let mut two = [recv(), recv()];
    two.sort();
    assert_eq!(
        two,
        [
            format!("MAINPID={new}\nREADY=1"),
            format!("MAINPID={new}\nREADY=1")
        ]
    );
    wait_for("the old process to exit", || {
        ops.server.backend.proc.has_exited()
    });
    kill(Pid::from_raw(new), Signal::SIGTERM).unwrap();
    assert_eq!(recv(), "STOPPING=1");
    wait_for("the successor to exit", || !alive(new));
    ops.server.backend.stop();
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    reset: AtomicU64,
}

/// Keep-alive GETs through nginx until `stop`; counts each outcome.
fn getter(port: u16, stop: Arc<AtomicBool>, n: Arc<Counts>) {
    let mut conn: Option<Conn> = None;
    while !stop.load(SeqCst) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => conn.insert(Conn::open(port).expect("nginx accepts")),
        };
        let r = c
            .send_request("GET", "/g?x=1", &[], b"")
            .and_then(|()| c.read_response("GET"));
        match r {
            Ok(r) if r.status == 200 && r.body.starts_with(b"{\"environ\"") => {
                n.ok.fetch_add(1, SeqCst);
                if r.header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                {
                    conn = None;
                }
            }
            Ok(r) => {
                eprintln!("failed: {} {}", r.status, String::from_utf8_lossy(&r.body));
                n.failed.fetch_add(1, SeqCst);
                conn = None;
            }
            Err(e) => {
                eprintln!("reset: {e}");
                n.reset.fetch_add(1, SeqCst);
                conn = None;
            }
        }
    }
}

/// An upload of `chunks` pieces of 4 KiB, one every 100 ms, to the echo app; returns
/// whether the echoed length is right.
fn slow_upload(port: u16, chunks: usize) -> bool {
    let mut c = Conn::open(port).expect("nginx accepts");
    let len = (chunks * 4096).to_string();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    if c.write_raw(head.as_bytes()).is_err() {
        return false;
    }
    for _ in 0..chunks {
        std::thread::sleep(Duration::from_millis(100));
        if c.write_raw(&[b'u'; 4096]).is_err() {
            return false;
        }
    }
    match c.read_response("POST") {
        Ok(r) => {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            r.status == 200 && v["input"]["length"] == chunks * 4096
        }
        Err(_) => false,
    }
}

#[test]
fn reload_under_load_through_nginx_loses_nothing() {
    let mut ops = Ops::start(&[
        "--app",
        "echo",
        "--status-path",
        "/cgate-status",
        "--workers",
        "2",
    ]);
    let sock = ops.sock();
    let upload = "location /upload {\n    fastcgi_request_buffering off;\n    \
                  fastcgi_split_path_info ^()(/.*)$;\n    fastcgi_pass cgate;\n    \
                  fastcgi_keep_conn on;\n}\n";
    let site = format!("{}\n{upload}", conf::nginx_site(true));
    let nginx = Nginx::start_with(&conf::nginx_upstream(&sock), &site);
    let port = nginx.port();
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let getters: Vec<_> = (0..4)
        .map(|_| {
            let (s, n) = (Arc::clone(&stop), Arc::clone(&counts));
            std::thread::spawn(move || getter(port, s, n))
        })
        .collect();
    wait_for("load to flow", || counts.ok.load(SeqCst) >= 200);
    // Uploads of 10 s each (4 KiB every 100 ms), in flight across the reload.
    let uploads: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || slow_upload(port, 100)))
        .collect();
    wait_for("the uploads to reach cgate", || {
        let s = crate::support::http::get(port, "/cgate-status");
        let v: serde_json::Value = serde_json::from_slice(&s.body).unwrap_or_default();
        v["requests"]
            .as_array()
            .is_some_and(|r| r.iter().filter(|r| r["uri"] == "/upload").count() == 3)
    });
    let old = ops.server.pid();
    let before = counts.ok.load(SeqCst);
    ops.server.backend.proc.signal(Signal::SIGHUP);
    let new = successor(&ops);
    wait_for("the new process to serve", || {
        let s = crate::support::http::get(port, "/cgate-status");
        serde_json::from_slice::<serde_json::Value>(&s.body).unwrap_or_default()["pid"] == new
    });
    for u in uploads {
        assert!(
            u.join().unwrap(),
            "an upload in flight failed\n{}\n{}",
            nginx.error_log(),
            ops.output()
        );
    }
    wait_for("the old process to exit", || {
        ops.server.backend.proc.has_exited()
    });
    let after_exit = counts.ok.load(SeqCst);
    wait_for("load to flow on", || {
        counts.ok.load(SeqCst) >= after_exit + 200
    });
    stop.store(true, SeqCst);
    for g in getters {
        g.join().unwrap();
    }
    let (ok, failed, reset) = (
        counts.ok.load(SeqCst),
        counts.failed.load(SeqCst),
        counts.reset.load(SeqCst),
    );
    eprintln!(
        "reload under load: {ok} ok ({} during the reload), {failed} failed, {reset} reset; old pid {old}, new pid {new}",
        after_exit - before
    );
    assert_eq!(
        (failed, reset),
        (0, 0),
        "{}\n{}",
        ops.output(),
        nginx.error_log()
    );
    stop_successor(new);
    let status = ops.server.backend.stop().unwrap();
    assert_eq!(status.code(), Some(0), "{}", ops.output());
}
