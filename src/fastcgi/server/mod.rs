//! The FastCGI server: options, listener set-up, signals, reload and shutdown.
//!
//! The concurrency model lives in [`pool`]: event loops over one epoll set that run
//! requests inline, with a watchdog that replaces loop threads held up by slow apps. The
//! operations machinery (logs, status, reload hand-over, privilege drop) is in
//! [`crate::ops`]; this module wires it to the pool.

mod accept;
mod conn_io;
mod parked;
pub mod pool;
pub mod request;
pub mod responder;
pub mod spool;
mod startup;
mod threads;
mod watchdog;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::fastcgi::proto::connection::{Limits, ManagementValues};
use crate::gateway::App;
use crate::gateway::input::DEFAULT_MAX_BODY;
use crate::net::ListenAddr;
use crate::net::listener::{Listener, UnixOptions};
use crate::ops::signals::{Signals, Wanted};
use crate::ops::{OpsOptions, event};
use pool::{Pool, PoolConfig};
use responder::ConnConfig;

/// Most seconds `request_timeout` may be: each socket wait is one `poll()` of at most 65535 ms.
pub const MAX_REQUEST_TIMEOUT: u64 = 65;
/// Most seconds of the idle and shutdown timeouts (one day).
pub const MAX_TIMEOUT: u64 = 86_400;
/// Most loop threads (`workers`).
pub const MAX_WORKERS: usize = 1024;
/// Most connections open at once (`max_conns`).
pub const MAX_CONNS: usize = 1 << 20;
/// Most PARAMS bytes of one request (`max_params_bytes`).
pub const MAX_PARAMS_BYTES: usize = 64 << 20;
pub use crate::ops::SCRIPT_KILL_GRACE;

/// Options of the FastCGI server (the command line maps `cgate fastcgi` flags onto these).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where to listen; `None`: the listening socket on fd 0.
    pub listen: Option<ListenAddr>,
    /// Event-loop threads; `None`: half the CPU cores, at least one.
    pub workers: Option<usize>,
    /// Most connections open at once (default 1024).
    pub max_conns: usize,
    /// How a created Unix socket is set up (mode, owner, group).
    pub unix: UnixOptions,
    /// How long requests in flight may finish after SIGTERM/SIGINT or a reload (default 30 s).
    pub shutdown_timeout: Duration,
    /// How long an idle kept-alive connection waits for its next request (default 300 s).
    pub idle_timeout: Duration,
    /// How long a request head may take in total, and each body read and write (default
    /// 30 s, at most [`MAX_REQUEST_TIMEOUT`] s).
    pub request_timeout: Duration,
    /// Most PARAMS bytes of one request (default 1 MiB).
    pub max_params_bytes: usize,
    /// Most body bytes when a request has no CONTENT_LENGTH (default 1 GiB).
    pub max_body: u64,
    /// Most body bytes held ahead of the app, in memory then in a temporary file (default
    /// 1 GiB); past it the request is cut and the connection closed.
    pub max_spool: u64,
    /// Logs, status, slow log, privilege drop.
    pub ops: OpsOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            listen: None,
            workers: None,
            max_conns: 1024,
            unix: UnixOptions::default(),
            shutdown_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            max_params_bytes: 1 << 20,
            max_body: DEFAULT_MAX_BODY,
            max_spool: DEFAULT_MAX_BODY,
            ops: OpsOptions::default(),
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No address to listen on and no listening socket on fd 0.
    #[error("no listening socket: give an address to listen on (or a listening socket on fd 0)")]
    NoListener,
    /// An option value outside its range.
    #[error("{0}")]
    Invalid(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    move |source| ServerError::Io {
        what: what.into(),
        source,
    }
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    name: &str,
    v: T,
    lo: T,
    hi: T,
    unit: &str,
) -> Result<(), ServerError> {
    if v < lo || v > hi {
        return Err(ServerError::Invalid(format!(
            "{name} {v}{unit} is out of range: {lo} to {hi}{unit}"
        )));
    }
    Ok(())
}

impl ServerOptions {
    /// Checks every value against its range (nothing is silently capped).
    pub fn check(&self) -> Result<(), ServerError> {
        let secs = |d: Duration| d.as_secs();
        if let Some(w) = self.workers {
            in_range("workers", w, 1, MAX_WORKERS, "")?;
        }
        in_range("max_conns", self.max_conns, 1, MAX_CONNS, "")?;
        in_range(
            "shutdown_timeout",
            secs(self.shutdown_timeout),
            0,
            MAX_TIMEOUT,
            " s",
        )?;
        in_range(
            "idle_timeout",
            secs(self.idle_timeout),
            1,
            MAX_TIMEOUT,
            " s",
        )?;
        let rt = secs(self.request_timeout);
        in_range("request_timeout", rt, 1, MAX_REQUEST_TIMEOUT, " s")?;
        in_range(
            "max_params_bytes",
            self.max_params_bytes,
            1024,
            MAX_PARAMS_BYTES,
            "",
        )?;
        in_range("max_body", self.max_body, 0, i64::MAX as u64, "")?;
        in_range("max_spool", self.max_spool, 0, i64::MAX as u64, "")?;
        if let Some(mode) = self.unix.mode {
            crate::ops::check_socket_mode(mode).map_err(ServerError::Invalid)?;
        }
        self.ops.check().map_err(ServerError::Invalid)
    }
}

