//! One FastCGI connection served on its thread: socket bytes through the sans-IO core into the driver.
//!
//! While an app runs, its response bytes go out only once the whole request body is read:
//! nginx stops sending the body once it has the response head, so when an app answers
//! while the body is still coming, the rest is first read into a [`Spool`] (memory, then a
//! temporary file) and the app's later reads are served from there.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{MsgFlags, recv};

use super::connection::{Connection, Event, Limits, ManagementValues, Params};
use super::spool::Spool;
use crate::gateway::input::DRAIN_LIMIT;
use crate::gateway::{
    App, BodyLength, Environ, GatewayFacts, GatewayKind, Head, Input, Request, Sink,
    parse_content_length, run_app,
};
use crate::net::listener::Stream;

/// Size of the receive buffer: one whole record of 65535 bytes plus header and padding fits.
const RBUF_LEN: usize = 128 * 1024;
/// Output is written once this much is queued, so a large body never piles up.
const WBUF_FLUSH: usize = 256 * 1024;
/// Body chunks up to this size are merged with the headers into one STDOUT record.
const STAGE_MAX: usize = 16 * 1024;

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

struct Io<'s> {
    stream: &'s Stream,
    conn: Connection,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    wbuf: Vec<u8>,
    stage: Vec<u8>,
    stdin: Range<usize>,
    stdin_done: bool,
    /// Body read ahead of the app (see [`Io::drain_body`]), served before reading on.
    spool: Spool,
    /// Most body bytes the spool takes for this request.
    spool_cap: u64,
    /// STDOUT records are in `wbuf`, not written yet.
    stdout_pending: bool,
    /// Longest wait for each read of the body.
    body_timeout: Duration,
    aborted: bool,
    broken: bool,
    cut: bool,
    keep: bool,
    timeout: Option<Duration>,
}

impl<'s> Io<'s> {
    fn set_timeout(&mut self, d: Duration) -> io::Result<()> {
        if self.timeout != Some(d) {
            self.stream.set_read_timeout(Some(d))?;
            self.timeout = Some(d);
        }
        Ok(())
    }

