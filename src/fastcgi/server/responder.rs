//! One FastCGI connection: socket bytes through the sans-IO core into the driver, resumable per event.
//!
//! The socket is non-blocking. Between requests, [`on_readable`] reads what has arrived and
//! returns as soon as no whole request head is buffered, so an idle connection holds no
//! thread. Inside a request the app may block (reading a body still in transit, writing a
//! large response): those waits are `poll()`s on this one socket, bounded by the request
//! timeout.
//!
//! One request's I/O (the app's input, error stream and sink) is in [`super::request`].

use std::io;
use std::ops::Range;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::spool::Spool;
use crate::fastcgi::proto::connection::{Connection, Event, Limits, ManagementValues, Params};
use crate::gateway::{App, GatewayFacts};
use crate::net::listener::Stream;

/// Initial receive buffer; it grows to [`RBUF_MAX`] only for large records.
const RBUF_START: usize = 16 * 1024;
/// Largest receive buffer: a whole 65535-byte record plus header and padding fits twice.
const RBUF_MAX: usize = 160 * 1024;
/// Output is written once this much is queued, so a large body never piles up.
pub(super) const WBUF_FLUSH: usize = 256 * 1024;
/// Body chunks up to this size are merged with the headers into one STDOUT record.
pub(super) const STAGE_MAX: usize = 16 * 1024;
/// Buffers larger than this are released when the connection goes idle.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Per-connection settings, fixed for the server's life.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// Protocol limits.
    pub limits: Limits,
    /// What GET_VALUES reports.
    pub values: ManagementValues,
    /// How long an idle kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a request's records (BEGIN and PARAMS) may take to arrive, in total; also the
    /// longest wait for each read of the body and each write.
    pub request_timeout: Duration,
    /// Most body bytes read when no CONTENT_LENGTH is given.
    pub max_body: u64,
}

/// The gateway facts of the FastCGI server: threads in one process, many requests.
pub const FASTCGI_FACTS: GatewayFacts = GatewayFacts::fastcgi();

pub(super) enum Step {
    NeedMore,
    Handled,
    Request(bool, Params),
    Stdin(Range<usize>),
    StdinEnd,
    Abort,
}

/// What the event loop should do with a connection after [`on_readable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait for more bytes (re-arm the socket); `partial` when a request head is incomplete.
    Wait {
        /// A request has started arriving but is not complete.
        partial: bool,
    },
    /// Close the connection.
    Close,
}

/// The state of one connection that survives between readiness events.
pub struct ConnState {
    pub(super) stream: Arc<Stream>,
    pub(super) conn: Connection,
    pub(super) rbuf: Vec<u8>,
    pub(super) rstart: usize,
    pub(super) rend: usize,
    pub(super) wbuf: Vec<u8>,
    pub(super) stage: Vec<u8>,
    pub(super) stdin: Range<usize>,
    pub(super) stdin_done: bool,
    /// Body read ahead of the app (see [`ConnState::drain_body`]), served before reading on.
    pub(super) spool: Spool,
    /// Most body bytes the spool takes for this request.
    pub(super) spool_cap: u64,
    /// STDOUT records are in `wbuf`, not written yet.
    pub(super) stdout_pending: bool,
    pub(super) aborted: bool,
    pub(super) broken: bool,
    pub(super) cut: bool,
    pub(super) keep: bool,
    /// The rest of an ended request's STDIN still to skip: its id and the bytes allowed.
    pub(super) drain: Option<(u16, u64)>,
    pub(super) request_timeout: Duration,
}

