//! The FastCGI server: command-line options, listener set-up, signals and graceful shutdown.
//!
//! The concurrency model lives in [`pool`]: event loops over one epoll set that run
//! requests inline, with a watchdog that replaces loop threads held up by slow apps.

mod conn_io;
pub mod pool;
pub mod request;
pub mod responder;
pub mod spool;
mod threads;
mod watchdog;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use nix::sys::signal::{SigSet, Signal};

use crate::fastcgi::proto::connection::{Limits, ManagementValues};
use crate::gateway::App;
use crate::gateway::input::DEFAULT_MAX_BODY;
use crate::net::ListenAddr;
use crate::net::listener::{Listener, UnixOptions};
use pool::{Pool, PoolConfig};
use responder::ConnConfig;

/// `cgate fastcgi` options.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Where to listen: unix:/path, /path, 127.0.0.1:9000, fd:0 or systemd.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<ListenAddr>,
    /// Event-loop threads that run requests (default: half the CPU cores, at least one; the
    /// web server in front needs the rest). Requests that block get extra threads
    /// automatically, up to --max-conns.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Most connections open at once; more are closed on arrival (default 1024).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_conns: usize,
    /// Permission bits of a created Unix socket, octal (default 660).
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
    pub socket_mode: Option<u32>,
    /// Owner (user name or uid) of a created Unix socket.
    #[arg(long, value_name = "USER")]
    pub socket_owner: Option<String>,
    /// Group (name or gid) of a created Unix socket.
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT (default 30).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub shutdown_timeout: u64,
    /// Seconds an idle kept-alive connection waits for its next request (default 300).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub idle_timeout: u64,
    /// Seconds a request's head may take to arrive in total, and the longest wait for each
    /// body read and each write (default 30).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub request_timeout: u64,
    /// Most PARAMS bytes of one request (default 1048576).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub max_params_bytes: usize,
    /// Most body bytes when the request has no CONTENT_LENGTH (default 1 GiB).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY)]
    pub max_body: u64,
    /// Most body bytes held ahead of the app, in memory then in a temporary file (default
    /// 1 GiB); past it the request is cut and the connection closed.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY)]
    pub max_spool: u64,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not an octal mode"))
}

impl Default for ServerArgs {
    /// The defaults the command line documents (taken from it, so they cannot drift).
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: ServerArgs,
        }
        <Defaults as clap::Parser>::parse_from(["cgate"]).args
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

/// Serves `app` on `listener` until SIGTERM/SIGINT, then shuts down gracefully: no new
/// connections, idle ones closed, requests in flight finish within `--shutdown-timeout`; a
/// second signal exits at once. Returns the exit code (0 after a clean shutdown).
pub fn serve_listener(
    listener: Listener,
    app: Arc<dyn App>,
    args: &ServerArgs,
) -> anyhow::Result<i32> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    // Blocked here, before any thread starts, so only `wait` below receives them.
    signals
        .thread_block()
        .context("cannot block SIGTERM and SIGINT")?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let max_conns = args.max_conns.max(1);
    let allowed = if listener.is_tcp() {
        web_server_addrs(std::env::var("FCGI_WEB_SERVER_ADDRS").ok().as_deref())
    } else {
        None
    };
    let cfg = PoolConfig {
        workers: args.workers.unwrap_or(cores / 2).max(1),
        max_conns,
        allowed,
        conn: ConnConfig {
            limits: Limits {
                max_params_bytes: args.max_params_bytes,
                ..Limits::default()
            },
            values: ManagementValues {
                max_conns: u32::try_from(max_conns).unwrap_or(u32::MAX),
                max_reqs: u32::try_from(max_conns).unwrap_or(u32::MAX),
                mpxs_conns: false,
            },
            idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
            request_timeout: Duration::from_secs(args.request_timeout.max(1)),
            max_body: args.max_body,
            max_spool: args.max_spool,
        },
    };
    let pool = Pool::start(listener, app, cfg).context("cannot start the server")?;
    let first = signals.wait().unwrap_or(Signal::SIGTERM);
    eprintln!("cgate: {first} received: no new connections, finishing requests in flight");
    std::thread::spawn(move || {
        if let Ok(sig) = signals.wait() {
            eprintln!("cgate: second {sig}: exiting now");
            std::process::exit(1);
        }
    });
    let left = pool.shutdown(Duration::from_secs(args.shutdown_timeout));
    if left > 0 {
        eprintln!("cgate: shutdown timeout: {left} connection(s) still busy, exiting");
        return Ok(1);
    }
    Ok(0)
}

/// `cgate fastcgi`: opens `--listen` (or the socket inherited on fd 0) and serves.
pub fn run_cli(app: Arc<dyn App>, args: ServerArgs) -> anyhow::Result<i32> {
    let addr = match &args.listen {
        Some(a) => a.clone(),
        None if crate::os::stdin_is_listener() => ListenAddr::Fd(0),
        None => {
            let why = "fastcgi needs --listen ADDR (or a listening socket on fd 0)";
            return Err(crate::cli::UsageError(why.into()).into());
        }
    };
    let unix = UnixOptions {
        mode: args.socket_mode,
        owner: args.socket_owner.clone(),
        group: args.socket_group.clone(),
    };
    let listener =
        Listener::open(&addr, &unix).with_context(|| format!("cannot listen on {addr}"))?;
    if let Listener::Tcp(l) = &listener {
        if l.local_addr().is_ok_and(|a| !a.ip().is_loopback()) {
            eprintln!("cgate: warning: listening on a non-loopback address ({addr})");
        }
    }
    serve_listener(listener, app, &args)
}

/// `cgate` started with a listening socket on fd 0 (spawn-fcgi, mod_fcgid).
pub fn run_inherited(app: Arc<dyn App>) -> anyhow::Result<i32> {
    run_cli(
        app,
        ServerArgs {
            listen: Some(ListenAddr::Fd(0)),
            ..ServerArgs::default()
        },
    )
}
