//! The FastCGI server: listener, connection threads, connection cap, signals and graceful shutdown.
//!
//! Concurrency model: one thread per connection, blocking I/O, no hand-offs. A small set of
//! threads waits in `accept()`; the thread that accepts a connection serves it itself (a
//! request costs one `read` and one `write` on a kept-alive connection) and, if no other
//! thread is left waiting, first starts a new one. When its connection ends the thread goes
//! back to `accept()` or exits if enough others already wait. An idle kept-alive connection
//! therefore costs a sleeping thread (a few KiB of touched stack), never a worker that other
//! connections wait for; `--max-conns` bounds them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use nix::sys::signal::{SigSet, Signal};

use super::connection::{Limits, ManagementValues};
use super::responder::{Buffers, ConnConfig, serve_connection};
use crate::gateway::App;
use crate::gateway::input::DEFAULT_MAX_BODY;
use crate::net::ListenAddr;
use crate::net::listener::{Listener, Stream, UnixOptions};

/// Threads that finished a connection stay waiting in `accept()` while fewer than this many
/// (or `--workers`, if larger) already wait, so bursts of new connections reuse threads.
const MAX_SPARE_THREADS: usize = 64;

/// Stack size of connection threads: 512 KiB of address space; only touched pages cost memory.
const STACK_SIZE: usize = 512 * 1024;

/// `cgate fastcgi` options.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Where to listen: unix:/path, /path, 127.0.0.1:9000, fd:0 or systemd.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<ListenAddr>,
    /// Threads kept waiting for new connections (default: 2 x CPU cores).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Most connections served at once; more are closed at once (default 1024).
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
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not an octal mode"))
}

