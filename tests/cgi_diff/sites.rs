//! The three ways the differential test serves one cgi-bin: cgate and fcgiwrap behind nginx, Apache mod_cgid; plus the script-process census.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{
    Apache, Backend, Nginx, Ready, TempDir, cgate_bin, chmod, conf, find_program, manifest_dir,
    spawn_fcgi,
};

/// A variable in the environment of every daemon (cgate, fcgiwrap, Apache); it must not
/// reach scripts under cgate.
pub const SECRET: (&str, &str) = ("CGATE_TEST_SECRET", "s3cret");
/// cgate's `--cgi-idle-timeout` here: a silent script gets 504 after this long.
pub const CGATE_IDLE_SECS: u64 = 5;
/// nginx's `fastcgi_read_timeout` and `fastcgi_send_timeout` here (what ends a silent script behind fcgiwrap).
pub const NGINX_READ_TIMEOUT_SECS: u64 = 15;
/// Apache's `Timeout` here (what ends a silent script under mod_cgid).
pub const APACHE_TIMEOUT_SECS: u64 = 10;

/// One way of serving the scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// nginx -> `cgate fastcgi --app cgi:DIR`.
    Cgate,
    /// nginx -> fcgiwrap (same nginx snippet).
    Fcgiwrap,
    /// Apache mod_cgid with the shipped cgi-bin snippet.
    Apache,
}

impl Peer {
    /// All three, in table order.
    pub const ALL: [Peer; 3] = [Peer::Cgate, Peer::Fcgiwrap, Peer::Apache];

    /// Column title.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Cgate => "cgate",
            Peer::Fcgiwrap => "fcgiwrap",
            Peer::Apache => "Apache",
        }
    }
}

/// A cgi-bin holding copies of tests/cgi-scripts/*.sh (mode 0755) and the `gate` FIFO
/// (mode 0666, so scripts running as www-data can read it).
pub struct CgiBin {
    _dir: TempDir,
    /// The directory (mode 0755).
    pub dir: PathBuf,
    /// `dir/gate`.
    pub gate: PathBuf,
}

