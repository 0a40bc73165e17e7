//! Listening sockets of the real server: Unix socket files, the TCP allowlist, inherited fd 0 and systemd.

use std::fs::File;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::client::*;
use crate::server::*;
use crate::support::{Backend, TempDir, cgate_bin, free_port};

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat socket").mode() & 0o7777
}

/// php-fpm CVE-2014-0185: the Unix socket is created 0660 by default; `--socket-mode` is
/// honoured exactly (whatever the umask).
#[test]
fn unix_socket_mode_0660_by_default() {
    let srv = Server::start(Transport::Unix, "hello", &[]);
    let Addr::Unix(p) = &srv.addr else {
        unreachable!()
    };
    assert!(std::fs::metadata(p).expect("stat").file_type().is_socket());
    assert_eq!(mode_of(p), 0o660);
    srv.assert_serves_hello("default mode");
    let srv = Server::start(Transport::Unix, "hello", &["--socket-mode", "600"]);
    let Addr::Unix(p) = &srv.addr else {
        unreachable!()
    };
    assert_eq!(mode_of(p), 0o600);
    srv.assert_serves_hello("mode 600");
}

/// Runs a cgate that must fail at start-up; returns its output (killed after 60 s).
fn run_failing(args: &[&str]) -> Output {
    let mut cmd = Command::new(cgate_bin());
    cmd.args(args);
    run_to_exit(cmd)
}

/// Runs `cmd` to its exit and returns its output; panics if it runs over 60 s.
fn run_to_exit(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cgate");
    if !eventually(Duration::from_secs(60), || {
        child.try_wait().expect("try_wait").is_some()
    }) {
        let _ = child.kill();
        panic!("{cmd:?} kept running");
    }
    child.wait_with_output().expect("output")
}

