//! Guards for the FastCGI front-ends of the interop matrix (Caddy, lighttpd, h2o, HAProxy, Apache mod_fcgid, flup): each runs the shipped `conf/` file with its placeholders filled.
//!
//! A [`Stage`] is the shared scenery: a document root with the streaming script
//! (`ROOT/cgi/slow.sh` and its `gate` FIFO, `ROOT/cgi/silent.sh`) and, for the front-ends that connect to a socket, two cgate servers started by
//! the test: the app ([`APP_ARGS`]: `echo` at the root, `hello` at `/hello`) and
//! `cgi:ROOT`. Every server is stopped by PID when its guard drops.

use crate::support::procs::{Started, server_command, start_on_free_port};
use crate::support::{
    Apache, Backend, Ready, TempDir, cgate_bin, chmod, conf, find_program, install_exe, is_root,
    manifest_dir,
};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The app every front-end serves: `echo` at the root (it shows the environ as it arrived),
/// `hello` at `/hello`.
pub const APP_ARGS: &str = "--mount /=echo --mount /hello=hello";

/// The document root, the streaming script, the cgate copy and (optionally) the two cgate
/// servers on Unix sockets.
pub struct Stage {
    dir: TempDir,
    /// Document root; `cgi:ROOT` runs the scripts below it.
    pub root: PathBuf,
    /// `ROOT/cgi/gate`: `slow.sh` waits for a line on it between its two parts.
    pub gate: PathBuf,
    /// The cgate binary the front-ends run (cargo's; mod_fcgid gets a copy every user may
    /// run).
    pub cgate: PathBuf,
    backends: Vec<Backend>,
}

fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

impl Stage {
    /// The scenery without any cgate server (for front-ends that spawn cgate themselves).
    pub fn new(tag: &str) -> Stage {
        let tag: String = tag
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let dir = TempDir::new(&tag);
        let root = dir.subdir("www");
        let cgi = root.join("cgi");
        std::fs::create_dir_all(&cgi).expect("mkdir www/cgi");
        chmod(&cgi, 0o755);
        for (src, name) in [
            ("tests/cgi-scripts/slow.sh", "slow.sh"),
            ("tests/interop/silent.sh", "silent.sh"),
        ] {
            std::fs::copy(manifest_dir().join(src), cgi.join(name)).expect("copy script");
            chmod(&cgi.join(name), 0o755);
        }
        let gate = cgi.join("gate");
        nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o666))
            .expect("mkfifo gate");
        chmod(&gate, 0o666);
        Stage {
            dir,
            root,
            gate,
            cgate: cgate_bin(),
            backends: Vec::new(),
        }
    }

    /// The scenery plus the app and `cgi:ROOT` served by cgate on [`Stage::sock`] and
    /// [`Stage::cgi_sock`] (socket mode 0660, group nogroup, so a front-end running as root or as nobody, h2o's
    /// default user, connects).
    pub fn with_sockets(tag: &str) -> Stage {
        let mut stage = Stage::new(tag);
        let app: Vec<&str> = APP_ARGS.split(' ').collect();
        let cgi_app = format!("cgi:{}", s(&stage.root));
        for (sock, args) in [
            (stage.sock(), app),
            (stage.cgi_sock(), vec!["--app", cgi_app.as_str()]),
        ] {
            let mut cmd = Command::new(cgate_bin());
            cmd.env_remove("CGATE_APP")
                .arg("fastcgi")
                .arg("--listen")
                .arg(format!("unix:{}", s(&sock)))
                .args(["--socket-mode", "660", "--socket-group", "nogroup"])
                .args(args);
            let backend = Backend::spawn("cgate", cmd, &[Ready::Unix(sock)]);
            stage.backends.push(backend);
        }
        stage
    }

    /// The app's socket.
    pub fn sock(&self) -> PathBuf {
        self.dir.join("cgate.sock")
    }

    /// The `cgi:ROOT` server's socket.
    pub fn cgi_sock(&self) -> PathBuf {
        self.dir.join("cgate-cgi.sock")
    }

    /// A fresh subdirectory of the stage.
    pub fn subdir(&self, name: &str) -> PathBuf {
        self.dir.subdir(name)
    }
}

/// The user a front-end that insists on changing user runs as: the current one.
fn user_name() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// Starts `bin` on a free port with `conf/<rel>` (its placeholders: the given ones plus
/// `@PORT@` and `@LOG_DIR@`) written to `file`; `args` builds the command line from the
/// config path and the server's directory.
fn start_conf(
    name: &str,
    bin: &str,
    rel: &str,
    file: &str,
    vars: &[(&str, &str)],
    args: impl Fn(&mut Command, &Path, &Path),
) -> Started {
    let bin = find_program(bin);
    start_on_free_port(name, &format!("{name}.pid"), |dir, port| {
        let port = port.to_string();
        let mut all = vars.to_vec();
        all.push(("@PORT@", &port));
        all.push(("@LOG_DIR@", s(dir.path())));
        let text = conf::render(rel, &all);
        let conf = dir.join(file);
        std::fs::write(&conf, text).expect("write config");
        let mut cmd = server_command(&bin);
        args(&mut cmd, &conf, dir.path());
        (cmd, conf)
    })
}

