//! Signals: SIGTERM/SIGINT graceful, SIGQUIT immediate; USR1/USR2 never fatal; every exit removes the socket file and stops scripts.

use nix::sys::signal::Signal;

use crate::client::get;
use crate::harness::{Ops, Scripts, alive, wait_for};

fn output_has(ops: &Ops, needle: &str) {
    wait_for(needle, || ops.output().contains(needle));
}

#[test]
fn usr1_and_usr2_are_not_fatal() {
    let ops = Ops::start(&["--app", "hello"]);
    ops.server.backend.proc.signal(Signal::SIGUSR2);
    output_has(&ops, "cgate: SIGUSR2 ignored\n");
    ops.server.backend.proc.signal(Signal::SIGUSR1);
    ops.server.backend.proc.signal(Signal::SIGUSR2);
    wait_for("a second USR2 line", || {
        ops.output().matches("SIGUSR2 ignored").count() == 2
    });
    ops.server.assert_serves_hello("after SIGUSR1 and SIGUSR2");
}

/// A request that runs `pid.sh` (a script that sleeps) on its own thread; returns the
/// script's pid once it runs.
fn start_script(ops: &Ops, scripts: &Scripts) -> (i32, std::thread::JoinHandle<Vec<u8>>) {
    let mut c = ops.server.connect();
    let held = std::thread::spawn(move || {
        c.send(&get(1, 0, "/pid.sh"));
        c.drain_to_close()
    });
    let pidfile = scripts.path("script.pid");
    wait_for("the script to start", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
    });
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    (pid, held)
}

fn exits_cleanly_of_scripts(sig: Signal, args: &[&str], says: &str, code: i32) {
    let scripts = Scripts::new();
    let spec = scripts.spec();
    let mut all = vec!["--app", spec.as_str(), "--allow-root"];
    all.extend_from_slice(args);
    let mut ops = Ops::start(&all);
    let sock = ops.sock();
    let (script, held) = start_script(&ops, &scripts);
    ops.server.backend.proc.signal(sig);
    wait_for("cgate to exit", || ops.server.backend.proc.has_exited());
    let status = ops.server.backend.stop().expect("exit status");
    let out = ops.output();
    assert_eq!(status.code(), Some(code), "{out}");
    assert!(out.contains(says), "{out}");
    assert!(!sock.exists(), "socket file left behind\n{out}");
    assert!(!alive(script), "script {script} outlived cgate\n{out}");
    held.join().expect("the held request ends");
}

#[test]
fn quit_stops_at_once_removing_the_socket_and_the_scripts() {
    exits_cleanly_of_scripts(Signal::SIGQUIT, &[], "cgate: SIGQUIT: stopping now\n", 1);
}

#[test]
fn term_past_the_shutdown_timeout_stops_the_scripts() {
    exits_cleanly_of_scripts(
        Signal::SIGTERM,
        &["--shutdown-timeout", "1"],
        "cgate: shutdown timeout: 1 connection(s) cut\n",
        1,
    );
}

#[test]
fn a_second_term_stops_at_once_and_cleans_up() {
    let scripts = Scripts::new();
    let spec = scripts.spec();
    let mut ops = Ops::start(&["--app", &spec, "--allow-root"]);
    let sock = ops.sock();
    let (script, held) = start_script(&ops, &scripts);
    ops.server.backend.proc.signal(Signal::SIGTERM);
    output_has(&ops, "SIGTERM: no new connections");
    ops.server.backend.proc.signal(Signal::SIGINT);
    wait_for("cgate to exit", || ops.server.backend.proc.has_exited());
    let status = ops.server.backend.stop().expect("exit status");
    let out = ops.output();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("cgate: second SIGINT: stopping now\n"),
        "{out}"
    );
    assert!(!sock.exists(), "socket file left behind\n{out}");
    assert!(!alive(script), "script {script} outlived cgate\n{out}");
    held.join().expect("the held request ends");
}

#[test]
fn term_when_idle_exits_zero_and_removes_the_socket() {
    let mut ops = Ops::start(&["--app", "hello"]);
    let sock = ops.sock();
    ops.server.assert_serves_hello("before SIGTERM");
    ops.server.backend.proc.signal(Signal::SIGTERM);
    wait_for("cgate to exit", || ops.server.backend.proc.has_exited());
    let status = ops.server.backend.stop().expect("exit status");
    assert_eq!(status.code(), Some(0), "{}", ops.output());
    assert!(
        ops.output().ends_with("cgate: stopped\n"),
        "{}",
        ops.output()
    );
    assert!(!sock.exists());
}