impl Default for ServerArgs {
    fn default() -> Self {
        ServerArgs {
            listen: None,
            workers: None,
            max_conns: 1024,
            socket_mode: None,
            socket_owner: None,
            socket_group: None,
            shutdown_timeout: 30,
            idle_timeout: 300,
            request_timeout: 30,
            max_params_bytes: 1 << 20,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

struct Slot {
    stream: Arc<Stream>,
    idle: AtomicBool,
}

struct Shared {
    listener: Listener,
    app: Arc<dyn App>,
    cfg: ConnConfig,
    workers: usize,
    max_conns: usize,
    allowed: Option<Vec<IpAddr>>,
    stopping: AtomicBool,
    active: AtomicUsize,
    waiting: AtomicUsize,
    threads: AtomicUsize,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Slot>>>,
}

/// Parses FCGI_WEB_SERVER_ADDRS (comma-separated IPs) as the spec describes.
pub fn web_server_addrs(v: Option<&str>) -> Option<Vec<IpAddr>> {
    let v = v?.trim();
    if v.is_empty() {
        return None;
    }
    Some(v.split(',').filter_map(|a| a.trim().parse().ok()).collect())
}

fn spawn_acceptor(sh: &Arc<Shared>) {
    let sh2 = Arc::clone(sh);
    sh.threads.fetch_add(1, SeqCst);
    let r = std::thread::Builder::new()
        .name("cgate-conn".into())
        .stack_size(STACK_SIZE)
        .spawn(move || acceptor(sh2));
    if let Err(e) = r {
        sh.threads.fetch_sub(1, SeqCst);
        eprintln!("cgate: cannot start a thread: {e}");
    }
}

fn acceptor(sh: Arc<Shared>) {
    let mut last_err = None::<Instant>;
    let mut buffers = Buffers::default();
    while !sh.stopping.load(SeqCst) {
        sh.waiting.fetch_add(1, SeqCst);
        let accepted = sh.listener.accept();
        let still_waiting = sh.waiting.fetch_sub(1, SeqCst) - 1;
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                if sh.stopping.load(SeqCst) {
                    break;
                }
                if last_err.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    eprintln!("cgate: accept failed: {e}");
                    last_err = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if still_waiting == 0 && sh.threads.load(SeqCst) <= sh.max_conns + sh.workers {
            spawn_acceptor(&sh);
        }
        if let (Some(allowed), Some(ip)) = (&sh.allowed, peer) {
            if !allowed.contains(&ip) {
                eprintln!("cgate: refused connection from {ip} (not in FCGI_WEB_SERVER_ADDRS)");
                continue;
            }
        }
        if sh.active.fetch_add(1, SeqCst) >= sh.max_conns {
            sh.active.fetch_sub(1, SeqCst);
            eprintln!(
                "cgate: refused a connection: {} connections open",
                sh.max_conns
            );
            continue;
        }
        serve(&sh, stream, &mut buffers);
        sh.active.fetch_sub(1, SeqCst);
        if sh.waiting.load(SeqCst) >= sh.workers.max(MAX_SPARE_THREADS) {
            break;
        }
    }
    sh.threads.fetch_sub(1, SeqCst);
}

fn serve(sh: &Shared, stream: Stream, buffers: &mut Buffers) {
    let id = sh.next_id.fetch_add(1, SeqCst);
    let slot = Arc::new(Slot {
        stream: Arc::new(stream),
        idle: AtomicBool::new(true),
    });
    if let Ok(mut m) = sh.conns.lock() {
        m.insert(id, Arc::clone(&slot));
    }
    let idle = |on: bool| slot.idle.store(on, SeqCst);
    let stop = || sh.stopping.load(SeqCst);
    if !stop() {
        serve_connection(&slot.stream, &*sh.app, &sh.cfg, buffers, &idle, &stop);
    }
    if let Ok(mut m) = sh.conns.lock() {
        m.remove(&id);
    }
}

/// Starts serving `app` on `listener` and blocks until SIGTERM/SIGINT and the graceful
/// shutdown that follows. Returns the exit code.
pub fn serve_listener(listener: Listener, app: Arc<dyn App>, args: &ServerArgs) -> i32 {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    // Blocked here, before any thread starts, so only `wait` below receives them.
    if let Err(e) = signals.thread_block() {
        eprintln!("cgate: cannot block signals: {e}");
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = args.workers.unwrap_or(2 * cores).max(1);
    let max_conns = args.max_conns.max(1);
    let limits = Limits {
        max_params_bytes: args.max_params_bytes,
        ..Limits::default()
    };
    let values = ManagementValues {
        max_conns: u32::try_from(max_conns).unwrap_or(u32::MAX),
        max_reqs: u32::try_from(max_conns).unwrap_or(u32::MAX),
        mpxs_conns: false,
    };
    let allowed = if listener.is_tcp() {
        web_server_addrs(std::env::var("FCGI_WEB_SERVER_ADDRS").ok().as_deref())
    } else {
        None
    };
    let sh = Arc::new(Shared {
        listener,
        app,
        cfg: ConnConfig {
            limits,
            values,
            idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
            request_timeout: Duration::from_secs(args.request_timeout.max(1)),
            max_body: args.max_body,
        },
        workers,
        max_conns,
        allowed,
        stopping: AtomicBool::new(false),
        active: AtomicUsize::new(0),
        waiting: AtomicUsize::new(0),
        threads: AtomicUsize::new(0),
        next_id: AtomicU64::new(0),
        conns: Mutex::new(HashMap::new()),
    });
    for _ in 0..workers {
        spawn_acceptor(&sh);
    }
    let first = signals.wait().unwrap_or(Signal::SIGTERM);
    eprintln!("cgate: {first} received: no new connections, finishing requests in flight");
    sh.stopping.store(true, SeqCst);
    sh.listener.shutdown();
    if let Ok(m) = sh.conns.lock() {
        for slot in m.values() {
            if slot.idle.load(SeqCst) {
                slot.stream.shutdown();
            }
        }
    }
    std::thread::spawn(move || {
        if let Ok(sig) = signals.wait() {
            eprintln!("cgate: second {sig}: exiting now");
            std::process::exit(1);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(args.shutdown_timeout);
    while sh.active.load(SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    sh.listener.remove_file();
    let left = sh.active.load(SeqCst);
    if left > 0 {
        eprintln!("cgate: shutdown timeout: {left} connection(s) still busy, exiting");
        return 1;
    }
    0
}

/// `cgate fastcgi`: opens `--listen` (or the socket inherited on fd 0) and serves.
pub fn run_cli(app: Arc<dyn App>, args: ServerArgs) -> i32 {
    let addr = match &args.listen {
        Some(a) => a.clone(),
        None if crate::net::sys::stdin_is_listener() => ListenAddr::Fd(0),
        None => {
            eprintln!("cgate: fastcgi needs --listen ADDR (or a listening socket on fd 0)");
            return crate::cli::EXIT_USAGE;
        }
    };
    let unix = UnixOptions {
        mode: args.socket_mode,
        owner: args.socket_owner.clone(),
        group: args.socket_group.clone(),
    };
    let listener = match Listener::open(&addr, &unix) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cgate: cannot listen on {addr}: {e}");
            return 1;
        }
    };
    if let Listener::Tcp(l) = &listener {
        if l.local_addr().is_ok_and(|a| !a.ip().is_loopback()) {
            eprintln!("cgate: warning: listening on a non-loopback address ({addr})");
        }
    }
    serve_listener(listener, app, &args)
}

/// `cgate` started with a listening socket on fd 0 (spawn-fcgi, mod_fcgid).
pub fn run_inherited(app: Arc<dyn App>) -> i32 {
    run_cli(
        app,
        ServerArgs {
            listen: Some(ListenAddr::Fd(0)),
            ..ServerArgs::default()
        },
    )
}