    /// Reads more bytes; Ok(0) is end of stream.
    fn fill(&mut self, timeout: Duration) -> io::Result<usize> {
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        } else if self.rbuf.len() - self.rend < RBUF_LEN / 2 {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        self.set_timeout(timeout)?;
        loop {
            match self.stream.read_shared(&mut self.rbuf[self.rend..]) {
                Ok(n) => {
                    self.rend += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
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
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let r = self.stream.write_all_shared(&self.wbuf);
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
    /// when response bytes would go out before it has all arrived: nginx stops sending the
    /// body once it has the response head, so an app that answers while still reading
    /// would wait for the rest forever.
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
                    if self.fill(self.body_timeout)? == 0 {
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

    fn read_stdin(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
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
                    match self.fill(timeout) {
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
}

struct StdinReader<'a, 's> {
    io: &'a RefCell<Io<'s>>,
    timeout: Duration,
}

impl Read for StdinReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.borrow_mut().read_stdin(buf, self.timeout)
    }
}

struct ErrorStream<'a, 's> {
    io: &'a RefCell<Io<'s>>,
}

impl Write for ErrorStream<'_, '_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut io = self.io.borrow_mut();
        if !(io.broken || io.cut) {
            let io = &mut *io;
            io.conn.stderr(data, &mut io.wbuf);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct FcgiSink<'a, 's> {
    io: &'a RefCell<Io<'s>>,
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
        let io = &mut *io;
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
        let io = &mut *io;
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

/// Serves requests on `stream` until the peer closes, a request without FCGI_KEEP_CONN ends,
/// a protocol error or timeout occurs, or `stop()` says the server is shutting down.
/// `idle(true)` is called while waiting for a request, `idle(false)` when one starts.
pub fn serve_connection(
    stream: &Stream,
    app: &dyn App,
    cfg: &ConnConfig,
    buffers: &mut Buffers,
    idle: &dyn Fn(bool),
    stop: &dyn Fn() -> bool,
) {
    let _ = stream.set_write_timeout(Some(cfg.request_timeout));
    if buffers.rbuf.len() != RBUF_LEN {
        buffers.rbuf = vec![0u8; RBUF_LEN];
    }
    let io = RefCell::new(Io {
        stream,
        conn: Connection::new(cfg.limits, cfg.values),
        rbuf: std::mem::take(&mut buffers.rbuf),
        rstart: 0,
        rend: 0,
        wbuf: std::mem::take(&mut buffers.wbuf),
        stage: std::mem::take(&mut buffers.stage),
        stdin: 0..0,
        stdin_done: false,
        spool: Spool::default(),
        spool_cap: 0,
        stdout_pending: false,
        body_timeout: cfg.request_timeout,
        aborted: false,
        broken: false,
        cut: false,
        keep: false,
        timeout: None,
    });
    while let Some((keep_conn, params)) = next_request(&io, cfg, idle, stop) {
        idle(false);
        let keep = serve_request(&io, app, cfg, keep_conn, params);
        idle(true);
        if !keep || stop() {
            break;
        }
    }
    let mut io = io.into_inner();
    let _ = io.write_out();
    buffers.rbuf = io.rbuf;
    io.stage.clear();
    io.wbuf.clear();
    if io.wbuf.capacity() <= KEEP_CAPACITY {
        buffers.wbuf = io.wbuf;
    }
    if io.stage.capacity() <= KEEP_CAPACITY {
        buffers.stage = io.stage;
    }
}

/// Output buffers larger than this are not kept for the next connection.
const KEEP_CAPACITY: usize = 512 * 1024;

/// A thread's I/O buffers, reused from one connection to the next (no allocation and no
/// page faults per connection).
#[derive(Debug, Default)]
pub struct Buffers {
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    stage: Vec<u8>,
}

fn next_request(
    io: &RefCell<Io<'_>>,
    cfg: &ConnConfig,
    idle: &dyn Fn(bool),
    stop: &dyn Fn() -> bool,
) -> Option<(bool, Params)> {
    let mut io = io.borrow_mut();
    let mut started: Option<Instant> = None;
    loop {
        match io.step() {
            Ok(Step::Request(keep_conn, params)) => return Some((keep_conn, params)),
            Ok(Step::NeedMore) => {}
            Ok(_) => continue,
            Err(e) => {
                eprintln!("cgate: closing FastCGI connection: {e}");
                let _ = io.write_out();
                return None;
            }
        }
        io.write_out().ok()?;
        if io.conn.close_requested() || stop() {
            return None;
        }
        let partial = io.rstart < io.rend || io.conn.active_request().is_some();
        let timeout = if partial {
            idle(false);
            let t0 = *started.get_or_insert_with(Instant::now);
            let left = cfg.request_timeout.checked_sub(t0.elapsed())?;
            left.max(Duration::from_millis(1))
        } else {
            cfg.idle_timeout
        };
        match io.fill(timeout) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => {
                if partial
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    )
                {
                    eprintln!("cgate: closing FastCGI connection: request did not arrive in time");
                }
                return None;
            }
        }
    }
}

/// Serves one request; returns whether the connection may carry another.
fn serve_request(
    io: &RefCell<Io<'_>>,
    app: &dyn App,
    cfg: &ConnConfig,
    keep_conn: bool,
    params: Params,
) -> bool {
    {
        let mut io = io.borrow_mut();
        io.stdin = 0..0;
        io.stdin_done = false;
        io.spool = Spool::default();
        io.stdout_pending = false;
        io.aborted = false;
        io.keep = false;
    }
    let mut env = Environ::from_indexed(params.raw, params.pairs, FASTCGI_FACTS);
    env.gateway.https = env.detect_https();
    let mut sink = FcgiSink { io };
    let length = match parse_content_length(env.get("CONTENT_LENGTH")) {
        Ok(Some(n)) => BodyLength::Exact(n),
        Ok(None) => BodyLength::ToEnd { max: cfg.max_body },
        Err(e) => {
            let _ = writeln!(ErrorStream { io }, "cgate: 400 Bad Request: {e}");
            crate::cgi::gateway::send_plain(&mut sink, "400 Bad Request", "Bad Request\n");
            let io = io.borrow();
            return keep_conn && io.keep && io.stdin_done && !io.broken;
        }
    };
    io.borrow_mut().spool_cap = match length {
        BodyLength::Exact(n) => n,
        BodyLength::ToEnd { max } => max,
    };
    let mut src = StdinReader {
        io,
        timeout: cfg.request_timeout,
    };
    let mut errors = ErrorStream { io };
    let mut req = Request::new(env, Input::new(&mut src, length), &mut errors);
    run_app(app, &mut req, &mut sink);
    let left = match length {
        BodyLength::Exact(n) => n.saturating_sub(req.input.consumed()),
        BodyLength::ToEnd { .. } => u64::MAX,
    };
    let env = std::mem::replace(&mut req.environ, Environ::new(FASTCGI_FACTS));
    drop(req);
    let mut io = io.borrow_mut();
    let io = &mut *io;
    let (raw, pairs) = env.into_parts();
    io.conn.recycle_params(Params { raw, pairs });
    if io.conn.active_request().is_some() && io.aborted && !io.broken {
        // ABORT_REQUEST: the app has stopped; confirm with END_REQUEST at once.
        io.stage.clear();
        io.keep = io.conn.end_request(0, &mut io.wbuf);
        let _ = io.write_out();
    }
    if io.cut || io.broken || io.conn.active_request().is_some() {
        return false;
    }
    let body_done = io.stdin_done || left == 0 || (left != u64::MAX && left <= DRAIN_LIMIT);
    keep_conn && io.keep && body_done
}
