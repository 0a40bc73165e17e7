//! One running script: spawned directly in its own process group, always killed and reaped.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use super::resolve::Script;

/// How long a script's process group has between SIGTERM and SIGKILL: 2 s.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

/// A spawned script. Dropping it kills whatever is left of its process group (SIGKILL) and
/// reaps the script, so no path (error, panic, client abort) leaves a zombie or a stray
/// process of the group behind.
pub struct Running {
    pgid: Pid,
    status: Option<ExitStatus>,
}

/// The script's three pipes, non-blocking.
pub struct Pipes {
    /// Its stdin (the request body goes here).
    pub stdin: Option<ChildStdin>,
    /// Its stdout (the reply).
    pub stdout: Option<ChildStdout>,
    /// Its stderr (to the error log).
    pub stderr: Option<ChildStderr>,
}

/// Makes a fresh pipe end non-blocking: its only status flag then is O_NONBLOCK (the
/// access mode is not changed by F_SETFL), so no F_GETFL is needed.
fn nonblocking(fd: impl AsFd) -> io::Result<()> {
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    Ok(())
}

impl Running {
    /// Runs the checked script's open file directly (no shell, never by path again) with
    /// argv = its path only, in its directory, in a new process group, with exactly `env`
    /// and pipes on fds 0, 1 and 2 (see [`crate::os::spawn_script`]); registers its group
    /// for [`terminate_all`].
    pub fn spawn(script: &Script, env: Vec<(OsString, OsString)>) -> io::Result<(Running, Pipes)> {
        let fd = script.file.as_fd();
        let spawned =
            crate::os::spawn_script(fd, script.interpreted, &script.path, &script.dir, &env)?;
        register(spawned.pid);
        let running = Running {
            pgid: Pid::from_raw(spawned.pid),
            status: None,
        };
        let pipes = Pipes {
            stdin: Some(ChildStdin::from(spawned.stdin)),
            stdout: Some(ChildStdout::from(spawned.stdout)),
            stderr: Some(ChildStderr::from(spawned.stderr)),
        };
        for r in [
            pipes.stdin.as_ref().map(nonblocking),
            pipes.stdout.as_ref().map(nonblocking),
            pipes.stderr.as_ref().map(nonblocking),
        ] {
            r.unwrap_or_else(|| Err(io::Error::other("missing child pipe")))?;
        }
        Ok((running, pipes))
    }

    /// The script's process id (also its process group id).
    pub fn pid(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// `true` once the script itself has exited (it is not reaped by this check).
    pub fn exited(&self) -> bool {
        if self.status.is_some() {
            return true;
        }
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        !matches!(
            waitid(Id::Pid(self.pgid), flags),
            Ok(WaitStatus::StillAlive)
        )
    }

    /// Kills what is left of the process group and reaps the script, whose exit is known.
    /// The unreaped script keeps the group id from being reused until then.
    pub fn finish(&mut self) -> io::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let _ = killpg(self.pgid, Signal::SIGKILL);
        // Out of the registry while still unreaped: the group id cannot be reused yet.
        unregister(self.pgid.as_raw());
        let s = loop {
            match waitpid(self.pgid, None) {
                Ok(WaitStatus::Exited(_, code)) => break ExitStatus::from_raw((code & 0xff) << 8),
                Ok(WaitStatus::Signaled(_, sig, _)) => break ExitStatus::from_raw(sig as i32),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        };
        self.status = Some(s);
        Ok(s)
    }

    /// Stops a script that is still running: SIGTERM to its group, up to `grace` for the
    /// script to exit, then SIGKILL to the group; reaps it.
    pub fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        if self.status.is_none() {
            let _ = killpg(self.pgid, Signal::SIGTERM);
            let until = Instant::now() + grace;
            crate::gateway::blocking(|| {
                while !self.exited() && Instant::now() < until {
                    thread::sleep(Duration::from_millis(10));
                }
            });
        }
        self.finish()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Process groups of the scripts running now (their leaders unreaped, so no id is reused
/// while listed).
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn groups() -> std::sync::MutexGuard<'static, Vec<i32>> {
    GROUPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn register(pgid: i32) {
    groups().push(pgid);
    crate::os::group_guard(pgid, true);
}

fn unregister(pgid: i32) {
    groups().retain(|&g| g != pgid);
    crate::os::group_guard(pgid, false);
}

/// Signals every running script's process group.
fn signal_all(sig: Signal) -> usize {
    let list = groups();
    for &g in list.iter() {
        let _ = killpg(Pid::from_raw(g), sig);
    }
    list.len()
}

/// Waits up to `grace` for the registry to empty (each request reaps its own script once
/// its output ends); answers how many are left.
fn wait_empty(grace: Duration) -> usize {
    let until = Instant::now() + grace.min(Duration::from_secs(3600));
    loop {
        let left = groups().len();
        if left == 0 || Instant::now() >= until {
            return left;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Stops every running script: SIGTERM to each process group, up to `grace` for them to
/// end, then SIGKILL to the groups still listed, and up to 2 s more for their requests to
/// reap them. Answers how many scripts were still listed at the end (0 normally). For a
/// server's exit paths: the requests waiting on those scripts end with their output.
pub fn terminate_all(grace: Duration) -> usize {
    if signal_all(Signal::SIGTERM) == 0 {
        return 0;
    }
    if wait_empty(grace) == 0 {
        return 0;
    }
    signal_all(Signal::SIGKILL);
    wait_empty(Duration::from_secs(2))
}

/// A short description of an exit status for the log.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => match Signal::try_from(s) {
            Ok(sig) => format!("killed by {sig}"),
            Err(_) => format!("killed by signal {s}"),
        },
        _ => "ended".to_owned(),
    }
}
