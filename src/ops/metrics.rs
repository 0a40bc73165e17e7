//! Process-wide counters and gauges (relaxed atomics: a request costs a few increments).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// Counters since start and gauges of now.
#[derive(Debug)]
pub struct Counters {
    /// Requests by status class: 1xx..5xx, and index 0 for "no status sent".
    by_class: [AtomicU64; 6],
    cut: AtomicU64,
    aborted: AtomicU64,
    client_gone: AtomicU64,
    conn_rejected: AtomicU64,
    log_dropped: AtomicU64,
    slow: AtomicU64,
    not_run: AtomicU64,
    conns_open: AtomicUsize,
    in_flight: AtomicUsize,
}

/// The one set of counters.
pub static COUNTERS: Counters = Counters {
    by_class: [const { AtomicU64::new(0) }; 6],
    cut: AtomicU64::new(0),
    aborted: AtomicU64::new(0),
    client_gone: AtomicU64::new(0),
    conn_rejected: AtomicU64::new(0),
    log_dropped: AtomicU64::new(0),
    slow: AtomicU64::new(0),
    not_run: AtomicU64::new(0),
    conns_open: AtomicUsize::new(0),
    in_flight: AtomicUsize::new(0),
};

/// Limits the server was started with.
#[derive(Debug, Clone, Copy)]
pub struct Configured {
    /// `--max-conns`.
    pub max_conns: usize,
    /// `--workers`.
    pub workers: usize,
    /// When the server started.
    pub started: Instant,
}

static CONFIGURED: OnceLock<Configured> = OnceLock::new();

/// Records the configured limits (once; later calls are ignored).
pub fn configure(max_conns: usize, workers: usize) {
    let _ = CONFIGURED.set(Configured {
        max_conns,
        workers,
        started: Instant::now(),
    });
}

/// The configured limits, if the server has started.
pub fn configured() -> Option<Configured> {
    CONFIGURED.get().copied()
}

/// A duplicate of the TCP listening socket, for its accept queue.
static LISTENER: OnceLock<OwnedFd> = OnceLock::new();

/// Keeps a duplicate of `listener` (TCP only) so the status can report its accept queue.
pub fn watch_listener(listener: &crate::net::listener::Listener) {
    if listener.is_tcp() {
        if let Ok(fd) = listener.as_fd().try_clone_to_owned() {
            let _ = LISTENER.set(fd);
        }
    }
}

/// The TCP listener's accept queue now: (connections waiting, the queue's bound). `None`
/// on a Unix socket (Linux reports its queue only through sock_diag netlink) or before the
/// server started.
pub fn accept_queue() -> Option<(u32, u32)> {
    crate::os::tcp_accept_queue(LISTENER.get()?.as_fd())
}

/// How a request ended, for the counters and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The response was sent whole.
    Complete,
    /// The response was cut after it started (app error).
    Cut,
    /// The web server aborted the request (FCGI_ABORT_REQUEST).
    Aborted,
    /// The web server's connection went away.
    ClientGone,
}

impl Outcome {
    /// The access log's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Cut => "cut",
            Outcome::Aborted => "aborted",
            Outcome::ClientGone => "client-gone",
        }
    }
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Requests by status class (index 1..=5 for 1xx..5xx, 0: none sent).
    pub by_class: [u64; 6],
    /// Responses cut.
    pub cut: u64,
    /// Requests aborted by the web server.
    pub aborted: u64,
    /// Requests whose web-server connection went away.
    pub client_gone: u64,
    /// Connections refused at `--max-conns`.
    pub conn_rejected: u64,
    /// Access log lines dropped because the writer was behind.
    pub log_dropped: u64,
    /// Requests that got a slow-log line.
    pub slow: u64,
    /// Requests not run: their web-server connection had closed while they waited.
    pub not_run: u64,
    /// Connections open now.
    pub conns_open: usize,
    /// Requests running now.
    pub in_flight: usize,
}

impl Counters {
    /// A request started.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// A request ended with `status` (0: none sent) and `outcome`.
    pub fn request_ended(&self, status: u16, outcome: Outcome) {
        self.in_flight.fetch_sub(1, Relaxed);
        let class = usize::from(status / 100).min(5);
        self.by_class[if (1..=5).contains(&class) { class } else { 0 }].fetch_add(1, Relaxed);
        match outcome {
            Outcome::Complete => {}
            Outcome::Cut => _ = self.cut.fetch_add(1, Relaxed),
            Outcome::Aborted => _ = self.aborted.fetch_add(1, Relaxed),
            Outcome::ClientGone => _ = self.client_gone.fetch_add(1, Relaxed),
        }
    }

    /// A connection was accepted.
    pub fn conn_opened(&self) {
        self.conns_open.fetch_add(1, Relaxed);
    }

    /// A connection was closed.
    pub fn conn_closed(&self) {
        self.conns_open.fetch_sub(1, Relaxed);
    }

    /// A connection was refused at the connection limit.
    pub fn conn_rejected(&self) {
        self.conn_rejected.fetch_add(1, Relaxed);
    }

    /// An access log line was dropped.
    pub fn log_dropped(&self) {
        self.log_dropped.fetch_add(1, Relaxed);
    }

    /// A request got a slow-log line.
    pub fn slow(&self) {
        self.slow.fetch_add(1, Relaxed);
    }

    /// A request was not run: its web-server connection had closed.
    pub fn not_run(&self) {
        self.not_run.fetch_add(1, Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> Snapshot {
        let mut by_class = [0; 6];
        for (o, c) in by_class.iter_mut().zip(&self.by_class) {
            *o = c.load(Relaxed);
        }
        Snapshot {
            by_class,
            cut: self.cut.load(Relaxed),
            aborted: self.aborted.load(Relaxed),
            client_gone: self.client_gone.load(Relaxed),
            conn_rejected: self.conn_rejected.load(Relaxed),
            log_dropped: self.log_dropped.load(Relaxed),
            slow: self.slow.load(Relaxed),
            not_run: self.not_run.load(Relaxed),
            conns_open: self.conns_open.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
        }
    }
}
