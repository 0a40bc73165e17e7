//! One FastCGI connection served on its thread: socket bytes through the sans-IO core into the driver.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{MsgFlags, recv};

use super::connection::{Connection, Event, Limits, ManagementValues, Params};
use super::record::{self, RecordType};
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
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    fn frame_stage(&mut self) {
        if !self.stage.is_empty() {
            self.conn.stdout(&self.stage, &mut self.wbuf);
            self.stage.clear();
        }
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

    fn read_stdin(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        loop {
            if !self.stdin.is_empty() {
                let n = buf.len().min(self.stdin.len());
                let from = self.stdin.start;
                buf[..n].copy_from_slice(&self.rbuf[from..from + n]);
                self.stdin.start += n;
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
        if io.wbuf.len() >= WBUF_FLUSH {
            io.write_out()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut io = self.io.borrow_mut();
        io.dead()?;
        io.frame_stage();
        io.write_out()
    }

    fn finish(&mut self) -> io::Result<()> {
        let mut io = self.io.borrow_mut();
        io.dead()?;
        io.frame_stage();
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
    idle: &dyn Fn(bool),
    stop: &dyn Fn() -> bool,
) {
    let _ = stream.set_write_timeout(Some(cfg.request_timeout));
    let io = RefCell::new(Io {
        stream,
        conn: Connection::new(cfg.limits, cfg.values),
        rbuf: vec![0u8; RBUF_LEN],
        rstart: 0,
        rend: 0,
        wbuf: Vec::with_capacity(4096),
        stage: Vec::with_capacity(4096),
        stdin: 0..0,
        stdin_done: false,
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
    let mut io = io.borrow_mut();
    let _ = io.write_out();
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
    let id = {
        let mut io = io.borrow_mut();
        io.stdin = 0..0;
        io.stdin_done = false;
        io.aborted = false;
        io.cut = false;
        io.keep = false;
        io.conn.active_request().unwrap_or_default()
    };
    let mut env = Environ::from_indexed(params.raw, params.pairs, FASTCGI_FACTS);
    env.gateway.https = env.detect_https();
    let mut sink = FcgiSink { io };
    let length = match parse_content_length(env.get("CONTENT_LENGTH")) {
        Ok(Some(n)) => BodyLength::Exact(n),
        Ok(None) => BodyLength::ToEnd { max: cfg.max_body },
        Err(e) => {
            let _ = writeln!(ErrorStream { io }, "cgate: 400 Bad Request: {e}");
            crate::cgi::gateway::send_plain(&mut sink, "400 Bad Request", "Bad Request\n");
            return reusable(&mut io.borrow_mut(), id, keep_conn, cfg);
        }
    };
    let mut src = StdinReader {
        io,
        timeout: cfg.request_timeout,
    };
    let mut errors = ErrorStream { io };
    let mut req = Request::new(env, Input::new(&mut src, length), &mut errors);
    run_app(app, &mut req, &mut sink);
    drop(req);
    let mut io = io.borrow_mut();
    let io = &mut *io;
    if io.conn.active_request().is_some() && io.aborted && !io.broken {
        // ABORT_REQUEST: the app has stopped; confirm with END_REQUEST at once.
        io.stage.clear();
        io.keep = io.conn.end_request(0, &mut io.wbuf);
        let _ = io.write_out();
    }
    reusable(io, id, keep_conn, cfg)
}

/// Whether the connection may carry another request once request `id` has ended.
fn reusable(io: &mut Io<'_>, id: u16, keep_conn: bool, cfg: &ConnConfig) -> bool {
    // A response cut by an app error ends without END_REQUEST: the connection must close. An
    // aborted request's response is cut too, but it was confirmed with END_REQUEST above.
    let cut = io.cut && !io.aborted;
    if cut || io.broken || io.conn.active_request().is_some() || !(keep_conn && io.keep) {
        return false;
    }
    // After ABORT_REQUEST the web server sends nothing more for the request.
    io.stdin_done || io.aborted || drain_stdin(io, id, cfg.request_timeout)
}

/// Skips what is left of request `id`'s STDIN stream after the request has ended (the app
/// did not read its body to the end, or a GET's empty STDIN record had not been reached):
/// at most [`DRAIN_LIMIT`] bytes, within `timeout`. Returns true when the stream's end (or a
/// record of anything else) came first, so the next request starts on a clean record
/// boundary; false when the connection should be closed instead.
fn drain_stdin(io: &mut Io<'_>, id: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut budget = DRAIN_LIMIT;
    loop {
        match record::parse_record(&io.rbuf[io.rstart..io.rend]) {
            Err(_) => return false,
            Ok(Some((rec, used))) => {
                if rec.record_type != RecordType::Stdin || rec.request_id != id {
                    return true;
                }
                let n = rec.content.len() as u64;
                if n > budget {
                    return false;
                }
                budget -= n;
                io.rstart += used;
                if n == 0 {
                    return true;
                }
            }
            Ok(None) => {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    return false;
                };
                match io.fill(left.max(Duration::from_millis(1))) {
                    Ok(0) | Err(_) => return false,
                    Ok(_) => {}
                }
            }
        }
    }
}
