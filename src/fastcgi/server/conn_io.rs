//! One connection's socket and buffers: reads into the receive buffer, runs the protocol core over it, writes what it owes.
//!
//! Nothing here decides anything about the protocol: [`ConnState::step`] hands the buffered
//! bytes to [`Connection::process`] and returns its answer, [`ConnState::write_out`] writes
//! [`Connection::transmit`]. The socket is non-blocking; the waits here are `poll()`s on it,
//! bounded by the request timeout or the request's body deadline.

use std::io;
use std::ops::Range;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::spool::Spool;
use crate::fastcgi::proto::connection::{
    Connection, Event, Limits, ManagementValues, Params, Progress, ProtocolError,
};
use crate::gateway::GatewayFacts;
use crate::net::listener::Stream;

/// Output is written once this much is queued, so a large body never piles up.
pub(super) const WBUF_FLUSH: usize = 256 * 1024;
/// Body chunks up to this size are merged with the headers into one STDOUT record.
pub(super) const STAGE_MAX: usize = 16 * 1024;
/// Body bytes read ahead in the event loop before the app starts (64 KiB): a request with
/// a body up to this size never holds a thread while its body arrives.
pub const PREREAD_MAX: u64 = 64 * 1024;

/// Per-connection settings, fixed for the server's life.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// Protocol limits.
    pub limits: Limits,
    /// What GET_VALUES reports.
    pub values: ManagementValues,
    /// How long an idle kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a request (from its first byte, or from the connection's start for the
    /// first request) may take to arrive with a body up to [`PREREAD_MAX`]; the longest wait
    /// for each read and write; and the slack of the body deadline (see
    /// [`MIN_BODY_RATE`]).
    pub request_timeout: Duration,
    /// Most body bytes read when no CONTENT_LENGTH is given.
    pub max_body: u64,
    /// Most body bytes held ahead of the app (memory, then a temporary file).
    pub max_spool: u64,
}

/// The gateway facts of the FastCGI server: threads in one process, many requests.
pub const FASTCGI_FACTS: GatewayFacts = GatewayFacts::fastcgi();

/// Initial receive buffer; it grows to [`RBUF_MAX`] only for large records.
const RBUF_START: usize = 16 * 1024;
/// Largest receive buffer: a whole 65535-byte record plus header and padding fits twice.
const RBUF_MAX: usize = 160 * 1024;
/// Buffers larger than this are released when the connection goes idle.
const KEEP_CAPACITY: usize = 64 * 1024;
/// A request body must arrive at this average rate (bytes per second) once the request
/// timeout's worth of slack is used up: 16 KiB/s.
pub const MIN_BODY_RATE: u64 = 16 * 1024;

/// Most threads waiting for request bodies at once, process-wide (64). A request body
/// up to [`PREREAD_MAX`] never needs one (it is read in the event loop);
/// past the bound, an app whose body is not there yet gets a read error at once instead of
/// parking one more thread.
pub const MAX_BODY_WAITERS: usize = 64;

static BODY_WAITERS: AtomicUsize = AtomicUsize::new(0);

/// One thread counted in [`MAX_BODY_WAITERS`] while it waits.
struct BodyWaiter;

impl BodyWaiter {
    fn enter() -> io::Result<BodyWaiter> {
        if BODY_WAITERS.fetch_add(1, Ordering::SeqCst) >= MAX_BODY_WAITERS {
            BODY_WAITERS.fetch_sub(1, Ordering::SeqCst);
            let why = "too many requests waiting for their bodies; refusing one more";
            return Err(io::Error::other(why));
        }
        Ok(BodyWaiter)
    }
}

impl Drop for BodyWaiter {
    fn drop(&mut self) {
        BODY_WAITERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The state of one connection that survives between readiness events.
pub struct ConnState {
    pub(super) stream: Arc<Stream>,
    pub(super) conn: Connection,
    pub(super) rbuf: Vec<u8>,
    pub(super) rstart: usize,
    pub(super) rend: usize,
    /// Small response pieces merged before they become one STDOUT record.
    pub(super) stage: Vec<u8>,
    /// Body bytes of the current STDIN record not yet given to the app (into `rbuf`).
    pub(super) stdin: Range<usize>,
    /// Body read ahead of the app (before it started, or before response bytes went out).
    pub(super) spool: Spool,
    /// Most bytes the spool may hold (`--max-spool`).
    pub(super) max_spool: u64,
    /// A request whose app has not started: its body is read ahead first (see
    /// `PREREAD_MAX`), so a slow body holds no thread.
    pub(super) waiting: Option<Params>,
    /// The current request's body bound was given to the protocol core.
    pub(super) body_limited: bool,
    /// No request has started yet: the first-request deadline runs.
    pub(super) fresh: bool,
    /// The socket failed (I/O error, end of stream, timeout): the connection is closed.
    pub(super) broken: bool,
    /// When the body must have arrived by (moved on by each body chunk, see
    /// [`MIN_BODY_RATE`]); None until the request's first body byte or wait.
    pub(super) body_deadline: Option<Instant>,
    pub(super) request_timeout: Duration,
    /// The current request's body waits on a descriptor, off any thread (see
    /// [`crate::gateway::deferred`]).
    pub(super) parked: Option<crate::gateway::driver::Parked>,
}

/// `at + d`, or a year after `at` when the sum does not fit (an operator's huge timeout
/// must not panic).
pub(super) fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + Duration::from_secs(365 * 24 * 3600))
}

