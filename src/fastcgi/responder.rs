//! One FastCGI connection: socket bytes through the sans-IO core into the driver, resumable per event.
//!
//! The socket is non-blocking. Between requests, [`on_readable`] reads what has arrived and
//! returns as soon as no whole request head is buffered, so an idle connection holds no
//! thread. Inside a request the app may block (reading a body still in transit, writing a
//! large response): those waits are `poll()`s on this one socket, bounded by the request
//! timeout.
//!
//! An app's response bytes go out only once the whole request body is read: nginx stops
//! sending the body once it has the response head, so when an app answers while the body
//! is still coming, the rest is first read into a [`Spool`] (memory, then a temporary
//! file) and the app's later reads are served from there.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, recv};

use super::connection::{Connection, Event, Limits, ManagementValues, Params};
use super::record::{self, RecordType};
use super::spool::Spool;
use crate::gateway::input::DRAIN_LIMIT;
use crate::gateway::{
    App, BodyLength, Environ, GatewayFacts, GatewayKind, Head, Input, Request, Sink,
    parse_content_length, run_app,
};
use crate::net::listener::Stream;

/// Initial receive buffer; it grows to [`RBUF_MAX`] only for large records.
const RBUF_START: usize = 16 * 1024;
/// Largest receive buffer: a whole 65535-byte record plus header and padding fits twice.
const RBUF_MAX: usize = 160 * 1024;
/// Output is written once this much is queued, so a large body never piles up.
const WBUF_FLUSH: usize = 256 * 1024;
/// Body chunks up to this size are merged with the headers into one STDOUT record.
const STAGE_MAX: usize = 16 * 1024;
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
pub const FASTCGI_FACTS: GatewayFacts = GatewayFacts {
    kind: GatewayKind::FastCgi,
    https: false,
    multithread: true,
    multiprocess: false,
    run_once: false,
};

enum Step {
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
    stream: Arc<Stream>,
    conn: Connection,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    wbuf: Vec<u8>,
    stage: Vec<u8>,
    stdin: Range<usize>,
    stdin_done: bool,
    /// Body read ahead of the app (see [`ConnState::drain_body`]), served before reading on.
    spool: Spool,
    /// Most body bytes the spool takes for this request.
    spool_cap: u64,
    /// STDOUT records are in `wbuf`, not written yet.
    stdout_pending: bool,
    aborted: bool,
    broken: bool,
    cut: bool,
    keep: bool,
    /// The rest of an ended request's STDIN still to skip: its id and the bytes allowed.
    drain: Option<(u16, u64)>,
    request_timeout: Duration,
}

