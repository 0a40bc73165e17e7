//! `cgate serve`: the app on a local HTTP/1.1 port, for development (hyper on a tokio runtime).
//!
//! A few event-loop threads (a multi-threaded tokio runtime, one thread per CPU by default)
//! accept connections, handle signals and run a task per connection ([`conn`]), which runs
//! hyper and, for each request, the app itself, inline: the app reads
//! [`bridge::BodyReader`] and writes to [`reply::HttpSink`], through the same driver as the
//! other gateways, and the connection is turned whenever the app needs I/O ([`driver`]). A
//! quick app costs no hand-off between threads; an app about to block (for its client, a
//! CGI script, a backend: [`crate::gateway::blocking`]) first hands the thread's event loop
//! to another thread, so it holds only its own connection. The environ is the one nginx's
//! `fastcgi_params` give ([`mod@environ`]). Nothing of this runs unless `serve` is the
//! command: a CGI run only links it.

pub mod body;
pub mod bridge;
pub mod conn;
pub mod driver;
pub mod environ;
pub mod io;
pub mod log;
pub mod reply;
pub mod service;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::gateway::App;
use crate::gateway::input::DEFAULT_MAX_BODY;
use conn::Shared;

/// `cgate serve` options.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Where to listen: HOST:PORT, or :PORT for 127.0.0.1 (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Most connections open at once; more are closed on arrival (default 1024). Each
    /// connection runs its requests one at a time.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_conns: usize,
    /// Event-loop threads (default: one per CPU). A request whose app blocks hands its
    /// thread's loop to a new thread meanwhile, so this is not a bound on slow requests.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Most body bytes of one request (default 1 GiB): a larger Content-Length gets 413, a
    /// chunked body that grows past it fails the app's read.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY)]
    pub max_body: u64,
    /// Seconds a request head may take to arrive (also the idle time of a kept-alive
    /// connection), and the longest wait for each body read and each write (default 30).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub request_timeout: u64,
    /// Seconds requests in flight get to finish after SIGINT/SIGTERM (default 30).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub shutdown_timeout: u64,
}

/// Parses `HOST:PORT`, `[V6]:PORT`, `localhost:PORT` or `:PORT` (127.0.0.1).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let bad = || format!("{s:?} is not HOST:PORT (e.g. 127.0.0.1:8080 or :8080)");
    if let Some(port) = s.strip_prefix(':').or_else(|| s.strip_prefix("localhost:")) {
        let port: u16 = port.parse().map_err(|_| bad())?;
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    s.parse().map_err(|_| bad())
}

/// The address to open in a browser for a listening address.
pub fn url(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}/", addr.port())
}

/// `cgate serve`: binds, serves until SIGINT/SIGTERM, then lets requests in flight finish
/// (within `--shutdown-timeout`; a second signal exits at once). Returns the exit code.
pub fn run_cli(app: Arc<dyn App>, args: ServeArgs) -> anyhow::Result<i32> {
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    listener.set_nonblocking(true).context("listening socket")?;
    let addr = listener.local_addr().context("listening socket")?;
    let max_conns = args.max_conns.max(1);
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, MAX_WORKERS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        // Every connection may have a waiting app at once, each on a thread of its own.
        .max_blocking_threads(max_conns.saturating_add(workers))
        .thread_name("cgate-serve")
        .on_thread_start(|| crate::gateway::blocking::set_wrap(Some(wrap_blocking)))
        .enable_io()
        .enable_time()
        .build()
        .context("cannot start the HTTP runtime")?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "cgate: warning: listening on {addr}, reachable from other machines; `cgate serve` \
             is a development server (no TLS, no access control)"
        );
    }
    let timeout = Duration::from_secs(args.request_timeout.max(1));
    let shared = Arc::new(Shared::new(app, timeout, args.max_body));
    let grace = Duration::from_secs(args.shutdown_timeout);
    let code = runtime.block_on(async move {
        let listener = TcpListener::from_std(listener).context("listening socket")?;
        eprintln!("cgate: serving on {} (Ctrl-C stops)", url(addr));
        let serving = tokio::spawn(serve(listener, shared, max_conns, grace));
        serving.await.context("the accepting task failed")
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    log::flush();
    Ok(code)
}

/// Accepts until the first signal, then waits for the connections to end.
async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_conns: usize,
    grace: Duration,
) -> i32 {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let slots = Arc::new(Semaphore::new(max_conns));
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("cgate: cannot handle SIGTERM/SIGINT");
        return 1;
    };
    let name = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            r = listener.accept() => match r {
                Ok((tcp, remote)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        continue; // over --max-conns: closed on arrival
                    };
                    conn::spawn(tcp, remote, shared.clone(), stop_rx.clone(), alive_tx.clone(), slot);
                }
                Err(e) => {
                    eprintln!("cgate: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    };
    drop(listener);
    drop(alive_tx);
    let busy = max_conns - slots.available_permits();
    eprintln!("cgate: {name} received: no new connections, finishing {busy} connection(s)");
    let _ = stop_tx.send(true);
    tokio::select! {
        _ = alive_rx.recv() => 0,
        _ = tokio::time::sleep(grace) => {
            let busy = max_conns - slots.available_permits();
            eprintln!("cgate: shutdown timeout: {busy} connection(s) still busy, exiting");
            1
        }
        _ = term.recv() => second("SIGTERM"),
        _ = int.recv() => second("SIGINT"),
    }
}

/// Most event-loop threads `--workers` may ask for.
const MAX_WORKERS: usize = 256;

/// How a blocking section runs on the event-loop threads: the thread hands its loop to
/// another thread first ([`crate::gateway::blocking`]).
fn wrap_blocking(f: &mut dyn FnMut()) {
    tokio::task::block_in_place(f);
}

fn second(name: &str) -> i32 {
    eprintln!("cgate: second {name}: exiting now");
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let a = |s: &str| parse_listen(s).map(|a| a.to_string());
        assert_eq!(a("127.0.0.1:8080"), Ok("127.0.0.1:8080".into()));
        assert_eq!(a(":9000"), Ok("127.0.0.1:9000".into()));
        assert_eq!(a("localhost:81"), Ok("127.0.0.1:81".into()));
        assert_eq!(a("[::1]:80"), Ok("[::1]:80".into()));
        assert!(parse_listen("8080").is_err());
        assert!(parse_listen(":x").is_err());
        assert!(parse_listen("unix:/tmp/s").is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(
            url("127.0.0.1:8080".parse().unwrap()),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(url("0.0.0.0:80".parse().unwrap()), "http://127.0.0.1:80/");
        assert_eq!(url("[::1]:81".parse().unwrap()), "http://[::1]:81/");
    }
}
