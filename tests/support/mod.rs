//! Shared helpers for the integration tests: temp dirs, ports, hashes, config snippets, and guards that run real servers.
//!
//! Typical use (each guard stops its server by PID on drop and prints its logs if the test
//! panicked):
//!
//! ```text
//! let dir = TempDir::new("echo");
//! let sock = dir.join("cgate.sock");
//! let mut app = Command::new(cgate_bin());
//! app.args(["fastcgi", "--listen", "fd:0", "--app", "echo"]);
//! let _cgate = spawn_fcgi(&sock, &app);            // or Backend::spawn(.., &[Ready::Unix(sock)])
//! let nginx = Nginx::start_with(&conf::nginx_upstream(&sock), &conf::nginx_site(true));
//! let r = request("GET", nginx.port(), "/app/x?y=1", &[], b"");
//! assert_eq!(r.status, 200, "{}", nginx.error_log());
//! ```
#![allow(dead_code, unused_imports)]

pub mod apache;
pub mod body;
pub mod conf;
pub mod fcgi_bytes;
pub mod fcgi_echo;
pub mod golden;
pub mod http;
pub mod inproc;
pub mod nginx;
pub mod procs;

pub use apache::Apache;
pub use http::{Response, request};
pub use nginx::Nginx;
pub use procs::{Backend, Fcgiwrap, Ready, spawn_fcgi};

use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bound for every blocking wait in the harness (reads, start-up, shutdown).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held. The
/// one wait in the harness for a state another process reaches (an exit, a count).
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Path of the `cgate` binary built by cargo for these tests.
pub fn cgate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cgate"))
}

/// The `demo` example (a user app served through `cgate::run`), built if it is missing.
pub fn demo_bin() -> PathBuf {
    let bin = cgate_bin();
    let path = bin
        .parent()
        .expect("binary has a directory")
        .join("examples")
        .join("demo");
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--example", "demo"])
            .current_dir(manifest_dir())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --example demo failed");
    });
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// Root of the source tree (where `conf/` lives).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `len` deterministic pseudo-random bytes (xorshift64), different for every `seed`: the
/// whole of a [`Pattern`].
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    std::io::Read::read_to_end(&mut Pattern::seeded(len as u64, seed), &mut out)
        .expect("a pattern reads");
    out
}

/// The one test data generator: `left` deterministic pseudo-random bytes (xorshift64),
/// produced as they are read, so a body of any size needs no memory.
pub struct Pattern {
    /// Bytes still to produce.
    pub left: u64,
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    /// `len` bytes of the seed-1 sequence.
    pub fn new(len: u64) -> Pattern {
        Pattern::seeded(len, 1)
    }

    /// `len` bytes of the sequence for `seed`.
    pub fn seeded(len: u64, seed: u64) -> Pattern {
        Pattern {
            left: len,
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            word: [0; 8],
            used: 8,
        }
    }

    /// SHA-256 of `Pattern::new(len)`, computed without holding the bytes.
    pub fn sha256(len: u64) -> Vec<u8> {
        let mut p = Pattern::new(len);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = std::io::Read::read(&mut p, &mut buf).expect("a pattern reads");
            if n == 0 {
                return h.finalize().to_vec();
            }
            h.update(&buf[..n]);
        }
    }
}

impl std::io::Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        for b in &mut buf[..n] {
            if self.used == 8 {
                let x = &mut self.state;
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                self.word = x.to_le_bytes();
                self.used = 0;
            }
            *b = self.word[self.used];
            self.used += 1;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

static PORTS_GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Lowest port [`free_port`] hands out.
const FIRST_TEST_PORT: u16 = 10_000;

/// The kernel's first ephemeral port (`ip_local_port_range`), 32768 when unreadable.
fn first_ephemeral_port() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A TCP port on 127.0.0.1 that was free a moment ago and has not been handed out before in
/// this test process. It lies below the kernel's ephemeral range, so that no outgoing
/// connection (of this or any other test) is given it as its local port between this call
/// and the server's bind: such a port is either refused at bind or, worse, answers the
/// readiness probe in place of the server.
pub fn free_port() -> u16 {
    let end = first_ephemeral_port().max(FIRST_TEST_PORT + 1000);
    let span = u64::from(end - FIRST_TEST_PORT);
    let mut seed = u64::from(std::process::id()) << 20
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()));
    loop {
        // xorshift: a different start per process, so parallel test binaries rarely meet.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = FIRST_TEST_PORT + (seed % span) as u16;
        let mut given = PORTS_GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        let given = given.get_or_insert_with(HashSet::new);
        if given.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        given.insert(port);
        return port;
    }
}

static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory (mode 0755, so server workers running as `www-data` can enter it),
/// removed with everything in it on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/cgate-<pid>-<n>-<tag>`.
    pub fn new(tag: &str) -> TempDir {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("cgate-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        chmod(&path, 0o755);
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path().join(name)`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates (mode 0755) and returns the subdirectory `name`.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        chmod(&p, 0o755);
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Sets the permission bits of `path`.
pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Writes `body` to `dir/name` with mode 0755 and returns the path (for CGI scripts).
pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    chmod(&p, 0o755);
    p
}

/// Copies the executable `src` to `dir/name` with mode 0755 (e.g. the cgate binary into a
/// cgi-bin that `www-data` can reach) and returns the new path.
pub fn install_exe(src: &Path, dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(src, &p)
        .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", src.display(), p.display()));
    chmod(&p, 0o755);
    p
}

/// Full path of an installed program, looked up in `PATH` and the sbin directories.
/// Panics with an install hint when it is missing: such tests fail, never skip.
pub fn find_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for extra in ["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/bin"] {
        dirs.push(PathBuf::from(extra));
    }
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{name}` is not installed; these tests need nginx, apache2, spawn-fcgi, fcgiwrap and curl \
         (`bash scripts/test.sh` installs them with apt-get)"
    );
}

/// True when the tests run as root (servers then drop their workers to a user).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Reads a log file for a failure report (empty note when it does not exist).
pub fn read_log(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => format!("<{}: {e}>", path.display()),
    }
}
