//! Forwarded requests parked in the FastCGI server's event loop: with its one loop thread,
//! many wait on their backend or for a free pooled connection at once, holding no thread
//! each, while other requests are served; a parked request's deadline still holds.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::peers;
use crate::support::{Backend, TIMEOUT, TempDir, cgate_bin, eventually, manifest_dir};

/// Threads of process `pid` now.
fn threads(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// Processes whose parent is `pid` and whose command line starts with `program` (a script
/// runs as `/bin/sh /dev/fd/3`: cgate hands the kernel the file it opened).
fn children_running(pid: i32, program: &str) -> usize {
    let Ok(dir) = fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split(' ').nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
            ppid == Some(pid) && cmd.split(|&b| b == 0).next() == Some(program.as_bytes())
        })
        .count()
}

/// Makes the script at `path` executable (0755).
fn executable(path: &Path) {
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o755);
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// A CGI directory with `slow.sh` (prints "one\n", waits for a line of ./gate, prints
/// "two\n") and its FIFO.
fn gated_scripts(dir: &TempDir) -> PathBuf {
    let cgi = dir.subdir("cgi");
    let src = manifest_dir().join("tests/cgi-scripts/slow.sh");
    fs::copy(&src, cgi.join("slow.sh")).expect("copy slow.sh");
    executable(&cgi.join("slow.sh"));
    nix::unistd::mkfifo(
        &cgi.join("gate"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("mkfifo gate");
    cgi
}

/// Releases every slow.sh waiting at the gate now: a writer opens the FIFO (each waiting
/// reader's open returns), writes a line (one reader gets it) and closes (the others read
/// its end). Scripts not yet at the gate are released by a later call.
fn open_gate_once(cgi: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let gate = fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(cgi.join("gate"));
    match gate {
        Ok(mut f) => f.write_all(b"go\n").is_ok(),
        Err(_) => false, // no reader at the gate (ENXIO)
    }
}

/// The cgate backend running `cgi:DIR`.
fn cgi_backend(sock: &Path, cgi: &Path) -> Backend {
    peers::cgate(sock, &["--app", &format!("cgi:{}", cgi.display())])
}

/// `cgate call unix:SOCK TARGET` started, its reply on its stdout.
fn call(sock: &Path, target: &str) -> Child {
    Command::new(cgate_bin())
        .args(["call", &format!("unix:{}", sock.display()), target])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cgate call")
}

/// Waits for `calls`, opening the gate while any is still running; each reply must be `want`.
fn finish(calls: Vec<Child>, cgi: &Path, want: &str) {
    let mut calls: Vec<Option<Child>> = calls.into_iter().map(Some).collect();
    let done = eventually(TIMEOUT, || {
        open_gate_once(cgi);
        calls.iter_mut().all(|c| match c {
            Some(child) => child.try_wait().expect("wait for cgate call").is_some(),
            None => true,
        })
    });
    assert!(done, "the calls ended");
    for c in calls.iter_mut().filter_map(Option::take) {
        let out = c.wait_with_output().expect("cgate call output");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{out:?}");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    }
}

const SLOW_REPLY: &str = "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\none\ntwo\n";
const HELLO_REPLY: &str = "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\nHello, world!\n";

/// A CGI backend with the gated scripts and, in front of it, the forwarder under test: one
/// loop thread, `fcgi:` to the backend (with `options`) at the root, and `extra` flags.
struct Chain {
    cgi: PathBuf,
    back: Backend,
    front_sock: PathBuf,
    front: Backend,
    _dir: TempDir,
}

fn chain(name: &str, options: &str, extra: &[&str]) -> Chain {
    let dir = TempDir::new(name);
    let cgi = gated_scripts(&dir);
    let back_sock = dir.join("back.sock");
    let back = cgi_backend(&back_sock, &cgi);
    let front_sock = dir.join("front.sock");
    let spec = format!("fcgi:unix:{}{options}", back_sock.display());
    let mut args = vec!["--workers", "1"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--app", &spec]);
    let front = peers::cgate(&front_sock, &args);
    Chain {
        cgi,
        back,
        front_sock,
        front,
        _dir: dir,
    }
}

impl Chain {
    /// Scripts the backend runs now.
    fn scripts(&self) -> usize {
        children_running(self.back.pid().as_raw(), "/bin/sh")
    }
}

/// The `/hello` mount beside the forwarded root.
const HELLO_MOUNT: [&str; 2] = ["--mount", "/hello=hello"];

#[test]
fn twenty_requests_wait_on_their_backend_without_a_thread_each() {
    let c = chain("fwd-parked", ";max_conns=32", &HELLO_MOUNT);
    let pid = c.front.pid().as_raw();
    // A first forwarded request warms the forwarder up (pool sized, reaper started).
    finish(vec![call(&c.front_sock, "/slow.sh")], &c.cgi, SLOW_REPLY);
    let idle_threads = threads(pid);
    let calls: Vec<Child> = (0..20).map(|_| call(&c.front_sock, "/slow.sh")).collect();
    assert!(
        eventually(TIMEOUT, || c.scripts() == 20),
        "all 20 requests reached their scripts"
    );
    // All 20 wait on the backend; the one loop thread still serves, and no thread was added.
    let hellos: Vec<Child> = (0..20).map(|_| call(&c.front_sock, "/hello")).collect();
    for h in hellos {
        let out = h.wait_with_output().expect("hello output");
        assert_eq!(String::from_utf8_lossy(&out.stdout), HELLO_REPLY);
    }
    let busy_threads = threads(pid);
    assert!(
        busy_threads <= idle_threads,
        "threads while 20 requests wait: {busy_threads}, idle {idle_threads}"
    );
    finish(calls, &c.cgi, SLOW_REPLY);
}

#[test]
fn requests_beyond_the_pool_wait_parked_for_a_connection() {
    let c = chain("fwd-parked-pool", ";max_conns=2", &HELLO_MOUNT);
    let pid = c.front.pid().as_raw();
    finish(vec![call(&c.front_sock, "/slow.sh")], &c.cgi, SLOW_REPLY);
    let idle_threads = threads(pid);
    let calls: Vec<Child> = (0..6).map(|_| call(&c.front_sock, "/slow.sh")).collect();
    assert!(
        eventually(TIMEOUT, || c.scripts() == 2),
        "two requests reached their scripts"
    );
    // A client that leaves while it waits for a connection gives its place up.
    let mut leaving = call(&c.front_sock, "/slow.sh");
    leaving.kill().expect("kill a waiting client");
    let _ = leaving.wait();
    let hello = call(&c.front_sock, "/hello")
        .wait_with_output()
        .expect("hello");
    assert_eq!(String::from_utf8_lossy(&hello.stdout), HELLO_REPLY);
    let busy_threads = threads(pid);
    assert!(
        busy_threads <= idle_threads,
        "threads while 4 requests wait for 2 connections: {busy_threads}, idle {idle_threads}"
    );
    assert_eq!(c.scripts(), 2, "no pool larger than 2");
    // Each released connection goes to a waiting request, until all six are answered.
    finish(calls, &c.cgi, SLOW_REPLY);
    finish(vec![call(&c.front_sock, "/slow.sh")], &c.cgi, SLOW_REPLY);
}

#[test]
fn a_parked_request_past_its_timeout_is_a_504() {
    let dir = TempDir::new("fwd-parked-timeout");
    let mute = dir.join("mute.sock");
    let silent = crate::mute_backend(&mute);
    let front_sock = dir.join("front.sock");
    let spec = format!("fcgi:unix:{};timeout=1", mute.display());
    let _front = peers::cgate(&front_sock, &["--workers", "1", "--app", &spec]);
    let started = Instant::now();
    let out = call(&front_sock, "/")
        .wait_with_output()
        .expect("call output");
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        reply.starts_with("Status: 504 Gateway Timeout\r\n"),
        "{reply}"
    );
    assert!(
        started.elapsed().as_secs() >= 1,
        "answered after the timeout"
    );
    let got = silent.join().unwrap();
    assert!(
        got.ends_with(&[1, 5, 0, 1, 0, 0, 0, 0]),
        "the whole request went out"
    );
}

/// `drip.sh` in `cgi`: a reply whose body is a line every 0.2 s for 5 s (its backend never
/// goes a second without progress).
fn drip_script(cgi: &Path) {
    let script = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n\
                  i=0\nwhile [ $i -lt 25 ]; do echo tick; sleep 0.2; i=$((i + 1)); done\n";
    fs::write(cgi.join("drip.sh"), script).expect("write drip.sh");
    executable(&cgi.join("drip.sh"));
}

#[test]
fn a_request_that_finds_no_free_connection_in_time_is_a_503() {
    let c = chain("fwd-parked-busy", ";max_conns=1;timeout=1", &[]);
    drip_script(&c.cgi);
    let front_sock = &c.front_sock;
    let holder = call(front_sock, "/drip.sh");
    assert!(
        eventually(TIMEOUT, || c.scripts() == 1),
        "the first request holds the only connection"
    );
    // The second waits, parked, for that connection, which stays busy past its timeout.
    let started = Instant::now();
    let out = call(front_sock, "/drip.sh")
        .wait_with_output()
        .expect("call output");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Status: 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n\r\nService Unavailable\n"
    );
    assert!(
        started.elapsed().as_secs() >= 1,
        "answered after the timeout"
    );
    let held = holder.wait_with_output().expect("holder output");
    let want = format!(
        "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n{}",
        "tick\n".repeat(25)
    );
    assert_eq!(String::from_utf8_lossy(&held.stdout), want);
}

#[test]
fn four_loop_threads_share_two_connections_among_sixteen_clients_without_an_error() {
    let dir = TempDir::new("fwd-parked-mt");
    let back_sock = dir.join("back.sock");
    let _back = peers::cgate(&back_sock, &["--app", "echo"]);
    let front_sock = dir.join("front.sock");
    let spec = format!("fcgi:unix:{};max_conns=2", back_sock.display());
    let _front = peers::cgate(&front_sock, &["--workers", "4", "--app", &spec]);
    let target = format!("unix:{}", front_sock.display());
    for args in [
        vec!["/get?x=1"],
        vec!["/post", "-d", "a body of a few bytes"],
    ] {
        let out = Command::new(cgate_bin())
            .args(["call", &target])
            .args(&args)
            .args(["--repeat", "3000", "--concurrency", "16", "--expect", "200"])
            .output()
            .expect("cgate call --repeat");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with("requests 3000  errors 0  "),
            "{args:?}: {text}"
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {text}");
    }
}

#[test]
fn the_status_page_lists_a_parked_request_as_parked() {
    let c = chain("fwd-parked-status", "", &["--status-path", "/cgate-status"]);
    let front_sock = &c.front_sock;
    let slow = call(front_sock, "/slow.sh");
    assert!(
        eventually(TIMEOUT, || c.scripts() == 1),
        "the request reached its script"
    );
    let out = Command::new(cgate_bin())
        .args([
            "call",
            &format!("unix:{}", front_sock.display()),
            "/cgate-status",
        ])
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let s: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text}"));
    let running = s["requests"].as_array().expect("requests");
    assert_eq!(running.len(), 1, "{s}");
    assert_eq!(running[0]["uri"], "/slow.sh", "{s}");
    assert_eq!(running[0]["waiting"], "parked", "{s}");
    finish(vec![slow], &c.cgi, SLOW_REPLY);
}