fn wait_fd(stream: &Stream, flags: PollFlags, timeout: Duration) -> io::Result<()> {
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

    /// The socket.
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
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
    fn read_wait(&mut self, timeout: Duration) -> io::Result<usize> {
        loop {
            if let Some(n) = self.read_now()? {
                return Ok(n);
            }
            wait_fd(&self.stream, PollFlags::POLLIN, timeout)?;
        }
    }

    /// Runs the protocol core over one record of buffered input.
    fn step(&mut self) -> Result<Step, super::connection::ProtocolError> {
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

    fn write_out(&mut self) -> io::Result<()> {
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

    fn frame_stage(&mut self) {
        if !self.stage.is_empty() {
            self.conn.stdout(&self.stage, &mut self.wbuf);
            self.stage.clear();
            self.stdout_pending = true;
        }
    }

    /// Writes the queued output; first reads the rest of the request body into the spool
    /// when response bytes would go out before it has all arrived.
    fn send_out(&mut self) -> io::Result<()> {
        if self.stdout_pending && !self.stdin_done {
            self.drain_body()?;
        }
        self.write_out()
    }

    /// Reads the request body up to its end into the spool.
    fn drain_body(&mut self) -> io::Result<()> {
        let r = self.drain_body_inner();
        self.broken |= r.is_err();
        r
    }

    fn drain_body_inner(&mut self) -> io::Result<()> {
        while !self.stdin_done && !self.aborted {
            if !self.stdin.is_empty() {
                let r = std::mem::replace(&mut self.stdin, 0..0);
                if self.spool.len() + r.len() as u64 > self.spool_cap {
                    let why = "request body longer than declared or allowed";
                    return Err(io::Error::new(io::ErrorKind::InvalidData, why));
                }
                self.spool.push(&self.rbuf[r])?;
                continue;
            }
            match self.step() {
                Ok(Step::Stdin(r)) => self.stdin = r,
                Ok(Step::StdinEnd) => self.stdin_done = true,
                Ok(Step::Abort) => self.aborted = true,
                Ok(Step::Handled | Step::Request(..)) => {}
                Ok(Step::NeedMore) => {
                    if self.read_wait(self.request_timeout)? == 0 {
                        let why = "web server closed the connection during the body";
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, why));
                    }
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
        Ok(())
    }

    fn dead(&self) -> io::Result<()> {
        if self.aborted {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "request aborted by the web server",
            ))
        } else if self.broken || self.cut {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection to the web server is gone",
            ))
        } else {
            Ok(())
        }
    }

    /// Discards body records already received (the app has finished), so that a request whose
    /// empty STDIN record is already here can keep its connection. Never reads the socket.
    fn skip_buffered_stdin(&mut self) {
        self.stdin = 0..0;
        while !self.stdin_done && !self.aborted {
            match self.step() {
                Ok(Step::Stdin(_) | Step::Handled | Step::Request(..)) => {}
                Ok(Step::StdinEnd) => self.stdin_done = true,
                Ok(Step::Abort) => self.aborted = true,
                Ok(Step::NeedMore) => break,
                Err(_) => {
                    self.broken = true;
                    break;
                }
            }
        }
    }

    fn read_stdin(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.stdin.is_empty() {
                let n = buf.len().min(self.stdin.len());
                let from = self.stdin.start;
                buf[..n].copy_from_slice(&self.rbuf[from..from + n]);
                self.stdin.start += n;
                return Ok(n);
            }
            let n = self.spool.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.stdin_done {
                return Ok(0);
            }
            self.dead()?;
            match self.step() {
                Ok(Step::Stdin(r)) => self.stdin = r,
                Ok(Step::StdinEnd) => self.stdin_done = true,
                Ok(Step::Abort) => self.aborted = true,
                Ok(Step::Handled | Step::Request(..)) => {}
                Ok(Step::NeedMore) if self.stdout_pending => self.drain_body()?,
                Ok(Step::NeedMore) => {
                    self.write_out()?;
                    match self.read_wait(self.request_timeout) {
                        Ok(0) => {
                            self.broken = true;
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "web server closed the connection during the body",
                            ));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            self.broken = true;
                            return Err(e);
                        }
                    }
                }
                Err(e) => {
                    self.broken = true;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        }
    }

    /// Skips buffered records of the STDIN stream of an ended request. Ok(true): the stream's
    /// end (or a record of anything else) was reached; Ok(false): more bytes are needed;
    /// Err: more than [`DRAIN_LIMIT`] or a malformed record, so the connection must close.
    fn drain_buffered(&mut self) -> Result<bool, ()> {
        let Some((id, mut budget)) = self.drain else {
            return Ok(true);
        };
        loop {
            match record::parse_record(&self.rbuf[self.rstart..self.rend]) {
                Err(_) => return Err(()),
                Ok(None) => {
                    self.drain = Some((id, budget));
                    return Ok(false);
                }
                Ok(Some((rec, used))) => {
                    if rec.record_type != RecordType::Stdin || rec.request_id != id {
                        self.drain = None;
                        return Ok(true);
                    }
                    let n = rec.content.len() as u64;
                    if n > budget {
                        return Err(());
                    }
                    budget -= n;
                    self.rstart += used;
                    if n == 0 {
                        self.drain = None;
                        return Ok(true);
                    }
                }
            }
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

struct StdinReader<'a, 'c> {
    io: &'a RefCell<&'c mut ConnState>,
}

impl Read for StdinReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.borrow_mut().read_stdin(buf)
    }
}

struct ErrorStream<'a, 'c> {
    io: &'a RefCell<&'c mut ConnState>,
}