fn wait_fd(stream: &Stream, flags: PollFlags, timeout: Duration) -> io::Result<()> {
    crate::gateway::about_to_block();
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(stream.as_fd(), flags)];
    loop {
        match poll(&mut fds, PollTimeout::from(ms)) {
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
            wbuf: Vec::new(),
            stage: Vec::new(),
            stdin: 0..0,
            stdin_done: false,
            spool: Spool::default(),
            spool_cap: 0,
            stdout_pending: false,
            aborted: false,
            broken: false,
            cut: false,
            keep: false,
            drain: None,
            request_timeout: cfg.request_timeout,
        }
    }

    /// Makes room and reads once without waiting. Ok(None): nothing there yet.
    fn read_now(&mut self) -> io::Result<Option<usize>> {
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

    /// Reads, waiting up to `timeout` for bytes; Ok(0) is end of stream.
    pub(super) fn read_wait(&mut self, timeout: Duration) -> io::Result<usize> {
        loop {
            if let Some(n) = self.read_now()? {
                return Ok(n);
            }
            wait_fd(&self.stream, PollFlags::POLLIN, timeout)?;
        }
    }

    /// Runs the protocol core over one record of buffered input.
    pub(super) fn step(&mut self) -> Result<Step, crate::fastcgi::proto::ProtocolError> {
        let input = &self.rbuf[self.rstart..self.rend];
        let base = self.rbuf.as_ptr() as usize;
        let (used, event) = self.conn.process(input)?;
        let step = match event {
            None if used == 0 => Step::NeedMore,
            None => Step::Handled,
            Some(Event::Request {
                request_id: _,
                keep_conn,
                params,
            }) => Step::Request(keep_conn, params),
            Some(Event::Stdin(data)) => {
                let start = data.as_ptr() as usize - base;
                Step::Stdin(start..start + data.len())
            }
            Some(Event::StdinEnd) => Step::StdinEnd,
            Some(Event::Abort) => Step::Abort,
        };
        self.rstart += used;
        let out = self.conn.output();
        if !out.is_empty() {
            self.wbuf.append(out);
        }
        Ok(step)
    }

    pub(super) fn write_out(&mut self) -> io::Result<()> {
        let mut done = 0;
        let r = loop {
            if done == self.wbuf.len() {
                break Ok(());
            }
            match self.stream.write_shared(&self.wbuf[done..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = wait_fd(&self.stream, PollFlags::POLLOUT, self.request_timeout)
                    {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        self.wbuf.clear();
        self.stdout_pending = false;
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    pub(super) fn frame_stage(&mut self) {
        if !self.stage.is_empty() {
            self.conn.stdout(&self.stage, &mut self.wbuf);
            self.stage.clear();
            self.stdout_pending = true;
        }
    }

    /// Releases large buffers of an idle connection.
    fn trim(&mut self) {
        if self.rstart == self.rend && self.rbuf.len() > KEEP_CAPACITY {
            self.rbuf = Vec::new();
            self.rstart = 0;
            self.rend = 0;
        }
        if self.wbuf.capacity() > KEEP_CAPACITY {
            self.wbuf = Vec::new();
        }
        if self.stage.capacity() > KEEP_CAPACITY {
            self.stage = Vec::new();
        }
    }
}

/// Handles a readiness event: reads what has arrived and serves every complete request in
/// the buffer (the app may block inside). `busy(true)` is called when a request starts and
/// `busy(false)` when it ends; `stop()` says the server is shutting down.
pub fn on_readable(
    st: &mut ConnState,
    app: &dyn App,
    cfg: &ConnConfig,
    busy: &dyn Fn(bool),
    stop: &dyn Fn() -> bool,
) -> Next {
    let mut read_once = false;
    loop {
        let step = match st.drain_buffered() {
            Ok(true) => st.step(),
            Ok(false) => Ok(Step::NeedMore),
            Err(()) => return Next::Close,
        };
        match step {
            Ok(Step::Request(keep_conn, params)) => {
                if stop() {
                    return Next::Close;
                }
                busy(true);
                let keep = super::request::serve_request(st, app, cfg, keep_conn, params);
                busy(false);
                if !keep || stop() {
                    return Next::Close;
                }
                continue;
            }
            Ok(Step::NeedMore) => {}
            Ok(_) => continue,
            Err(e) => {
                eprintln!("cgate: closing FastCGI connection: {e}");
                let _ = st.write_out();
                return Next::Close;
            }
        }
        if st.write_out().is_err() || st.conn.close_requested() {
            return Next::Close;
        }
        let partial =
            st.rstart < st.rend || st.conn.active_request().is_some() || st.drain.is_some();
        if read_once {
            if !partial {
                st.trim();
            }
            return Next::Wait { partial };
        }
        match st.read_now() {
            Ok(Some(0)) => return Next::Close,
            Ok(Some(n)) => {
                // A short read drained the socket: after serving what came, wait for more.
                read_once = n < st.rbuf.len() - st.rend + n;
            }
            Ok(None) => {
                if !partial {
                    st.trim();
                }
                return Next::Wait { partial };
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    eprintln!("cgate: closing FastCGI connection: {e}");
                }
                return Next::Close;
            }
        }
    }
}
