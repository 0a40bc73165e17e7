//! Real FastCGI backends for the forwarding and `cgate call` tests: cgate itself, php-fpm,
//! Go's net/http/fcgi and libfcgi, each started in a temp dir on a Unix socket.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Backend, Ready, TempDir, cgate_bin, find_program, manifest_dir, spawn_fcgi};

/// `cgate fastcgi --listen unix:SOCK ARGS...`.
pub fn cgate(sock: &Path, args: &[&str]) -> Backend {
    let mut cmd = Command::new(cgate_bin());
    cmd.arg("fastcgi")
        .arg("--listen")
        .arg(format!("unix:{}", sock.display()));
    cmd.args(args);
    Backend::spawn("cgate", cmd, &[Ready::Unix(sock.to_path_buf())])
}

/// The php script every php-fpm test runs: its params (sorted NAME=VALUE lines, php's own
/// additions left out) and the length and sha256 of its body.
pub const ECHO_PHP: &str = r#"<?php
header('Content-Type: text/plain');
$body = file_get_contents('php://input');
echo "length=", strlen($body), "\n";
echo "sha256=", hash('sha256', $body), "\n";
$skip = ['PHP_SELF', 'REQUEST_TIME', 'REQUEST_TIME_FLOAT', 'argv', 'argc', 'FCGI_ROLE'];
$vars = $_SERVER;
ksort($vars);
foreach ($vars as $k => $v) {
    if (!in_array($k, $skip, true) && is_string($v)) {
        echo "param:", $k, "=", $v, "\n";
    }
}
"#;

/// A running php-fpm pool and the path of its echo script.
pub struct PhpFpm {
    /// The pool's master process.
    pub proc: Backend,
    /// Its socket.
    pub sock: PathBuf,
    /// The absolute path of the echo script (SCRIPT_FILENAME).
    pub script: PathBuf,
}

/// php-fpm8.2 pool `name` in the foreground (`-F -y CONF -p PREFIX`), `children` static
/// workers, each recycled after `max_requests` requests (0: never). Pools in one `dir` share
/// its `echo.php`.
pub fn php_fpm(dir: &TempDir, name: &str, children: u32, max_requests: u32) -> PhpFpm {
    let sock = dir.join(&format!("{name}.sock"));
    let script = dir.join("echo.php");
    std::fs::write(&script, ECHO_PHP).expect("write echo.php");
    let d = dir.path().display();
    let root = crate::support::is_root();
    let user = if root {
        "user = root\ngroup = root\n"
    } else {
        ""
    };
    let conf = format!(
        "[global]\nerror_log = {d}/{name}.log\ndaemonize = no\npid = {d}/{name}.pid\n\
         [{name}]\n{user}listen = {}\npm = static\npm.max_children = {children}\n\
         pm.max_requests = {max_requests}\nclear_env = yes\ncatch_workers_output = yes\n",
        sock.display()
    );
    let conf_path = dir.join(&format!("{name}.conf"));
    std::fs::write(&conf_path, conf).expect("write php-fpm.conf");
    let mut cmd = Command::new(find_program("php-fpm8.2"));
    cmd.arg("-F")
        .arg("-n")
        .arg("-y")
        .arg(&conf_path)
        .arg("-p")
        .arg(dir.path());
    if root {
        cmd.arg("-R");
    }
    let mut proc = Backend::spawn("php-fpm", cmd, &[Ready::Unix(sock.clone())]);
    proc.proc.add_log(dir.join(&format!("{name}.log")));
    PhpFpm { proc, sock, script }
}

/// A peer binary built once per target dir (shared by the test binaries), again when its
/// `source` is newer: `build` writes it to the path it is given, then renamed into place.
fn built(
    name: &str,
    source: &Path,
    build: impl FnOnce(&Path) -> std::process::ExitStatus,
) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fwd-peers");
    std::fs::create_dir_all(&dir).expect("peer build dir");
    let bin = dir.join(name);
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if mtime(&bin).is_none() || mtime(&bin) < mtime(source) {
        let part = dir.join(format!("{name}.{}.part", std::process::id()));
        assert!(build(&part).success(), "building the {name} peer failed");
        std::fs::rename(&part, &bin).expect("install the peer binary");
    }
    bin
}

/// Go's net/http/fcgi hello peer (`bench/peers/go`, built once), listening on `sock`.
pub fn go_fcgi(_dir: &TempDir, sock: &Path) -> Backend {
    let src = manifest_dir().join("bench/peers/go/fcgi-hello/main.go");
    let bin = built("fcgi-hello", &src, |out| {
        Command::new(find_program("go"))
            .args(["build", "-o"])
            .arg(out)
            .arg("./fcgi-hello")
            .current_dir(manifest_dir().join("bench/peers/go"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .status()
            .expect("go runs")
    });
    let mut cmd = Command::new(bin);
    cmd.arg("-listen").arg(sock);
    Backend::spawn("go-fcgi", cmd, &[Ready::Unix(sock.to_path_buf())])
}

/// The libfcgi hello peer (`bench/peers/c/hello_fcgi.c`, `gcc -lfcgi`, built once) under
/// spawn-fcgi.
pub fn libfcgi(_dir: &TempDir, sock: &Path) -> Backend {
    let src = manifest_dir().join("bench/peers/c/hello_fcgi.c");
    let bin = built("hello_fcgi", &src, |out| {
        Command::new(find_program("gcc"))
            .arg("-O2")
            .arg("-o")
            .arg(out)
            .arg(&src)
            .arg("-lfcgi")
            .status()
            .expect("gcc runs (libfcgi-dev installed?)")
    });
    spawn_fcgi(sock, &Command::new(bin))
}
