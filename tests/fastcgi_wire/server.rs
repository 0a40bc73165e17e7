//! The server under test: a `cgate fastcgi` (or demo) process on a fresh address, and /proc probes of it.

use std::path::Path;
use std::process::Command;

use crate::client::{Addr, Conn, HELLO, Transport, get, simple_reply};
use crate::support::{Backend, TempDir, free_port};

/// A `cgate fastcgi` (or demo) process listening on a fresh address.
pub struct Server {
    pub backend: Backend,
    pub addr: Addr,
    _dir: TempDir,
}

impl Server {
    /// Starts `bin fastcgi --listen ADDR ARGS...` with `env` added, and waits until it accepts.
    pub fn start_bin(bin: &Path, t: Transport, args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = TempDir::new("wire");
        let addr = match t {
            Transport::Unix => Addr::Unix(dir.join("cgate.sock")),
            Transport::Tcp => Addr::Tcp(free_port()),
        };
        let mut cmd = Command::new(bin);
        cmd.arg("fastcgi")
            .arg("--listen")
            .arg(addr.listen_arg())
            .args(args);
        cmd.env_remove("CGATE_APP")
            .env_remove("FCGI_WEB_SERVER_ADDRS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let backend = Backend::spawn("cgate", cmd, &[addr.ready()]);
        Server {
            backend,
            addr,
            _dir: dir,
        }
    }

    /// `cgate fastcgi` serving a built-in app.
    pub fn start(t: Transport, app: &str, args: &[&str]) -> Server {
        let mut all = vec!["--app", app];
        all.extend_from_slice(args);
        Server::start_bin(&crate::support::cgate_bin(), t, &all, &[])
    }

    /// The demo example app.
    pub fn demo(t: Transport, args: &[&str]) -> Server {
        Server::start_bin(&crate::support::demo_bin(), t, args, &[])
    }

    /// A new connection.
    pub fn connect(&self) -> Conn {
        self.addr.connect()
    }

    /// The server's PID.
    pub fn pid(&self) -> i32 {
        self.backend.pid().as_raw()
    }

    /// Asserts a fresh connection gets the exact hello reply (the process still serves).
    pub fn assert_serves_hello(&self, what: &str) {
        self.assert_serves(HELLO, what);
    }

    /// Asserts a fresh connection's `GET /` gets exactly `reply` as its STDOUT.
    pub fn assert_serves(&self, reply: &[u8], what: &str) {
        let mut c = self.connect();
        let r = c.roundtrip(1, &get(1, 0, "/"));
        assert_eq!(
            r.raw,
            simple_reply(1, reply),
            "{what}: {}",
            self.backend.output()
        );
    }
}

/// Number of threads of process `pid`.
pub fn thread_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Number of open descriptors of process `pid`.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmPeak`, ...).
pub fn status_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// Resident set size of process `pid` in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    status_kib(pid, "VmRSS")
}

pub use crate::support::eventually;