/// Parses FCGI_WEB_SERVER_ADDRS (comma-separated IPs) as the spec describes.
pub fn web_server_addrs(v: Option<&str>) -> Option<Vec<IpAddr>> {
    let v = v?.trim();
    if v.is_empty() {
        return None;
    }
    Some(v.split(',').filter_map(|a| a.trim().parse().ok()).collect())
}

fn pool_config(listener: &Listener, opts: &ServerOptions) -> PoolConfig {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let allowed = if listener.is_tcp() {
        web_server_addrs(std::env::var("FCGI_WEB_SERVER_ADDRS").ok().as_deref())
    } else {
        None
    };
    let max_conns = u32::try_from(opts.max_conns).unwrap_or(u32::MAX);
    PoolConfig {
        workers: opts.workers.unwrap_or(cores / 2).max(1),
        max_conns: opts.max_conns,
        allowed,
        conn: ConnConfig {
            limits: Limits {
                max_params_bytes: opts.max_params_bytes,
                ..Limits::default()
            },
            values: ManagementValues {
                max_conns,
                max_reqs: max_conns,
                mpxs_conns: false,
            },
            idle_timeout: opts.idle_timeout,
            request_timeout: opts.request_timeout,
            max_body: opts.max_body,
            max_spool: opts.max_spool,
        },
    }
}

/// The socket file cgate created (removed on every exit path), if any.
fn socket_file(listener: &Listener) -> Option<PathBuf> {
    match listener {
        Listener::Unix(_, Some(p)) => Some(p.clone()),
        _ => None,
    }
}

/// What ends the server's life: the socket file goes, scripts are stopped, logs flushed.
fn cleanup(file: Option<&PathBuf>) {
    if let Some(p) = file {
        let _ = std::fs::remove_file(p);
    }
    crate::ops::terminate_scripts(SCRIPT_KILL_GRACE);
    crate::ops::access::flush();
}

/// Serves `app` on `listener` until a stop signal (see [`crate::ops::signals`]); returns
/// the exit code (0 after a clean shutdown or reload hand-over).
pub fn serve_listener(
    listener: Listener,
    app: Arc<dyn App>,
    opts: &ServerOptions,
) -> Result<i32, ServerError> {
    // Blocked before any thread starts, so only the waits below receive them.
    let signals = Signals::block().map_err(io_err("cannot block signals"))?;
    let inherited = crate::ops::reload::inherited_env();
    let cfg = pool_config(&listener, opts);
    let file = socket_file(&listener);
    let handover = crate::ops::reload::Handover::prepare(&listener, file.as_deref());
    crate::ops::metrics::watch_listener(&listener);
    let app = crate::ops::start(app, &opts.ops, &cfg).map_err(io_err("cannot start logging"))?;
    let startup = startup::startup_line(&listener, opts, &cfg);
    let pool = match Pool::start(listener, app, cfg) {
        Ok(p) => p,
        Err(e) => {
            cleanup(file.as_ref());
            return Err(io_err("cannot start the server")(e));
        }
    };
    event(&startup);
    // A reload successor's pid is written by its predecessor, once that stopped accepting.
    if let Some(p) = opts.ops.pid_file.as_ref().filter(|_| !inherited) {
        crate::ops::pidfile::write_or_log(p, std::process::id());
    }
    crate::ops::reload::announce_ready();
    let life = Life {
        pool,
        signals,
        file,
        opts,
    };
    loop {
        let code = match life.signals.wait() {
            Wanted::Stop(sig) => Some(life.stop(sig.as_ref())),
            Wanted::Quit => {
                event("SIGQUIT: stopping now");
                crate::ops::notify("STOPPING=1");
                cleanup(life.file.as_ref());
                life.remove_pid_file();
                Some(1)
            }
            Wanted::Reload => life.reload(handover.as_ref()),
            Wanted::Reopen => {
                crate::ops::access::reopen();
                None
            }
            Wanted::Ignored(sig) => {
                event(&format!("{sig} ignored"));
                None
            }
        };
        if let Some(code) = code {
            return Ok(code);
        }
    }
}