/// Caddy with `conf/caddy/Caddyfile`, connected to the stage's two cgate sockets.
pub fn caddy(stage: &Stage) -> Started {
    let (sock, cgi) = (stage.sock(), stage.cgi_sock());
    let vars = [
        ("@ROOT@", s(&stage.root)),
        ("@SOCKET@", s(&sock)),
        ("@CGI_SOCKET@", s(&cgi)),
    ];
    start_conf(
        "caddy",
        "caddy",
        "caddy/Caddyfile",
        "Caddyfile",
        &vars,
        |cmd, conf, dir| {
            cmd.env("HOME", dir)
                .env("XDG_DATA_HOME", dir)
                .env("XDG_CONFIG_HOME", dir)
                .args(["run", "--adapter", "caddyfile", "--config"])
                .arg(conf)
                .arg("--pidfile")
                .arg(dir.join("caddy.pid"));
        },
    )
}

/// lighttpd with `conf/lighttpd/cgate-socket.conf` (the stage's sockets) or, with `spawn`,
/// `cgate-spawn.conf` (lighttpd starts cgate with the socket on fd 0).
pub fn lighttpd(stage: &Stage, spawn: bool) -> Started {
    let (sock, cgi) = (stage.sock(), stage.cgi_sock());
    let root = s(&stage.root);
    let (rel, vars) = if spawn {
        let v = vec![
            ("@ROOT@", root),
            ("@CGATE@", s(&stage.cgate)),
            ("@APP@", APP_ARGS),
        ];
        ("lighttpd/cgate-spawn.conf", v)
    } else {
        let v = vec![
            ("@ROOT@", root),
            ("@SOCKET@", s(&sock)),
            ("@CGI_SOCKET@", s(&cgi)),
        ];
        ("lighttpd/cgate-socket.conf", v)
    };
    start_conf(
        "lighttpd",
        "lighttpd",
        rel,
        "lighttpd.conf",
        &vars,
        |cmd, conf, _| {
            cmd.arg("-D").arg("-f").arg(conf);
        },
    )
}

/// h2o with `conf/h2o/cgate-connect.conf` (the stage's sockets) or, with `spawn`,
/// `cgate-spawn.conf` (h2o starts cgate with the socket on fd 0).
pub fn h2o(stage: &Stage, spawn: bool) -> Started {
    let (sock, cgi) = (stage.sock(), stage.cgi_sock());
    let user = user_name();
    let root = s(&stage.root);
    let (rel, vars) = if spawn {
        let v = vec![
            ("@USER@", user.as_str()),
            ("@ROOT@", root),
            ("@CGATE@", s(&stage.cgate)),
            ("@APP@", APP_ARGS),
        ];
        ("h2o/cgate-spawn.conf", v)
    } else {
        let v = vec![
            ("@USER@", user.as_str()),
            ("@SOCKET@", s(&sock)),
            ("@CGI_SOCKET@", s(&cgi)),
        ];
        ("h2o/cgate-connect.conf", v)
    };
    start_conf("h2o", "h2o", rel, "h2o.conf", &vars, |cmd, conf, _| {
        cmd.arg("-c").arg(conf);
    })
}

/// HAProxy (master-worker, foreground) with `conf/haproxy/cgate-fcgi-app.cfg`.
pub fn haproxy(stage: &Stage) -> Started {
    let (sock, cgi) = (stage.sock(), stage.cgi_sock());
    let vars = [
        ("@ROOT@", s(&stage.root)),
        ("@SOCKET@", s(&sock)),
        ("@CGI_SOCKET@", s(&cgi)),
    ];
    start_conf(
        "haproxy",
        "haproxy",
        "haproxy/cgate-fcgi-app.cfg",
        "haproxy.cfg",
        &vars,
        |cmd, conf, _| {
            cmd.args(["-W", "-db", "-f"]).arg(conf);
        },
    )
}

/// Apache with `conf/apache/cgate-fcgid.conf`: mod_fcgid starts the stage's cgate copy.
pub fn apache_fcgid(stage: &Stage) -> Apache {
    // Apache's children run as www-data, who may not enter cargo's target directory.
    let cgate = install_exe(&stage.cgate, &stage.subdir("bin"), "cgate");
    let ipc = stage.subdir("fcgid-ipc");
    if is_root() {
        // Apache's children (www-data) create the process sockets there.
        let www = nix::unistd::User::from_name("www-data")
            .ok()
            .flatten()
            .expect("user www-data exists (Debian's apache2 package)");
        nix::unistd::chown(&ipc, Some(www.uid), Some(www.gid)).expect("chown fcgid dir");
    }
    let snippet = conf::render(
        "apache/cgate-fcgid.conf",
        &[
            ("@IPC_DIR@", s(&ipc)),
            ("@CGATE@", s(&cgate)),
            ("@APP@", APP_ARGS),
            ("@ROOT@", s(&stage.root)),
        ],
    );
    Apache::start(&snippet)
}

/// An HTTP front made of Python's wsgiref server and flup's FastCGI client
/// (`flup.client.fcgi_app.FCGIApp`), connected to the stage's sockets
/// (tests/interop/flup_front.py).
pub fn flup(stage: &Stage) -> Started {
    let python = python_with_flup();
    let script = manifest_dir().join("tests/interop/flup_front.py");
    let (sock, cgi) = (stage.sock(), stage.cgi_sock());
    start_on_free_port("flup", "flup.pid", |dir, port| {
        let mut cmd = server_command(&python);
        cmd.arg(&script)
            .arg(port.to_string())
            .arg(&sock)
            .arg(&cgi)
            .arg(dir.join("flup.pid"));
        (cmd, script.clone())
    })
}

/// The Python interpreter (`python3` on the test's PATH, resolved through any shim) that
/// has flup; panics with the install hint when flup is missing.
fn python_with_flup() -> PathBuf {
    let out = Command::new(find_program("python3"))
        .args([
            "-c",
            "import sys, flup.client.fcgi_app; print(sys.executable)",
        ])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 has no flup ({}); `bash scripts/test.sh` installs it (pip install flup)",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