/// Waits until `stream` is ready for `flags` or `timeout` passes (any length: one `poll()`
/// takes at most 65 s, so longer timeouts wait in several).
pub(super) fn wait_fd(stream: &Stream, flags: PollFlags, timeout: Duration) -> io::Result<()> {
    crate::gateway::about_to_block();
    let deadline = later(Instant::now(), timeout);
    let mut fds = [PollFd::new(stream.as_fd(), flags)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) if Instant::now() < deadline => {}
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the web server did not keep up within the request timeout",
                ));
            }
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

impl ConnState {
    /// A connection over `stream` (which must be non-blocking).
    pub fn new(stream: Arc<Stream>, cfg: &ConnConfig) -> Self {
        ConnState {
            stream,
            conn: Connection::new(cfg.limits, cfg.values),
            rbuf: Vec::new(),
            rstart: 0,
            rend: 0,
            stage: Vec::new(),
            stdin: 0..0,
            spool: Spool::default(),
            max_spool: cfg.max_spool,
            waiting: None,
            body_limited: false,
            fresh: true,
            broken: false,
            body_deadline: None,
            request_timeout: cfg.request_timeout,
            parked: None,
        }
    }

    /// Makes room and reads once without waiting. Ok(None): nothing there yet.
    pub(super) fn read_now(&mut self) -> io::Result<Option<usize>> {
        debug_assert!(self.stdin.is_empty(), "unread body bytes would move");
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        }
        if self.rbuf.len() - self.rend < RBUF_START / 2 {
            if self.rstart > 0 {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            }
            if self.rbuf.len() - self.rend < RBUF_START / 2 {
                let grown = (self.rbuf.len() * 2).clamp(RBUF_START, RBUF_MAX);
                if grown > self.rbuf.len() {
                    self.rbuf.resize(grown, 0);
                }
            }
        }
        if self.rend == self.rbuf.len() {
            // A record larger than the buffer: impossible within RBUF_MAX, so the peer is broken.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record too large",
            ));
        }
        loop {
            match self.stream.read_shared(&mut self.rbuf[self.rend..]) {
                Ok(n) => {
                    self.rend += n;
                    return Ok(Some(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads more of the request body, waiting until the body deadline (and at most the
    /// request timeout per wait). End of stream is an error: the body is incomplete.
    pub(super) fn read_body(&mut self) -> io::Result<()> {
        let r = self.read_body_inner();
        self.broken |= r.is_err();
        r
    }

    fn read_body_inner(&mut self) -> io::Result<()> {
        loop {
            match self.read_now()? {
                Some(0) => {
                    let why = "web server closed the connection during the body";
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, why));
                }
                Some(_) => return Ok(()),
                None => {}
            }
            let now = Instant::now();
            let deadline = *self
                .body_deadline
                .get_or_insert(later(now, self.request_timeout));
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                let why =
                    "request body too slow (below the minimum rate after the request timeout)";
                return Err(io::Error::new(io::ErrorKind::TimedOut, why));
            }
            let _counted = BodyWaiter::enter()?;
            wait_fd(
                &self.stream,
                PollFlags::POLLIN,
                left.min(self.request_timeout),
            )?;
        }
    }

    /// Moves the body deadline on for `n` bytes just received, keeping at most a request
    /// timeout of slack ahead of now.
    pub(super) fn body_progress(&mut self, n: usize) {
        let now = Instant::now();
        let credit = Duration::from_micros((n as u64).saturating_mul(1_000_000) / MIN_BODY_RATE);
        let slack = later(now, self.request_timeout);
        let deadline = self.body_deadline.unwrap_or(slack);
        self.body_deadline = Some(later(deadline, credit).min(slack));
    }

    /// Runs the protocol core over the buffered input and returns its answer; a body
    /// range comes back as a range of `rbuf` and is also kept in `stdin`.
    pub(super) fn step(&mut self) -> Result<Progress, ProtocolError> {
        let base = self.rstart;
        let (used, progress) = self.conn.process(&self.rbuf[base..self.rend])?;
        self.rstart += used;
        Ok(match progress {
            Progress::Event(Event::Stdin(r)) => {
                self.stdin = base + r.start..base + r.end;
                Progress::Event(Event::Stdin(self.stdin.clone()))
            }
            other => other,
        })
    }

    /// Writes everything the protocol core has to send now, waiting (within the request
    /// timeout) while the peer is slow to read.
    pub(super) fn write_out(&mut self) -> io::Result<()> {
        if self.conn.transmit().is_empty() {
            return Ok(());
        }
        let r = self.write_inner(true);
        self.broken |= r.is_err();
        r
    }

    /// Writes what can be written without waiting. Ok(true): all of it.
    pub(super) fn write_now(&mut self) -> io::Result<bool> {
        match self.write_inner(false) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }

    fn write_inner(&mut self, wait: bool) -> io::Result<()> {
        loop {
            let out = self.conn.transmit();
            if out.is_empty() {
                return Ok(());
            }
            match self.stream.write_shared(out) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => self.conn.transmitted(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && wait => {
                    wait_fd(&self.stream, PollFlags::POLLOUT, self.request_timeout)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Frames the staged response bytes as STDOUT records.
    pub(super) fn frame_stage(&mut self) {
        if !self.stage.is_empty() {
            self.conn.stdout(&self.stage);
            self.stage.clear();
        }
    }

    /// Releases large buffers of an idle connection.
    pub(super) fn trim(&mut self) {
        if self.rstart == self.rend && self.rbuf.len() > KEEP_CAPACITY {
            self.rbuf = Vec::new();
            self.rstart = 0;
            self.rend = 0;
        }
        if self.stage.capacity() > KEEP_CAPACITY {
            self.stage = Vec::new();
        }
    }
}