impl CgiBin {
    /// Copies the scripts and makes the FIFO.
    pub fn new() -> CgiBin {
        let tmp = TempDir::new("cgi-diff");
        let dir = tmp.subdir("cgi-bin");
        let src = manifest_dir().join("tests").join("cgi-scripts");
        let mut copied = 0;
        for entry in fs::read_dir(&src).expect("tests/cgi-scripts").flatten() {
            let name = entry.file_name();
            if name.as_bytes().ends_with(b".sh") {
                let to = dir.join(&name);
                fs::copy(entry.path(), &to).expect("copy script");
                chmod(&to, 0o755);
                copied += 1;
            }
        }
        assert!(copied >= 14, "only {copied} scripts in {}", src.display());
        let gate = dir.join("gate");
        nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o666))
            .expect("mkfifo gate");
        chmod(&gate, 0o666);
        CgiBin {
            _dir: tmp,
            dir,
            gate,
        }
    }

    /// Full path of script `name`.
    pub fn script(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The three servers over one cgi-bin, all with [`SECRET`] in their environment.
pub struct Sites {
    cgate_nginx: Nginx,
    /// The cgate FastCGI server.
    pub cgate: Backend,
    wrap_nginx: Nginx,
    /// fcgiwrap under spawn-fcgi.
    pub fcgiwrap: Backend,
    apache: Apache,
    _socks: TempDir,
}

/// Server-level nginx directives around the shipped cgi-bin snippet: room for the 64 MiB
/// upload and a read timeout shorter than the test's own.
fn nginx_server(sock: &Path, cgi: &Path) -> String {
    format!(
        "client_max_body_size 128m;\nfastcgi_read_timeout {NGINX_READ_TIMEOUT_SECS}s;\n\
         fastcgi_send_timeout {NGINX_READ_TIMEOUT_SECS}s;\n{}",
        conf::nginx_cgi_bin(sock, cgi)
    )
}

impl Sites {
    /// Starts cgate, fcgiwrap, two nginx and Apache, all ready.
    pub fn start(cgi: &CgiBin) -> Sites {
        let socks = TempDir::new("cgi-diff-socks");
        let cgate_sock = socks.join("cgate.sock");
        let mut cmd = Command::new(cgate_bin());
        cmd.env_remove("CGATE_APP")
            .env(SECRET.0, SECRET.1)
            .arg("fastcgi")
            .arg("--listen")
            .arg(format!("unix:{}", cgate_sock.display()))
            .arg("--app")
            .arg(format!("cgi:{}", cgi.dir.display()))
            .arg("--cgi-idle-timeout")
            .arg(CGATE_IDLE_SECS.to_string())
            .arg("--allow-root");
        let cgate = Backend::spawn("cgate", cmd, &[Ready::Unix(cgate_sock.clone())]);
        let wrap_sock = socks.join("fcgiwrap.sock");
        let mut wrap = Command::new(find_program("fcgiwrap"));
        wrap.args(["-c", "2"]).env(SECRET.0, SECRET.1);
        let fcgiwrap = spawn_fcgi(&wrap_sock, &wrap);
        let cgate_nginx = Nginx::start(&nginx_server(&cgate_sock, &cgi.dir));
        let wrap_nginx = Nginx::start(&nginx_server(&wrap_sock, &cgi.dir));
        let apache = Apache::start_with_env(
            &format!(
                "{}\nTimeout {APACHE_TIMEOUT_SECS}\n",
                conf::apache_cgi(&cgi.dir)
            ),
            &[SECRET],
        );
        Sites {
            cgate_nginx,
            cgate,
            wrap_nginx,
            fcgiwrap,
            apache,
            _socks: socks,
        }
    }

    /// The HTTP port serving `peer`.
    pub fn port(&self, peer: Peer) -> u16 {
        match peer {
            Peer::Cgate => self.cgate_nginx.port(),
            Peer::Fcgiwrap => self.wrap_nginx.port(),
            Peer::Apache => self.apache.port(),
        }
    }

    /// The logs that explain a failure of `peer` (front server error log and backend output).
    pub fn logs(&self, peer: Peer) -> String {
        match peer {
            Peer::Cgate => format!(
                "--- nginx ---\n{}\n--- cgate ---\n{}",
                self.cgate_nginx.error_log(),
                self.cgate.output()
            ),
            Peer::Fcgiwrap => format!(
                "--- nginx ---\n{}\n--- fcgiwrap ---\n{}",
                self.wrap_nginx.error_log(),
                self.fcgiwrap.output()
            ),
            Peer::Apache => self.apache.error_log(),
        }
    }
}

/// Fields after the command in /proc/PID/stat (state, ppid, pgrp, ...).
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

fn mentions(file: &Path, needle: &[u8]) -> bool {
    fs::read(file).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
}

/// Live (non-zombie) processes whose command line or environment mentions `script`: the
/// script itself and whatever it started (they inherit `SCRIPT_FILENAME`).
pub fn processes_of(script: &Path) -> Vec<i32> {
    let needle = script.as_os_str().as_bytes();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Some(f) = stat_fields(pid) else { continue };
        if matches!(f.first().map(String::as_str), Some("Z" | "X") | None) {
            continue;
        }
        let dir = entry.path();
        if mentions(&dir.join("cmdline"), needle) || mentions(&dir.join("environ"), needle) {
            if let Ok(n) = pid.parse() {
                found.push(n);
            }
        }
    }
    found.sort_unstable();
    found
}

/// Polls until no process of `script` is left or `wait` passed; answers those left.
pub fn left_after(script: &Path, wait: Duration) -> Vec<i32> {
    crate::support::eventually(wait, || processes_of(script).is_empty());
    processes_of(script)
}

/// SIGKILLs each process of `script` by its pid (they were started by the servers of this
/// test) and waits, bounded, until they are gone.
pub fn kill_leftovers(script: &Path) {
    for pid in processes_of(script) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let left = left_after(script, Duration::from_secs(20));
    assert!(
        left.is_empty(),
        "processes of {script:?} survive SIGKILL: {left:?}"
    );
}