/// A stale socket file (its server gone) is replaced; a regular file at the path is left
/// alone and cgate exits non-zero saying why; a live server's socket is not stolen.
#[test]
fn stale_socket_replaced_only_if_socket_and_dead() {
    let dir = TempDir::new("stale");
    let sock = dir.join("s.sock");
    drop(UnixListener::bind(&sock).expect("bind"));
    assert!(sock.exists(), "std left the stale socket file");
    let listen = format!("unix:{}", sock.display());
    let mut cmd = Command::new(cgate_bin());
    cmd.args(["fastcgi", "--listen", &listen, "--app", "hello"]);
    let live = Backend::spawn("cgate", cmd, &[crate::support::Ready::Unix(sock.clone())]);
    let addr = Addr::Unix(sock.clone());
    let r = addr.connect().roundtrip(1, &get(1, 0, "/"));
    assert_eq!(r.raw, simple_reply(1, HELLO), "stale socket replaced");
    // A live socket is not stolen.
    let ino = std::fs::metadata(&sock).expect("stat").ino();
    let out = run_failing(&["fastcgi", "--listen", &listen, "--app", "echo"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use"), "{err}");
    assert_eq!(std::fs::metadata(&sock).expect("stat").ino(), ino);
    let r = addr.connect().roundtrip(1, &get(1, 0, "/"));
    assert_eq!(
        r.raw,
        simple_reply(1, HELLO),
        "the first server still owns the socket"
    );
    drop(live);
    // A regular file is never removed.
    let file = dir.join("regular");
    std::fs::write(&file, b"keep me").expect("write");
    let listen = format!("unix:{}", file.display());
    let out = run_failing(&["fastcgi", "--listen", &listen, "--app", "hello"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&file).expect("read"), b"keep me");
}

/// FastCGI SSRF (Gopherus): FCGI_WEB_SERVER_ADDRS is honoured on TCP: a peer not listed is
/// closed without a reply, a listed one is served. (It does not apply to Unix sockets.)
#[test]
fn tcp_web_server_addrs_allowlist() {
    let bin = cgate_bin();
    let app = ["--app", "hello"];
    let srv = Server::start_bin(
        &bin,
        Transport::Tcp,
        &app,
        &[("FCGI_WEB_SERVER_ADDRS", "10.9.9.9")],
    );
    for _ in 0..3 {
        let mut c = srv.connect();
        c.send_lossy(&get(1, 0, "/"));
        c.assert_closed_silently("peer not in FCGI_WEB_SERVER_ADDRS");
    }
    assert!(srv.backend.output().contains("FCGI_WEB_SERVER_ADDRS"));
    let env = [("FCGI_WEB_SERVER_ADDRS", "10.9.9.9, 127.0.0.1")];
    let srv = Server::start_bin(&bin, Transport::Tcp, &app, &env);
    srv.assert_serves_hello("127.0.0.1 listed");
    let env = [("FCGI_WEB_SERVER_ADDRS", "10.9.9.9")];
    let srv = Server::start_bin(&bin, Transport::Unix, &app, &env);
    srv.assert_serves_hello("Unix socket");
}

/// A child started here with its own stdin, stopped by PID on drop.
struct Spawned {
    child: Child,
    log: std::path::PathBuf,
}

impl Spawned {
    fn new(args: &[&str], stdin: Stdio, dir: &TempDir) -> Spawned {
        let log = dir.join("cgate.log");
        let out = File::create(&log).expect("log");
        let err = out.try_clone().expect("clone");
        let child = Command::new(cgate_bin())
            .args(args)
            .env_remove("CGATE_APP")
            .stdin(stdin)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn cgate");
        Spawned { child, log }
    }

    fn output(&self) -> String {
        crate::support::read_log(&self.log)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        eventually(Duration::from_secs(10), || {
            !matches!(self.child.try_wait(), Ok(None))
        });
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// spawn-fcgi / mod_fcgid hand the listening socket over on fd 0: with no subcommand cgate
/// detects it, and `fastcgi --listen fd:0` adopts it; over Unix and TCP.
#[test]
fn listener_inherited_on_fd_0() {
    for args in [
        &["--app", "hello"][..],
        &["fastcgi", "--listen", "fd:0", "--app", "hello"],
    ] {
        for t in BOTH {
            let dir = TempDir::new("fd0");
            let (fd, addr): (OwnedFd, Addr) = match t {
                Transport::Unix => {
                    let p = dir.join("in.sock");
                    (UnixListener::bind(&p).expect("bind").into(), Addr::Unix(p))
                }
                Transport::Tcp => {
                    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
                    let port = l.local_addr().expect("addr").port();
                    (l.into(), Addr::Tcp(port))
                }
            };
            let proc = Spawned::new(args, Stdio::from(fd), &dir);
            // The listener already exists, so connecting never races the start-up.
            let mut c = addr.connect();
            let r = c.roundtrip(1, &get(1, KEEP_CONN, "/"));
            assert_eq!(
                r.raw,
                simple_reply(1, HELLO),
                "{args:?} {t:?}: {}",
                proc.output()
            );
            let r = addr.connect().roundtrip(1, &get(1, 0, "/"));
            assert_eq!(r.raw, simple_reply(1, HELLO));
        }
    }
}

/// The launcher: binds the socket, puts it on fd 3, sets LISTEN_FDS/LISTEN_PID and execs cgate.
const SYSTEMD_LAUNCHER: &str = r#"
import os, socket, sys
kind, where, pid_mode, exe, app = sys.argv[1:6]
if kind == "unix":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(where)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", int(where)))
s.listen(64)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid()) if pid_mode == "self" else "1"
os.execv(exe, [exe, "fastcgi", "--listen", "systemd", "--app", app, "--allow-root"])
"#;

fn systemd_command(kind: &str, addr: &Addr, pid_mode: &str) -> Command {
    systemd_command_app(kind, addr, pid_mode, "hello")
}

fn systemd_command_app(kind: &str, addr: &Addr, pid_mode: &str, app: &str) -> Command {
    let where_ = match addr {
        Addr::Unix(p) => p.display().to_string(),
        Addr::Tcp(port) => port.to_string(),
    };
    let mut cmd = Command::new("python3");
    cmd.args(["-c", SYSTEMD_LAUNCHER, kind, &where_, pid_mode])
        .arg(cgate_bin())
        .arg(app)
        .env_remove("CGATE_APP");
    cmd
}

/// The inherited listening socket (fd 3 under systemd) never reaches a CGI script: the
/// script's process has exactly fds 0, 1 and 2, and 3, which is the script itself (a `#!`
/// script is run from its checked descriptor as /dev/fd/3); `ls` adds 4 for its own
/// directory read.
#[test]
fn inherited_listener_does_not_leak_into_scripts() {
    let dir = TempDir::new("systemd-fds");
    let cgi = dir.subdir("cgi");
    crate::support::write_script(
        &cgi,
        "fds",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nreadlink /proc/$$/fd/3\nexec /bin/ls /proc/self/fd\n",
    );
    let addr = Addr::Unix(dir.join("sd.sock"));
    let app = format!("cgi:{}", cgi.display());
    let srv = Backend::spawn(
        "cgate",
        systemd_command_app("unix", &addr, "self", &app),
        &[addr.ready()],
    );
    let r = addr.connect().roundtrip(1, &get(1, 0, "/fds"));
    let body = String::from_utf8_lossy(&r.stdout).into_owned();
    let script = std::fs::canonicalize(cgi.join("fds")).unwrap();
    let want = format!("\r\n\r\n{}\n0\n1\n2\n3\n4\n", script.display());
    assert!(body.ends_with(&want), "{body:?}\n{}", srv.output());
}

/// systemd socket activation: the socket on fd 3 with LISTEN_FDS=1 and LISTEN_PID=our pid is
/// served; a LISTEN_PID naming another process is refused at start-up.
#[test]
fn systemd_socket_activation() {
    for t in BOTH {
        let dir = TempDir::new("systemd");
        let (kind, addr) = match t {
            Transport::Unix => ("unix", Addr::Unix(dir.join("sd.sock"))),
            Transport::Tcp => ("tcp", Addr::Tcp(free_port())),
        };
        let srv = Backend::spawn(
            "cgate",
            systemd_command(kind, &addr, "self"),
            &[addr.ready()],
        );
        let r = addr.connect().roundtrip(1, &get(1, 0, "/"));
        assert_eq!(r.raw, simple_reply(1, HELLO), "{t:?}: {}", srv.output());
        drop(srv);
    }
    let dir = TempDir::new("systemd-other");
    let addr = Addr::Unix(dir.join("sd.sock"));
    let out = run_to_exit(systemd_command("unix", &addr, "other"));
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LISTEN_PID"), "{err}");
}
