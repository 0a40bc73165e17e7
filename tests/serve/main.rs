//! `cgate serve` from the outside: real HTTP clients (curl, a std-only client, headless Chromium) against the binary.

#[path = "../support/mod.rs"]
mod support;

mod basics;
mod bodies;
mod browser;
mod cgi;
mod concurrency;
mod environ;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread;

use serde_json::Value;
use support::{Backend, Ready, TIMEOUT, TempDir, cgate_bin, chmod, free_port};

/// `cgate serve --listen 127.0.0.1:PORT ARGS...`, stopped by PID on drop.
pub struct Serve {
    /// The server process.
    pub backend: Backend,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Serve {
    /// Starts the server and waits until its port accepts connections.
    pub fn start(args: &[&str]) -> Serve {
        let port = free_port();
        let mut cmd = Command::new(cgate_bin());
        cmd.env_remove("CGATE_APP")
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args);
        let backend = Backend::spawn("cgate serve", cmd, &[Ready::Tcp(port)]);
        Serve { backend, port }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the server wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        self.backend.output()
    }

    /// Waits (bounded by [`TIMEOUT`]) until the log holds `needle`; panics with the log.
    pub fn wait_log(&self, needle: &str) {
        let start = std::time::Instant::now();
        while !self.log().contains(needle) {
            assert!(
                start.elapsed() < TIMEOUT,
                "no {needle:?} in the log:\n{}",
                self.log()
            );
            thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// The echo app's JSON `environ` object.
pub fn environ_of(body: &[u8]) -> serde_json::Map<String, Value> {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("echo answers JSON ({e}): {}", String::from_utf8_lossy(body)));
    v["environ"].as_object().expect("environ object").clone()
}

/// A copy of tests/cgi-scripts (scripts 0755) in `dir/cgi`, plus a FIFO `gate` for slow.sh.
pub fn cgi_dir(dir: &TempDir) -> PathBuf {
    let cgi = dir.subdir("cgi");
    let src = support::manifest_dir().join("tests/cgi-scripts");
    for entry in fs::read_dir(&src).expect("tests/cgi-scripts") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().expect("file name");
        fs::copy(&path, cgi.join(name)).expect("copy script");
        chmod(&cgi.join(name), 0o755);
    }
    nix::unistd::mkfifo(
        &cgi.join("gate"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("mkfifo gate");
    cgi
}

/// Opens slow.sh's FIFO `gate` and writes a line, releasing the script's pause. Bounded by
/// [`TIMEOUT`] (the open waits until the script opens the FIFO for reading).
pub fn open_gate(cgi: &Path) {
    let gate = cgi.join("gate");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let r = fs::OpenOptions::new()
            .write(true)
            .open(&gate)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"go\n"));
        let _ = tx.send(r);
    });
    rx.recv_timeout(TIMEOUT)
        .expect("slow.sh opened its gate")
        .expect("write to the gate");
}

/// Runs `curl ARGS...` and returns its stdout; panics when curl fails (or is missing).
pub fn curl(args: &[&str]) -> Vec<u8> {
    let bin = support::find_program("curl");
    let out = Command::new(bin)
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Reads everything `r` still has (for checks on what a peer sent).
pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).expect("read");
    v
}