/// A serving process: what its stop and reload need.
struct Life<'o> {
    pool: Pool,
    signals: Signals,
    file: Option<PathBuf>,
    opts: &'o ServerOptions,
}

impl Life<'_> {
    fn remove_pid_file(&self) {
        if let Some(p) = &self.opts.ops.pid_file {
            crate::ops::pidfile::remove_if_mine(p);
        }
    }

    /// A stop signal: drains, cleans up; the exit code.
    fn stop(&self, sig: &str) -> i32 {
        event(&format!(
            "{sig}: no new connections, finishing requests in flight"
        ));
        crate::ops::notify("STOPPING=1");
        self.signals.exit_on_next(self.file.clone());
        let left = self.pool.shutdown(self.opts.shutdown_timeout);
        crate::ops::signals::join_exit();
        cleanup(self.file.as_ref());
        self.remove_pid_file();
        if left > 0 {
            event(&format!("shutdown timeout: {left} connection(s) cut"));
            return 1;
        }
        event("stopped");
        0
    }

    /// SIGHUP: hands over to a successor and drains (the exit code), or serves on (`None`;
    /// the pid file is rewritten, which tells `cgate reload` the reload failed).
    fn reload(&self, handover: Option<&crate::ops::reload::Handover>) -> Option<i32> {
        let failed = |why: &str| {
            event(why);
            if let Some(p) = &self.opts.ops.pid_file {
                crate::ops::pidfile::write_or_log(p, std::process::id());
            }
            None
        };
        let Some(h) = handover else {
            return failed("SIGHUP: reload is not possible for this listener");
        };
        match h.start_successor() {
            Ok(pid) => {
                event(&format!(
                    "reload: pid {pid} serves; finishing requests in flight"
                ));
                // The successor owns the socket file and the pid file now.
                self.signals.exit_on_next(None);
                self.pool.stop_accepting();
                if let Some(p) = &self.opts.ops.pid_file {
                    crate::ops::pidfile::write_or_log(p, pid);
                }
                let left = self.pool.retire(self.opts.shutdown_timeout);
                crate::ops::signals::join_exit();
                cleanup(None);
                event(&format!("reload: old process exits ({left} cut)"));
                Some(0)
            }
            Err(e) => failed(&format!("reload failed, serving on: {e}")),
        }
    }
}

/// Opens the listener `opts` name (or takes over a reloading predecessor's) and serves.
pub fn run(app: Arc<dyn App>, opts: &ServerOptions) -> Result<i32, ServerError> {
    // From the first moment: a SIGHUP or SIGUSR1 during start-up must not kill the process.
    Signals::block().map_err(io_err("cannot block signals"))?;
    opts.check()?;
    let listener = match crate::ops::reload::inherited() {
        Some(l) => l.map_err(io_err("cannot take over the predecessor's socket"))?,
        None => {
            let addr = match &opts.listen {
                Some(a) => a.clone(),
                None if crate::os::stdin_is_listener() => ListenAddr::Fd(0),
                None => return Err(ServerError::NoListener),
            };
            let l = Listener::open(&addr, &opts.unix)
                .map_err(io_err(format!("cannot listen on {addr}")))?;
            if let Listener::Tcp(t) = &l {
                if t.local_addr().is_ok_and(|a| !a.ip().is_loopback()) {
                    event(&format!(
                        "warning: listening on a non-loopback address ({addr})"
                    ));
                }
            }
            l
        }
    };
    if let Err(e) = crate::ops::privs::drop_privileges(&opts.ops) {
        if let Some(p) = socket_file(&listener) {
            let _ = std::fs::remove_file(p);
        }
        return Err(ServerError::Invalid(e));
    }
    serve_listener(listener, app, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_options_are_range_checked_too() {
        assert!(ServerOptions::default().check().is_ok());
        let bad = |f: &dyn Fn(&mut ServerOptions)| {
            let mut o = ServerOptions::default();
            f(&mut o);
            match o.check() {
                Err(ServerError::Invalid(m)) => m,
                other => panic!("{other:?}"),
            }
        };
        let m = bad(&|o| o.request_timeout = Duration::from_secs(66));
        assert_eq!(m, "request_timeout 66 s is out of range: 1 to 65 s");
        let m = bad(&|o| o.shutdown_timeout = Duration::from_secs(u64::MAX));
        assert!(
            m.starts_with("shutdown_timeout 18446744073709551615 s is out of range"),
            "{m}"
        );
        let m = bad(&|o| o.unix.mode = Some(0o666));
        assert!(m.contains("every local user"), "{m}");
        let m = bad(&|o| o.workers = Some(0));
        assert_eq!(m, "workers 0 is out of range: 1 to 1024");
    }
}
