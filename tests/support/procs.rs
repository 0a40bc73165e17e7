//! Child-process guards: start a server, wait until it accepts, stop it by PID (and its process group) on drop.

use super::{TIMEOUT, TempDir, find_program, read_log};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use std::fs::OpenOptions;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a stopped process gets between the polite signal and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A readiness condition polled after start-up.
#[derive(Debug, Clone)]
pub enum Ready {
    /// A Unix socket at this path accepts a connection.
    Unix(PathBuf),
    /// 127.0.0.1:port accepts a connection.
    Tcp(u16),
    /// This file exists (e.g. a pid file).
    Path(PathBuf),
}

impl Ready {
    fn holds(&self) -> bool {
        match self {
            Ready::Unix(p) => UnixStream::connect(p).is_ok(),
            Ready::Tcp(port) => TcpStream::connect(("127.0.0.1", *port)).is_ok(),
            Ready::Path(p) => p.exists(),
        }
    }
}

/// One started child process in its own process group, with stdout and stderr in a log file.
pub struct Proc {
    child: Option<Child>,
    name: String,
    log: PathBuf,
    extra_logs: Vec<PathBuf>,
    stop_signal: Signal,
}

impl Proc {
    /// Spawns `cmd` (stdin from /dev/null, stdout+stderr appended to `log`) as the leader of a
    /// new process group. `stop_signal` is sent to the leader first when stopping.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path, stop_signal: Signal) -> Proc {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log handle");
        allow_root_scripts(cmd);
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        Proc {
            child: Some(child),
            name: name.to_string(),
            log: log.to_path_buf(),
            extra_logs: Vec::new(),
            stop_signal,
        }
    }

    /// Adds a file (e.g. a server's error log) to what [`Proc::dump_logs`] prints.
    pub fn add_log(&mut self, path: PathBuf) {
        self.extra_logs.push(path);
    }

    /// PID of the leader (also the process group id).
    pub fn pid(&self) -> Pid {
        let id = self.child.as_ref().map_or(0, Child::id);
        Pid::from_raw(i32::try_from(id).expect("pid fits i32"))
    }

    /// Sends `sig` to the leader only.
    pub fn signal(&self, sig: Signal) {
        if self.child.is_some() {
            kill(self.pid(), sig).unwrap_or_else(|e| panic!("kill -{sig} {}: {e}", self.name));
        }
    }

    /// Whether the leader has exited (without reaping it).
    pub fn has_exited(&self) -> bool {
        match &self.child {
            None => true,
            Some(_) => !matches!(
                waitid(
                    Id::Pid(self.pid()),
                    WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT
                ),
                Ok(WaitStatus::StillAlive)
            ),
        }
    }

    /// Polls until every condition holds; `Err` with the logs when the process exits first or
    /// [`TIMEOUT`] passes.
    pub fn try_wait_ready(&mut self, ready: &[Ready]) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if self.has_exited() {
                let status = self.stop();
                return Err(format!(
                    "{} exited during start-up ({status:?})\n{}",
                    self.name,
                    self.logs()
                ));
            }
            if ready.iter().all(Ready::holds) {
                return Ok(());
            }
            if start.elapsed() > TIMEOUT {
                return Err(format!(
                    "{} not ready after {TIMEOUT:?} ({ready:?})\n{}",
                    self.name,
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Like [`Proc::try_wait_ready`] but panics (failing the test) with the logs.
    pub fn wait_ready(&mut self, ready: &[Ready]) {
        if let Err(e) = self.try_wait_ready(ready) {
            panic!("{e}");
        }
    }

    /// The output log and the extra logs, labelled.
    pub fn logs(&self) -> String {
        let mut s = format!(
            "----- {} output ({}) -----\n{}",
            self.name,
            self.log.display(),
            read_log(&self.log)
        );
        for p in &self.extra_logs {
            s.push_str(&format!(
                "\n----- {} log {} -----\n{}",
                self.name,
                p.display(),
                read_log(p)
            ));
        }
        s
    }

    /// Prints the logs to stderr (shown by the test runner for failing tests).
    pub fn dump_logs(&self) {
        eprintln!("{}", self.logs());
    }

    /// Stops the process: the stop signal to the leader, up to [`STOP_GRACE`] for it to exit,
    /// then SIGKILL to its whole process group, then reaps it. Idempotent.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.child.as_ref()?;
        let pid = self.pid();
        if !self.has_exited() {
            let _ = kill(pid, self.stop_signal);
            let start = Instant::now();
            while !self.has_exited() && start.elapsed() < STOP_GRACE {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // The leader is exited-but-unreaped (or still running), so its group id is still ours.
        let _ = killpg(pid, Signal::SIGKILL);
        let mut child = self.child.take()?;
        child.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        self.stop();
    }
}

/// `PATH` given to web servers, which start from an empty environment so nothing from the
/// test process leaks into what they pass on to CGI scripts and FastCGI apps.
pub const SERVER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A command for a web server binary with a clean environment (`PATH`, `LANG=C`).
pub fn server_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear().env("PATH", SERVER_PATH).env("LANG", "C");
    cmd
}

/// Any command run as a backend (e.g. `cgate fastcgi --listen unix:...`), stopped with
/// SIGTERM (then SIGKILL to its group) on drop. Output goes to a log printed on failure.
pub struct Backend {
    /// The process.
    pub proc: Proc,
    _logdir: TempDir,
}

impl Backend {
    /// Spawns `cmd` and waits until all `ready` conditions hold.
    pub fn spawn(name: &str, mut cmd: Command, ready: &[Ready]) -> Backend {
        let logdir = TempDir::new("backend-log");
        let mut proc = Proc::spawn(name, &mut cmd, &logdir.join("output.log"), Signal::SIGTERM);
        proc.wait_ready(ready);
        Backend {
            proc,
            _logdir: logdir,
        }
    }

    /// PID of the backend process.
    pub fn pid(&self) -> Pid {
        self.proc.pid()
    }

    /// Output (stdout and stderr) so far.
    pub fn output(&self) -> String {
        read_log(&self.proc.log)
    }

    /// Prints the output to stderr.
    pub fn dump_logs(&self) {
        self.proc.dump_logs();
    }

    /// Stops the backend now and returns its exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.proc.stop()
    }
}

/// Runs `app` under `spawn-fcgi -n -s SOCK -M 0666`, so the app gets the listening Unix
/// socket on fd 0 (program, arguments, environment and working directory of `app` are kept).
/// spawn-fcgi execs the app, so the backend PID is the app's.
pub fn spawn_fcgi(sock: &Path, app: &Command) -> Backend {
    let mut cmd = Command::new(find_program("spawn-fcgi"));
    cmd.arg("-n").arg("-s").arg(sock).args(["-M", "0666", "--"]);
    cmd.arg(app.get_program()).args(app.get_args());
    for (k, v) in app.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    if let Some(d) = app.get_current_dir() {
        cmd.current_dir(d);
    }
    Backend::spawn("spawn-fcgi", cmd, &[Ready::Unix(sock.to_path_buf())])
}

/// fcgiwrap listening on a Unix socket (socket mode 0666), for differential tests.
pub struct Fcgiwrap {
    /// The backend process.
    pub backend: Backend,
    /// The socket path.
    pub sock: PathBuf,
}

impl Fcgiwrap {
    /// Starts fcgiwrap with 2 preforked processes on a socket at `sock`.
    pub fn start(sock: &Path) -> Fcgiwrap {
        let mut app = Command::new(find_program("fcgiwrap"));
        app.args(["-c", "2"]);
        let backend = spawn_fcgi(sock, &app);
        Fcgiwrap {
            backend,
            sock: sock.to_path_buf(),
        }
    }
}

/// Makes a server guard newtype (`struct Nginx(Started)`) read as its [`Started`].
macro_rules! started_guard {
    ($guard:ident) => {
        impl std::ops::Deref for $guard {
            type Target = Started;

            fn deref(&self) -> &Started {
                &self.0
            }
        }

        impl std::ops::DerefMut for $guard {
            fn deref_mut(&mut self) -> &mut Started {
                &mut self.0
            }
        }
    };
}
pub(crate) use started_guard;

/// A server started by [`start_on_free_port`]: its process, port and directory.
pub struct Started {
    /// The process (stopped on drop).
    pub proc: Proc,
    /// The 127.0.0.1 port it listens on.
    pub port: u16,
    /// Its own directory (config, logs, pid file).
    pub dir: TempDir,
}

/// Starts a server in a fresh directory on a free port: `setup` writes its config and
/// returns the command and the config path. Waits for `pid_file` in the directory and the
/// port; retries on a port taken meanwhile; panics with the logs when it does not start.
pub fn start_on_free_port(
    name: &str,
    pid_file: &str,
    mut setup: impl FnMut(&TempDir, u16) -> (Command, PathBuf),
) -> Started {
    let mut last_err = String::new();
    for _attempt in 0..3 {
        let dir = TempDir::new(name);
        let port = super::free_port();
        let (mut cmd, conf) = setup(&dir, port);
        let mut proc = Proc::spawn(name, &mut cmd, &dir.join("stderr.log"), Signal::SIGTERM);
        proc.add_log(dir.join("error.log"));
        proc.add_log(conf);
        match proc.try_wait_ready(&[Ready::Path(dir.join(pid_file)), Ready::Tcp(port)]) {
            Ok(()) => return Started { proc, port, dir },
            Err(e) => {
                let retry = e.contains("Address already in use");
                last_err = e;
                let _ = proc.stop();
                if !retry {
                    break;
                }
            }
        }
    }
    panic!("{name} did not start:\n{last_err}");
}

impl Started {
    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory (config, logs, run files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        read_log(&self.dir.join("error.log"))
    }

    /// PID of the main process.
    pub fn pid(&self) -> Pid {
        self.proc.pid()
    }

    /// Prints output, error log and config to stderr.
    pub fn dump_logs(&self) {
        self.proc.dump_logs();
    }

    /// Stops the server now (SIGTERM to the main process, SIGKILL to the group after a grace).
    pub fn stop(&mut self) {
        self.proc.stop();
    }
}

/// The tests run as root on CI machines, and `cgate fastcgi` refuses to run cgi:DIR scripts
/// as root unless told (`--allow-root`, or `--user`): every `cgate fastcgi` the harness
/// starts with a script directory, as root and without either flag, is told.
fn allow_root_scripts(cmd: &mut Command) {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let is_cgate = cmd.get_program() == crate::support::cgate_bin().as_os_str();
    let runs_scripts = args.iter().any(|a| a.starts_with("cgi:"));
    let told = args.iter().any(|a| a == "--allow-root" || a == "--user");
    if is_cgate
        && args.first().is_some_and(|a| a == "fastcgi")
        && runs_scripts
        && !told
        && nix::unistd::geteuid().is_root()
    {
        cmd.arg("--allow-root");
    }
}
