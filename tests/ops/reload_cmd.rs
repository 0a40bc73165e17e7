//! `cgate reload --pid-file`: the new process serves when it returns 0; a failed reload is 1 with the old process serving on; no process is 3; usage is 2.

use std::process::Command;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::client::Transport;
use crate::harness::{Ops, alive, read, run_cgate, wait_for};
use crate::server::Server;
use crate::support::{TempDir, write_script};

fn pid_in(path: &std::path::Path) -> i32 {
    read(path).trim().parse().unwrap_or(0)
}

#[test]
fn reload_returns_once_the_new_process_serves() {
    let dir = TempDir::new("ops-reload-cmd");
    let pidf = dir.join("cgate.pid");
    let pids = pidf.to_str().unwrap();
    let mut ops = Ops::start(&[
        "--app",
        "hello",
        "--status-path",
        "/cgate-status",
        "--pid-file",
        pids,
    ]);
    let old = ops.server.pid();
    wait_for("the pid file", || pid_in(&pidf) == old);
    assert_eq!(ops.status()["pid"], old);
    let (code, err) = run_cgate(&["reload", "--pid-file", pids, "--timeout", "120"]);
    let new = pid_in(&pidf);
    assert_ne!(new, old);
    assert_eq!(
        (code, err.as_str()),
        (
            0,
            format!("cgate reload: reloaded: pid {old} -> {new}\n").as_str()
        ),
        "{}",
        ops.output()
    );
    // Every new connection goes to the new process now.
    for _ in 0..3 {
        assert_eq!(ops.status()["pid"], new, "{}", ops.output());
    }
    ops.server.assert_serves_hello("after cgate reload");
    wait_for("the old process to exit", || {
        ops.server.backend.proc.has_exited()
    });
    // Reloaded again through the same file: the successor wrote nothing itself, its
    // predecessor did, and it can be reloaded in turn.
    let (code, err) = run_cgate(&["reload", "--pid-file", pids, "--timeout", "120"]);
    let third = pid_in(&pidf);
    assert_eq!(code, 0, "{err}{}", ops.output());
    assert_eq!(
        err,
        format!("cgate reload: reloaded: pid {new} -> {third}\n")
    );
    assert_eq!(ops.status()["pid"], third);
    let _ = kill(Pid::from_raw(third), Signal::SIGTERM);
    wait_for("the last process to exit", || !alive(third));
    assert!(!pidf.exists(), "a clean stop removes its own pid file");
    wait_for("the second process to exit", || !alive(new));
    let status = ops.server.backend.stop().unwrap();
    assert_eq!(status.code(), Some(0), "{}", ops.output());
}

#[test]
fn a_failed_reload_is_exit_1_and_the_old_process_serves_on() {
    let dir = TempDir::new("ops-reload-fail");
    let bin = dir.join("cgate");
    std::fs::copy(crate::support::cgate_bin(), &bin).unwrap();
    // A test thread forking elsewhere may briefly hold the copy's write descriptor (until
    // its exec): wait until the copy can be run.
    let runnable = (0..500).any(|_| match Command::new(&bin).arg("--version").output() {
        Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) => {
            std::thread::sleep(std::time::Duration::from_millis(10));
            false
        }
        r => r.map(|o| o.status.success()).unwrap_or(false),
    });
    assert!(runnable, "the copied binary runs");
    let pidf = dir.join("cgate.pid");
    let pids = pidf.to_str().unwrap();
    let server = Server::start_bin(
        &bin,
        Transport::Unix,
        &[
            "--app",
            "hello",
            "--status-path",
            "/cgate-status",
            "--pid-file",
            pids,
        ],
        &[],
    );
    let old = server.pid();
    wait_for("the pid file", || pid_in(&pidf) == old);
    // The binary on disk is replaced by one that cannot serve: the successor exits at once.
    write_script(dir.path(), "broken", "#!/bin/sh\nexit 1\n");
    std::fs::rename(dir.join("broken"), &bin).unwrap();
    let (code, err) = run_cgate(&["reload", "--pid-file", pids, "--timeout", "120"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            format!("cgate reload: reload failed: pid {old} serves on (see its log)\n").as_str()
        ),
        "{}",
        server.backend.output()
    );
    assert!(
        server
            .backend
            .output()
            .contains("cgate: reload failed, serving on: "),
        "{}",
        server.backend.output()
    );
    assert_eq!(pid_in(&pidf), old);
    server.assert_serves_hello("after the failed reload");
}

#[test]
fn no_process_is_exit_3_a_silent_one_times_out_with_1_and_usage_is_2() {
    let dir = TempDir::new("ops-reload-3");
    let pidf = dir.join("x.pid");
    let pids = pidf.to_str().unwrap();
    let (code, err) = run_cgate(&["reload", "--pid-file", pids]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.starts_with(&format!("cgate reload: cannot read pid file {pids}: ")),
        "{err}"
    );
    std::fs::write(&pidf, "garbage\n").unwrap();
    let (code, err) = run_cgate(&["reload", "--pid-file", pids]);
    assert_eq!(code, 3, "{err}");
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    std::fs::write(&pidf, format!("{dead}\n")).unwrap();
    let (code, err) = run_cgate(&["reload", "--pid-file", pids]);
    assert_eq!(
        (code, err.as_str()),
        (
            3,
            format!("cgate reload: no process {dead} (pid file {pids})\n").as_str()
        )
    );
    // A live process that is no server of this file (a stale pid, reused): refused before
    // any signal, and it lives on.
    let mut other = Command::new("sleep").arg("600").spawn().unwrap();
    let pid = other.id();
    std::fs::write(&pidf, format!("{pid}\n")).unwrap();
    let (code, err) = run_cgate(&["reload", "--pid-file", pids]);
    let untouched = alive(pid as i32);
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(
        (code, err.as_str()),
        (
            3,
            format!(
                "cgate reload: pid {pid} is not a server of pid file {pids}: it was not started \
                 with --pid-file (stale pid file?)\n"
            )
            .as_str()
        )
    );
    assert!(untouched, "the other process got no SIGHUP");
    // A process started with this pid file that ignores SIGHUP and never rewrites it: timed
    // out.
    let ready = dir.join("deaf.ready");
    let ignore = format!(
        "import signal, time; signal.signal(signal.SIGHUP, signal.SIG_IGN); \
         open({:?}, 'w').close(); time.sleep(600)",
        ready.display().to_string()
    );
    let mut deaf = Command::new("python3")
        .args(["-c", &ignore, "--pid-file", pids])
        .spawn()
        .unwrap();
    wait_for("SIGHUP ignored", || ready.exists());
    let pid = deaf.id();
    std::fs::write(&pidf, format!("{pid}\n")).unwrap();
    let (code, err) = run_cgate(&["reload", "--pid-file", pids, "--timeout", "1"]);
    let _ = deaf.kill();
    let _ = deaf.wait();
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            format!("cgate reload: reload timed out after 1 s: the pid file still names {pid}\n")
                .as_str()
        )
    );
    assert_eq!(run_cgate(&["reload"]).0, 2);
    assert_eq!(
        run_cgate(&["reload", "--pid-file", pids, "--timeout", "0"]).0,
        2
    );
}
