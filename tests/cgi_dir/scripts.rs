//! Helpers for the cgi:DIR tests: a copied script directory, requests run in process, sinks.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cgate::apps::cgi::{CgiDir, CgiOptions};
use cgate::gateway::{
    BodyLength, Environ, GatewayFacts, Head, Input, MemorySink, Request, Sink, run_app,
};
use sha2::{Digest, Sha256};

pub use crate::support::inproc::{Run, headers, run_app_into};
pub use crate::support::{Pattern, TempDir, eventually};

/// A temporary copy of tests/cgi-scripts with every script made 0755; the [`TempDir`] held
/// alongside removes it on drop.
pub struct Scripts(pub PathBuf, #[allow(dead_code)] TempDir);

impl Scripts {
    pub fn new() -> Scripts {
        let tmp = TempDir::new("cgi-dir");
        let dir = tmp.path().to_path_buf();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cgi-scripts");
        for entry in fs::read_dir(src).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "sh") {
                let to = dir.join(path.file_name().unwrap());
                fs::copy(&path, &to).unwrap();
                fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        Scripts(dir, tmp)
    }

    pub fn app(&self, options: CgiOptions) -> CgiDir {
        CgiDir::new(self.0.clone(), options).unwrap()
    }
}

pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn environ(vars: &[(&str, &[u8])]) -> Environ {
    let mut e = Environ::new(GatewayFacts::local());
    e.set("REQUEST_METHOD", "GET");
    e.set("SCRIPT_NAME", "");
    for (n, v) in vars {
        e.set(n, v);
    }
    e
}

/// Runs one request with `body` of `len` bytes (CONTENT_LENGTH set when `len > 0`).
pub fn run_with<S: Sink>(
    app: &CgiDir,
    mut env: Environ,
    body: &mut dyn Read,
    len: u64,
    sink: S,
) -> Run<S> {
    if len > 0 {
        env.set("REQUEST_METHOD", "POST");
        env.set("CONTENT_LENGTH", len.to_string());
    }
    run_app_into(app, env, body, BodyLength::Exact(len), sink)
}

/// GET `path_info` (with an optional query string) into a [`MemorySink`].
pub fn get(app: &CgiDir, path_info: &str, query: &str) -> Run<MemorySink> {
    let env = environ(&[
        ("PATH_INFO", path_info.as_bytes()),
        ("QUERY_STRING", query.as_bytes()),
    ]);
    run_with(app, env, &mut io::empty(), 0, MemorySink::default())
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// A sink that keeps only the head, a running hash and the byte count of the body.
#[derive(Default)]
pub struct HashSink {
    pub head: Option<Head>,
    pub hash: Sha256,
    pub len: u64,
    pub finished: bool,
}

impl Sink for HashSink {
    fn send_head(&mut self, head: &Head) -> io::Result<()> {
        self.head = Some(head.clone());
        Ok(())
    }
    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.hash.update(chunk);
        self.len += chunk.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.finished = true;
        Ok(())
    }
    fn abort(&mut self) {}
}

/// The script pid the runner logged as `(pid N)`.
pub fn printed_pid(errors: &str) -> i32 {
    let at = errors.find("(pid ").expect("the runner logged the pid") + 5;
    let digits: String = errors[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

/// Live (non-zombie) processes whose process group is `pgid`, from /proc.
pub fn live_in_group(pgid: i32) -> usize {
    let mut n = 0;
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = after.split_whitespace().collect();
        // after the command: state, ppid, pgrp
        if f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z" && f[0] != "X" {
            n += 1;
        }
    }
    n
}

/// Waits (bounded) until no live process is left in the group; answers how many are left.
pub fn group_left_after_wait(pgid: i32) -> usize {
    eventually(Duration::from_secs(5), || live_in_group(pgid) == 0);
    live_in_group(pgid)
}

/// Opens the script's gate FIFO once the first chunk has reached the client.
pub struct GateSink {
    pub inner: MemorySink,
    pub gate: std::path::PathBuf,
    pub opened: bool,
}

impl Sink for GateSink {
    fn send_head(&mut self, head: &Head) -> io::Result<()> {
        self.inner.send_head(head)
    }
    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.inner.send_body(chunk)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()?;
        if !self.opened && !self.inner.flushes.is_empty() {
            self.opened = true;
            open_gate(&self.gate);
        }
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }
    fn abort(&mut self) {
        self.inner.abort()
    }
}

/// Writes a line to the FIFO, waiting (bounded) for its reader.
pub fn open_gate(gate: &std::path::Path) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        match fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(gate)
        {
            Ok(mut f) => {
                f.write_all(b"go\n").unwrap();
                return;
            }
            Err(e) if Instant::now() < until && e.raw_os_error() == Some(nix::libc::ENXIO) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("gate: {e}"),
        }
    }
}

pub fn make_gate(s: &Scripts) -> std::path::PathBuf {
    let gate = s.0.join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    gate
}

/// A client that goes away at the first body chunk.
#[derive(Default)]
pub struct GoneSink {
    pub chunks: usize,
}

impl Sink for GoneSink {
    fn send_head(&mut self, _: &Head) -> io::Result<()> {
        Ok(())
    }
    fn send_body(&mut self, _: &[u8]) -> io::Result<()> {
        self.chunks += 1;
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::BrokenPipe, "client gone"))
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn abort(&mut self) {}
}

/// Writes an executable script `name` into the directory.
pub fn script(s: &Scripts, name: &str, text: &str) -> PathBuf {
    let p = s.0.join(name);
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// The canonical path of `p`, as the runner names files in its log.
pub fn canon(p: &Path) -> String {
    fs::canonicalize(p).unwrap().display().to_string()
}

/// Records every write call to the error stream separately.
#[derive(Default)]
pub struct Writes(pub Vec<Vec<u8>>);

impl Write for Writes {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.push(b.to_vec());
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs one GET, keeping each write to the error stream apart.
pub fn run_logged<S: Sink>(app: &CgiDir, env: Environ, sink: &mut S) -> Vec<String> {
    let mut errors = Writes::default();
    {
        let mut empty = io::empty();
        let mut req = Request::new(
            env,
            Input::new(&mut empty, BodyLength::Exact(0)),
            &mut errors,
        );
        run_app(app, &mut req, sink);
    }
    errors
        .0
        .iter()
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

/// A transport whose "socket" is a pipe the test writes to. With `stays` unset the client
/// is gone once the pipe is readable; with it set the client never goes, though the pipe
/// may stay readable (a transport that cannot consume what is pending).
pub struct WatchedSink {
    pub inner: MemorySink,
    pub watch: std::os::fd::OwnedFd,
    pub stays: bool,
    pub asked: usize,
}

impl WatchedSink {
    pub fn new(watch: std::os::fd::OwnedFd, stays: bool) -> WatchedSink {
        WatchedSink {
            inner: MemorySink::default(),
            watch,
            stays,
            asked: 0,
        }
    }
}

impl Sink for WatchedSink {
    fn send_head(&mut self, head: &Head) -> io::Result<()> {
        self.inner.send_head(head)
    }
    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.inner.send_body(chunk)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }
    fn abort(&mut self) {
        self.inner.abort()
    }
    fn client_gone(&mut self) -> bool {
        use std::os::fd::AsFd;
        self.asked += 1;
        let mut fds = [nix::poll::PollFd::new(
            self.watch.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        !self.stays && nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap_or(0) > 0
    }
    fn watch_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(self.watch.as_fd())
    }
}
