//! Helpers for the operations tests: a cgate with a log directory, status fetches, gated scripts.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::client::{Addr, Reply, Transport, get, params, request};
use crate::server::Server;
use crate::support::{TIMEOUT, TempDir, write_script};

/// A `cgate fastcgi` on a Unix socket in its own directory.
pub struct Ops {
    pub server: Server,
}

impl Ops {
    /// Starts `cgate fastcgi --listen unix:DIR/cgate.sock ARGS...`.
    pub fn start(args: &[&str]) -> Ops {
        Ops::start_env(args, &[])
    }

    /// Like [`Ops::start`] with `env` added.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Ops {
        let server = Server::start_bin(&crate::support::cgate_bin(), Transport::Unix, args, env);
        Ops { server }
    }

    /// The socket path.
    pub fn sock(&self) -> PathBuf {
        match &self.server.addr {
            Addr::Unix(p) => p.clone(),
            Addr::Tcp(_) => unreachable!("the operations tests use Unix sockets"),
        }
    }

    /// The server's stderr and stdout so far.
    pub fn output(&self) -> String {
        self.server.backend.output()
    }

    /// One GET of `uri` on a fresh connection, with `extra` params.
    pub fn get(&self, uri: &str, extra: &[(&[u8], &[u8])]) -> Reply {
        let mut c = self.server.connect();
        c.roundtrip(1, &request(1, 0, &params("GET", uri, extra), b""))
    }

    /// The status document (`--status-path /cgate-status` must be given).
    pub fn status(&self) -> serde_json::Value {
        let mut c = self.server.connect();
        let r = c.roundtrip(1, &get(1, 0, "/cgate-status"));
        assert_eq!(r.status(), 200, "{}", self.output());
        serde_json::from_slice(r.body()).expect("status is JSON")
    }
}

/// Polls until `cond` holds (failing the test after [`TIMEOUT`]).
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    assert!(
        crate::server::eventually(TIMEOUT, &mut cond),
        "timed out waiting for {what}"
    );
}

/// A script directory: `gate.sh` waits until the gate file exists, then answers
/// `released`; `whoami.sh` answers its uid and gid; `mark.sh` creates `marked`; `err.sh` writes two stderr lines; `pid.sh` writes its pid and sleeps.
pub struct Scripts {
    pub dir: TempDir,
}

impl Scripts {
    pub fn new() -> Scripts {
        let dir = TempDir::new("ops-cgi");
        let gate = dir.join("gate.open");
        let cgi = dir.subdir("cgi");
        write_script(
            &cgi,
            "gate.sh",
            &format!(
                "#!/bin/sh\nwhile [ ! -e {} ]; do sleep 0.02; done\n\
                 printf 'Content-Type: text/plain\\r\\n\\r\\nreleased\\n'\n",
                gate.display()
            ),
        );
        write_script(
            &cgi,
            "whoami.sh",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s %s\\n' \"$(id -u)\" \"$(id -g)\"\n",
        );
        write_script(
            &cgi,
            "err.sh",
            "#!/bin/sh\necho oops >&2\necho again >&2\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n",
        );
        write_script(
            &cgi,
            "mark.sh",
            &format!(
                "#!/bin/sh\ntouch {}/marked\nprintf 'Content-Type: text/plain\\r\\n\\r\\nran\\n'\n",
                dir.path().display()
            ),
        );
        write_script(
            &cgi,
            "pid.sh",
            &format!(
                "#!/bin/sh\necho $$ > {}/script.pid\nexec sleep 600\n",
                dir.path().display()
            ),
        );
        Scripts { dir }
    }

    /// The `cgi:DIR` SPEC.
    pub fn spec(&self) -> String {
        format!("cgi:{}", self.dir.join("cgi").display())
    }

    /// Opens the gate: every gate script answers.
    pub fn release(&self) {
        std::fs::write(self.dir.join("gate.open"), b"").expect("open the gate");
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Reads a file, empty when missing.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Whether process `pid` exists (a zombie counts as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')),
        Err(_) => false,
    }
}

/// Runs `cgate ARGS` to its end; returns (exit code, stderr).
pub fn run_cgate(args: &[&str]) -> (i32, String) {
    let out = Command::new(crate::support::cgate_bin())
        .args(args)
        .env_remove("CGATE_APP")
        .output()
        .expect("cgate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