impl Write for ErrorStream<'_, '_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut io = self.io.borrow_mut();
        if !(io.broken || io.cut) {
            let io = &mut **io;
            io.conn.stderr(data, &mut io.wbuf);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct FcgiSink<'a, 'c> {
    io: &'a RefCell<&'c mut ConnState>,
}

impl Sink for FcgiSink<'_, '_> {
    fn send_head(&mut self, head: &Head) -> io::Result<()> {
        let mut io = self.io.borrow_mut();
        io.dead()?;
        head.write_cgi(&mut io.stage);
        Ok(())
    }

    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()> {
        let mut io = self.io.borrow_mut();
        io.dead()?;
        let io = &mut **io;
        if io.stage.len() + chunk.len() <= STAGE_MAX {
            io.stage.extend_from_slice(chunk);
            return Ok(());
        }
        io.frame_stage();
        io.conn.stdout(chunk, &mut io.wbuf);
        io.stdout_pending = true;
        if io.wbuf.len() >= WBUF_FLUSH {
            io.send_out()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut io = self.io.borrow_mut();
        io.dead()?;
        io.frame_stage();
        io.send_out()
    }

    fn finish(&mut self) -> io::Result<()> {
        let mut io = self.io.borrow_mut();
        io.dead()?;
        io.frame_stage();
        io.skip_buffered_stdin();
        let io = &mut **io;
        io.keep = io.conn.end_request(0, &mut io.wbuf);
        io.write_out()
    }

    fn abort(&mut self) {
        let mut io = self.io.borrow_mut();
        if !(io.broken || io.aborted) {
            io.frame_stage();
            let _ = io.write_out();
        }
        io.cut = true;
    }

    fn client_gone(&mut self) -> bool {
        let mut io = self.io.borrow_mut();
        if io.dead().is_err() {
            return true;
        }
        let mut probe = [0u8; 1];
        let fd = std::os::fd::AsRawFd::as_raw_fd(&io.stream.as_fd());
        match recv(fd, &mut probe, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
            Ok(0) => {
                io.broken = true;
                true
            }
            Ok(_) => false,
            Err(nix::errno::Errno::EAGAIN) => false,
            Err(_) => {
                io.broken = true;
                true
            }
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
                let keep = serve_request(st, app, cfg, keep_conn, params);
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

/// Serves one request; returns whether the connection may carry another.
fn serve_request(
    st: &mut ConnState,
    app: &dyn App,
    cfg: &ConnConfig,
    keep_conn: bool,
    params: Params,
) -> bool {
    st.stdin = 0..0;
    st.stdin_done = false;
    st.spool = Spool::default();
    st.stdout_pending = false;
    st.aborted = false;
    st.cut = false;
    st.keep = false;
    let id = st.conn.active_request().unwrap_or_default();
    let io = RefCell::new(st);
    let mut env = Environ::from_indexed(params.raw, params.pairs, FASTCGI_FACTS);
    env.gateway.https = env.detect_https();
    let mut sink = FcgiSink { io: &io };
    let length = match parse_content_length(env.get("CONTENT_LENGTH")) {
        Ok(Some(n)) => BodyLength::Exact(n),
        Ok(None) => BodyLength::ToEnd { max: cfg.max_body },
        Err(e) => {
            let _ = writeln!(ErrorStream { io: &io }, "cgate: 400 Bad Request: {e}");
            crate::cgi::gateway::send_plain(&mut sink, "400 Bad Request", "Bad Request\n");
            return reusable(io.into_inner(), id, keep_conn);
        }
    };
    io.borrow_mut().spool_cap = match length {
        BodyLength::Exact(n) => n,
        BodyLength::ToEnd { max } => max,
    };
    let mut src = StdinReader { io: &io };
    let mut errors = ErrorStream { io: &io };
    let mut req = Request::new(env, Input::new(&mut src, length), &mut errors);
    run_app(app, &mut req, &mut sink);
    let env = std::mem::replace(&mut req.environ, Environ::new(FASTCGI_FACTS));
    drop(req);
    let st = io.into_inner();
    let (raw, pairs) = env.into_parts();
    st.conn.recycle_params(Params { raw, pairs });
    if st.conn.active_request().is_some() && st.aborted && !st.broken {
        // ABORT_REQUEST: the app has stopped; confirm with END_REQUEST at once.
        st.stage.clear();
        st.keep = st.conn.end_request(0, &mut st.wbuf);
        let _ = st.write_out();
    }
    reusable(st, id, keep_conn)
}

/// Whether the connection may carry another request once request `id` has ended. What is
/// left of its body is skipped as it arrives (at most [`DRAIN_LIMIT`] bytes, within the
/// request timeout), so the next request starts on a clean record boundary.
fn reusable(st: &mut ConnState, id: u16, keep_conn: bool) -> bool {
    // A response cut by an app error ends without END_REQUEST: the connection must close. An
    // aborted request's response is cut too, but it was confirmed with END_REQUEST above.
    let cut = st.cut && !st.aborted;
    if cut || st.broken || st.conn.active_request().is_some() || !(keep_conn && st.keep) {
        return false;
    }
    // After ABORT_REQUEST the web server sends nothing more for the request.
    if !(st.stdin_done || st.aborted) {
        st.drain = Some((id, DRAIN_LIMIT));
    }
    true
}
