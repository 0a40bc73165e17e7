//! `cgate reload --pid-file PATH`: SIGHUP to a running `cgate fastcgi`, then wait until its pid file names the new process (which writes it once it serves).
//!
//! Exit codes: 0 reloaded; 1 timed out or the reload failed (the old process serves on);
//! 2 usage; 3 no such process, an unreadable pid file, or a process that does not serve
//! this pid file (never signalled). One line on stderr says which.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::ops::pidfile;

/// Reloaded: the pid file names a new process.
pub const EXIT_RELOADED: i32 = 0;
/// Timed out, or the old process reported the reload failed (and serves on).
pub const EXIT_FAILED: i32 = 1;
/// No such process, or the pid file is missing or unreadable.
pub const EXIT_NO_PROCESS: i32 = 3;
/// How often the pid file is looked at while waiting.
const POLL: Duration = Duration::from_millis(20);

/// `cgate reload` flags.
#[derive(Args, Debug, Clone)]
pub struct ReloadArgs {
    /// The pid file the server writes (`cgate fastcgi --pid-file PATH`).
    #[arg(long, value_name = "PATH")]
    pub pid_file: PathBuf,
    /// Seconds to wait for the new process to serve (default 35, 1 to 86400: the old
    /// process gives its successor 30 s).
    #[arg(long, value_name = "SECS", default_value_t = 35,
        value_parser = clap::value_parser!(u64).range(1..=super::MAX_SECS))]
    pub timeout: u64,
}

/// How the wait ended.
#[derive(Debug, PartialEq, Eq)]
enum Waited {
    /// The file names this new pid.
    New(i32),
    /// The old process rewrote the file with its own pid: the reload failed.
    Failed,
    /// The old process is gone and no new pid was written.
    Gone,
    /// The deadline passed.
    TimedOut,
}

/// Runs `cgate reload`; returns the exit code.
pub fn run(a: &ReloadArgs) -> i32 {
    let path = &a.pid_file;
    let (old, ino) = match pidfile::read(path) {
        Ok(x) => x,
        Err(e) => {
            say(&format!("cannot read pid file {}: {e}", path.display()));
            return EXIT_NO_PROCESS;
        }
    };
    if let Err(why) = serves_this_file(old, path) {
        say(&format!(
            "pid {old} is not a server of pid file {}: {why} (stale pid file?)",
            path.display()
        ));
        return EXIT_NO_PROCESS;
    }
    match kill(Pid::from_raw(old), Signal::SIGHUP) {
        Ok(()) => {}
        Err(Errno::ESRCH) => {
            say(&format!("no process {old} (pid file {})", path.display()));
            return EXIT_NO_PROCESS;
        }
        Err(e) => {
            say(&format!("cannot signal pid {old}: {e}"));
            return EXIT_NO_PROCESS;
        }
    }
    let timeout = Duration::from_secs(a.timeout);
    match wait(path, old, ino, timeout) {
        Waited::New(new) => {
            say(&format!("reloaded: pid {old} -> {new}"));
            EXIT_RELOADED
        }
        Waited::Failed => {
            say(&format!("reload failed: pid {old} serves on (see its log)"));
            EXIT_FAILED
        }
        Waited::Gone => {
            say(&format!(
                "reload failed: pid {old} exited, no new process serves"
            ));
            EXIT_FAILED
        }
        Waited::TimedOut => {
            say(&format!(
                "reload timed out after {} s: the pid file still names {old}",
                a.timeout
            ));
            EXIT_FAILED
        }
    }
}

/// Checks, before any signal is sent, that process `pid` was started with `--pid-file` naming
/// this very file (same device and inode), so a stale file whose pid now belongs to another
/// program never gets it a SIGHUP. A process gone is `ESRCH`-reported by the caller's kill.
fn serves_this_file(pid: i32, path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return Ok(()); // gone (the signal says so) or hidden: nothing to check against
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let given = args.iter().enumerate().find_map(|(i, a)| {
        if *a == b"--pid-file" {
            args.get(i + 1).copied()
        } else {
            a.strip_prefix(b"--pid-file=")
        }
    });
    let Some(given) = given else {
        return Err("it was not started with --pid-file".into());
    };
    let given = Path::new(std::ffi::OsStr::from_bytes(given));
    let theirs = if given.is_absolute() {
        given.to_path_buf()
    } else {
        match std::fs::read_link(format!("/proc/{pid}/cwd")) {
            Ok(cwd) => cwd.join(given),
            Err(_) => return Ok(()), // its directory is not ours to see: cannot tell
        }
    };
    let same = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    };
    if same(&theirs, path) {
        Ok(())
    } else {
        Err(format!("its --pid-file is {}", given.display()))
    }
}

fn say(line: &str) {
    eprintln!("cgate reload: {line}");
}

fn alive(pid: i32) -> bool {
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

/// Polls the pid file until it names a live new pid, is rewritten by `old`, or `old` is gone.
fn wait(path: &Path, old: i32, ino: u64, timeout: Duration) -> Waited {
    let deadline = Instant::now() + timeout;
    loop {
        match pidfile::read(path) {
            Ok((pid, _)) if pid != old && alive(pid) => return Waited::New(pid),
            Ok((pid, now)) if pid == old && now != ino => return Waited::Failed,
            _ if !alive(old) => {
                // The successor may have written its pid just before the old one exited.
                return match pidfile::read(path) {
                    Ok((pid, _)) if pid != old && alive(pid) => Waited::New(pid),
                    _ => Waited::Gone,
                };
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            return Waited::TimedOut;
        }
        std::thread::sleep(POLL);
    }
}
