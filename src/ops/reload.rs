//! Zero-loss reload: a new process (the binary on disk, same arguments) gets the listening socket itself, serves, and the old one drains.
//!
//! The socket never leaves LISTEN: the successor inherits the same descriptor (its number
//! in `CGATE_HANDOVER=LISTEN_FD:READY_FD`, the socket file in `CGATE_HANDOVER_PATH`), starts
//! its pool and writes one byte on the ready pipe. Only then does the old process stop
//! accepting; it finishes its requests in flight, closes kept-alive connections between
//! requests and exits. If the successor fails or is not ready within [`READY_TIMEOUT`], the
//! old process serves on. Under systemd (`Type=notify`) the old process reports
//! `RELOADING=1`, then `MAINPID=<successor>` and `READY=1`.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::net::listener::Listener;

/// Environment variable naming the inherited listener and ready-pipe descriptors.
pub const HANDOVER_ENV: &str = "CGATE_HANDOVER";
/// Environment variable naming the socket file the successor takes charge of.
pub const HANDOVER_PATH_ENV: &str = "CGATE_HANDOVER_PATH";
/// How long a successor may take to start serving.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The write end of the ready pipe, when this process is a reload successor.
static READY: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// What the running server needs to hand its socket to a successor.
pub struct Handover {
    listen_fd: OwnedFd,
    path: Option<PathBuf>,
}

impl Handover {
    /// Keeps a duplicate of the listening descriptor for a later reload.
    pub fn prepare(listener: &Listener, path: Option<&Path>) -> Option<Handover> {
        let listen_fd = listener.as_fd().try_clone_to_owned().ok()?;
        Some(Handover {
            listen_fd,
            path: path.map(Path::to_path_buf),
        })
    }

    /// Starts the successor and waits until it serves; returns its pid.
    pub fn start_successor(&self) -> std::io::Result<u32> {
        super::notify::reloading();
        let r = self.spawn_and_wait();
        if r.is_err() {
            super::notify("READY=1");
        }
        r
    }

    fn spawn_and_wait(&self) -> std::io::Result<u32> {
        let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        // Duplicates without close-on-exec: exactly these two reach the successor.
        let child_listen = nix::unistd::dup(self.listen_fd.as_fd())?;
        let child_ready = nix::unistd::dup(ready_w.as_fd())?;
        drop(ready_w);
        let exe = binary()?;
        let mut cmd = Command::new(&exe);
        cmd.args(std::env::args_os().skip(1)).env(
            HANDOVER_ENV,
            format!("{}:{}", child_listen.as_raw_fd(), child_ready.as_raw_fd()),
        );
        match &self.path {
            Some(p) => cmd.env(HANDOVER_PATH_ENV, p),
            None => cmd.env_remove(HANDOVER_PATH_ENV),
        };
        let mut child = cmd.spawn()?;
        drop((child_listen, child_ready));
        let pid = child.id();
        // Not a script: the runner's list of script groups never holds it.
        match wait_ready(ready_r.as_fd()) {
            Ok(()) => {
                super::notify(&format!("MAINPID={pid}\nREADY=1"));
                Ok(pid)
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }
}

/// The binary to start: this one's path on disk (a replaced binary is the new version).
fn binary() -> std::io::Result<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").or_else(|_| std::env::current_exe())?;
    let s = exe.to_string_lossy();
    Ok(match s.strip_suffix(" (deleted)") {
        Some(p) => PathBuf::from(p),
        None => exe,
    })
}

fn wait_ready(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let ms = u16::try_from(READY_TIMEOUT.as_millis()).unwrap_or(u16::MAX);
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => {
                return Err(std::io::Error::other(
                    "the new process did not start in time",
                ));
            }
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) if std::time::Instant::now() < deadline => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut file = std::fs::File::from(fd.try_clone_to_owned()?);
    let mut b = [0u8; 1];
    match file.read(&mut b)? {
        1 => Ok(()),
        _ => Err(std::io::Error::other(
            "the new process exited before serving",
        )),
    }
}

fn parse_handover(v: &str) -> Option<(i32, i32)> {
    let (l, r) = v.split_once(':')?;
    let (l, r) = (l.parse().ok()?, r.parse().ok()?);
    (l > 2 && r > 2 && l != r).then_some((l, r))
}

/// `true` when this process was started by a reloading predecessor.
pub fn inherited_env() -> bool {
    std::env::var_os(HANDOVER_ENV).is_some()
}

/// The listener handed over by a reloading predecessor, if this process is its successor.
pub fn inherited() -> Option<std::io::Result<Listener>> {
    let v = std::env::var(HANDOVER_ENV).ok()?;
    let Some((listen, ready)) = parse_handover(&v) else {
        return Some(Err(std::io::Error::other(format!(
            "{HANDOVER_ENV}={v:?} is malformed"
        ))));
    };
    Some(adopt(listen, ready))
}

fn adopt(listen: i32, ready: i32) -> std::io::Result<Listener> {
    let l = Listener::adopt(listen)?;
    let ready_fd = crate::os::adopt_fd(ready)?;
    *READY.lock().unwrap_or_else(|p| p.into_inner()) = Some(ready_fd);
    Ok(match (l, std::env::var_os(HANDOVER_PATH_ENV)) {
        (Listener::Unix(u, None), Some(p)) => Listener::Unix(u, Some(PathBuf::from(p))),
        (l, _) => l,
    })
}

/// Tells the service manager (and a reloading predecessor) that this process serves.
pub fn announce_ready() {
    let pipe = READY.lock().unwrap_or_else(|p| p.into_inner()).take();
    match pipe {
        Some(fd) => {
            use std::io::Write;
            let _ = std::fs::File::from(fd).write_all(b"1");
            super::notify(&format!("MAINPID={}\nREADY=1", std::process::id()));
        }
        None => super::notify(&format!("READY=1\nMAINPID={}", std::process::id())),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_handover;

    #[test]
    fn handover_values() {
        assert_eq!(parse_handover("5:6"), Some((5, 6)));
        assert_eq!(parse_handover("0:6"), None);
        assert_eq!(parse_handover("5:5"), None);
        assert_eq!(parse_handover("5"), None);
        assert_eq!(parse_handover("x:6"), None);
    }
}
