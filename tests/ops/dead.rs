//! Dead requests dropped: a request whose web-server connection closed while it waited (cgate stopped, its one worker held by a gate) is not run, with or without any operations flag, and is counted.

use std::io::Write;

use nix::sys::signal::Signal;

use crate::client::get;
use crate::harness::{Ops, Scripts, wait_for};
use crate::support::write_script;

/// Holds the one worker in a gated script, then, while cgate is stopped, sends mark.sh on a new
/// connection and closes it. Returns the gate request's thread.
fn queue_a_dead_request(ops: &Ops, scripts: &Scripts) -> std::thread::JoinHandle<u16> {
    let started = scripts.path("held.started");
    write_script(
        &scripts.dir.join("cgi"),
        "held.sh",
        &format!(
            "#!/bin/sh\ntouch {}\nwhile [ ! -e {} ]; do sleep 0.02; done\n\
             printf 'Content-Type: text/plain\\r\\n\\r\\nreleased\\n'\n",
            started.display(),
            scripts.path("gate.open").display()
        ),
    );
    let mut c = ops.server.connect();
    let held = std::thread::spawn(move || c.roundtrip(1, &get(1, 0, "/held.sh")).status());
    wait_for("the held script to run", || started.exists());
    ops.server.backend.proc.signal(Signal::SIGSTOP);
    let mut s = std::os::unix::net::UnixStream::connect(ops.sock()).unwrap();
    s.write_all(&get(1, 0, "/mark.sh")).unwrap();
    drop(s);
    ops.server.backend.proc.signal(Signal::SIGCONT);
    held
}

#[test]
fn a_dead_request_is_not_run_without_any_operations_flag() {
    let scripts = Scripts::new();
    let spec = scripts.spec();
    let ops = Ops::start(&["--app", &spec, "--allow-root", "--workers", "1"]);
    let held = queue_a_dead_request(&ops, &scripts);
    wait_for("the not-run line", || {
        ops.output()
            .contains("cgate: not run (the web server's connection closed while it waited): ")
    });
    let out = ops.output();
    let line = out.lines().find(|l| l.contains("cgate: not run")).unwrap();
    assert!(line.ends_with(" GET /mark.sh; 1 so far"), "{line}");
    scripts.release();
    assert_eq!(held.join().unwrap(), 200);
    assert!(
        !scripts.path("marked").exists(),
        "the dead request's script ran: {}",
        ops.output()
    );
    // A live request on the same server still runs the script.
    assert_eq!(ops.get("/mark.sh", &[]).body(), b"ran\n");
    assert!(scripts.path("marked").exists());
}

#[test]
fn a_dead_request_is_counted_in_status_and_logged_as_client_gone() {
    let scripts = Scripts::new();
    let spec = scripts.spec();
    let ops = Ops::start(&[
        "--app",
        &spec,
        "--allow-root",
        "--workers",
        "1",
        "--status-path",
        "/cgate-status",
        "--access-log",
        "-",
    ]);
    let held = queue_a_dead_request(&ops, &scripts);
    wait_for("the dead request counted", || {
        ops.status()["counters"]["not_run"] == 1
    });
    let s = ops.status();
    assert_eq!(s["counters"]["client_gone"], 1, "{s}");
    assert_eq!(s["counters"]["requests"]["none"], 1, "{s}");
    let om = crate::status::metrics(&mut ops.server.connect());
    assert!(om.contains("\ncgate_requests_not_run_total 1\n"), "{om}");
    crate::status::promtool(&om);
    let out = ops.output();
    let line = out
        .lines()
        .find(|l| l.contains("\"GET /mark.sh HTTP/1.1\""))
        .expect("an access log line");
    assert!(line.contains("\"GET /mark.sh HTTP/1.1\" 0 0 "), "{line}");
    assert!(line.ends_with("ms client-gone"), "{line}");
    scripts.release();
    assert_eq!(held.join().unwrap(), 200);
    assert!(!scripts.path("marked").exists(), "{}", ops.output());
}
