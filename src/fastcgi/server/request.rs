//! One FastCGI request over a connection: the app's input, error stream and response sink.
//!
//! The app reads its body from what was read ahead (the spool), then from the socket. When
//! response bytes must go out while the body is still arriving, the rest of the body is
//! read into the spool first: the protocol core holds the response until STDIN has ended
//! (nginx stops sending a body once it has a response head). Records that arrive while the
//! app writes are read and acted on ([`FcgiSink::client_gone`], and each flush).

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use super::conn_io::{ConnConfig, ConnState, FASTCGI_FACTS, STAGE_MAX, WBUF_FLUSH};
use crate::fastcgi::proto::connection::{Disposition, Event, Params, Progress};
use crate::gateway::driver::{Run, abandon, resume, run_app_parking};
use crate::gateway::{
    App, BodyLength, Environ, Head, Input, Request, Sink, Turn, Wake, parse_content_length,
    send_plain,
};
use crate::net::listener::Stream;

impl ConnState {
    /// Moves the body bytes of the current STDIN record not yet read into the spool, within
    /// its cap (the spool is always read before them, so order is kept).
    pub(super) fn spool_stdin(&mut self) -> io::Result<()> {
        let r = std::mem::replace(&mut self.stdin, 0..0);
        if self.spool.len() + r.len() as u64 > self.max_spool {
            self.broken = true;
            let why = "request body ahead of the app over --max-spool";
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, why));
        }
        let res = self.spool.push(&self.rbuf[r]);
        self.broken |= res.is_err();
        res
    }

    /// Writes the response queued so far; while the body is still arriving, first reads the
    /// rest of it into the spool (the protocol core sends no response before STDIN's end).
    pub(super) fn send_out(&mut self) -> io::Result<()> {
        if self.conn.stdin_open() {
            self.spool_body()?;
        }
        self.write_out()
    }

    /// Reads the request body up to its end into the spool.
    fn spool_body(&mut self) -> io::Result<()> {
        self.spool_stdin()?;
        while self.conn.stdin_open() {
            if self.body_step()? {
                self.spool_stdin()?;
            }
        }
        Ok(())
    }

    /// One step of the protocol core while the app's body is arriving: writes what is owed,
    /// reads (waiting within the body deadline) when more bytes are needed. Ok(true): body
    /// bytes are in `stdin`.
    fn body_step(&mut self) -> io::Result<bool> {
        match self.step() {
            Ok(Progress::Event(Event::Stdin(r))) => {
                self.body_progress(r.len());
                return Ok(true);
            }
            Ok(Progress::Event(_)) => {}
            Ok(Progress::Transmit) => self.write_out()?,
            Ok(Progress::NeedData) => {
                self.write_out()?;
                self.read_body()?;
            }
            Err(e) => return Err(self.protocol_failure(e)),
        }
        Ok(false)
    }

    fn protocol_failure(&mut self, e: crate::fastcgi::ProtocolError) -> io::Error {
        self.broken = true;
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    /// Err when the app's output can no longer reach the web server.
    pub(super) fn dead(&self) -> io::Result<()> {
        if self.conn.aborted() {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "request aborted by the web server",
            ))
        } else if self.broken || self.conn.disposition() != Disposition::Open {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection to the web server is gone",
            ))
        } else {
            Ok(())
        }
    }

    /// The app reads its body: the current record, then the spool, then the socket.
    pub(super) fn read_stdin(&mut self, buf: &mut [u8]) -> io::Result<usize> {
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
                if self.spool.unread() == 0 {
                    // Read out: its memory (and file) go, and reading ahead may start over.
                    self.spool = super::spool::Spool::default();
                }
                return Ok(n);
            }
            self.dead()?;
            if !self.conn.stdin_open() {
                return Ok(0);
            }
            self.body_step()?;
        }
    }

    /// Reads and acts on records that arrived while the app writes or waits, without
    /// waiting: ABORT_REQUEST, the end of the stream, management records (answered when the
    /// peer takes the answer), and body bytes the app has not read yet, spooled while they fit
    /// in the spool's memory (the app reads the rest of a large body itself, in order).
    pub(super) fn poll_peer(&mut self) {
        // What the app has not read of the current record goes first, so reading on keeps
        // the order.
        if self.spool_stdin().is_err() {
            return;
        }
        while !self.broken && !self.conn.aborted() && self.may_read_ahead() {
            match self.step() {
                Ok(Progress::Event(Event::Stdin(r))) => {
                    self.body_progress(r.len());
                    if self.spool_stdin().is_err() {
                        return;
                    }
                }
                Ok(Progress::Event(_)) => {}
                Ok(Progress::Transmit) => {
                    if !matches!(self.write_now(), Ok(true)) {
                        return;
                    }
                }
                Ok(Progress::NeedData) => {
                    if !matches!(self.write_now(), Ok(true)) {
                        return;
                    }
                    match self.read_now() {
                        Ok(Some(0)) | Err(_) => self.broken = true,
                        Ok(Some(_)) => {}
                        Ok(None) => return,
                    }
                }
                Err(e) => {
                    self.protocol_failure(e);
                }
            }
        }
    }

    /// Whether records may be read ahead of the app now: always once its body is complete;
    /// while it is not, only as long as the spooled body stays in memory.
    fn may_read_ahead(&self) -> bool {
        !self.conn.stdin_open() || self.spool.len() < super::spool::MEMORY_MAX as u64
    }

    /// Whether the socket is worth watching for the app: false once it failed, and while a
    /// bound stops reading (the body would spill out of memory; replies the peer does not
    /// take), so nobody polls a socket that stays readable.
    fn watchable(&self) -> bool {
        !self.broken && self.may_read_ahead() && !self.conn.management_pending()
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
        // Once the web server is gone the messages have nowhere to go; queued output stays
        // bounded like the response's.
        if io.dead().is_ok() {
            io.conn.stderr(data);
            if io.conn.queued_response() >= WBUF_FLUSH {
                let _ = io.send_out();
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The response sink of one FastCGI request.
struct FcgiSink<'a, 'c> {
    io: &'a RefCell<&'c mut ConnState>,
    /// The socket, for [`Sink::watch_fd`].
    stream: &'a Stream,
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
        if io.stage.len() + chunk.len() <= STAGE_MAX {
            io.stage.extend_from_slice(chunk);
            return Ok(());
        }
        io.frame_stage();
        io.conn.stdout(chunk);
        if io.conn.queued_response() >= WBUF_FLUSH {
            io.send_out()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut io = self.io.borrow_mut();
        io.dead()?;
        io.frame_stage();
        io.send_out()?;
        // Records that came meanwhile (ABORT_REQUEST above all) are acted on now.
        io.poll_peer();
        io.dead()
    }

    fn finish(&mut self) -> io::Result<()> {
        let mut io = self.io.borrow_mut();
        io.dead()?;
        io.frame_stage();
        io.conn.end_request(0);
        io.write_out()
    }

    fn abort(&mut self) {
        let mut io = self.io.borrow_mut();
        if io.conn.aborted() {
            return; // END_REQUEST follows in serve_request.
        }
        io.frame_stage();
        io.conn.cut();
        if !io.broken {
            let _ = io.write_out();
        }
    }

    fn client_gone(&mut self) -> bool {
        let mut io = self.io.borrow_mut();
        if io.dead().is_err() {
            return true;
        }
        io.poll_peer();
        io.dead().is_err()
    }

    fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        let watchable = self.io.try_borrow().is_ok_and(|io| io.watchable());
        watchable.then(|| self.stream.as_fd())
    }
}

/// Serves one request whose body has arrived or is arriving; the connection's state says
/// what follows (next request, draining, close).
pub(super) fn serve_request(
    st: &mut ConnState,
    stream: &Stream,
    app: &dyn App,
    cfg: &ConnConfig,
    params: Params,
) {
    let io = RefCell::new(st);
    let mut env = Environ::from_indexed(params.raw, params.pairs, FASTCGI_FACTS);
    env.gateway.https = env.detect_https();
    let mut sink = FcgiSink { io: &io, stream };
    let declared = parse_content_length(env.get("CONTENT_LENGTH"));
    if !io.borrow().body_limited {
        io.borrow_mut().limit_body(cfg);
    }
    let length = match declared {
        Ok(Some(n)) => BodyLength::Exact(n),
        Ok(None) => BodyLength::ToEnd { max: cfg.max_body },
        Err(e) => {
            let _ = writeln!(ErrorStream { io: &io }, "cgate: 400 Bad Request: {e}");
            let _ = send_plain(&mut sink, "400 Bad Request", "Bad Request\n");
            return;
        }
    };
    let mut src = StdinReader { io: &io };
    let mut errors = ErrorStream { io: &io };
    let mut req = Request::new(env, Input::new(&mut src, length), &mut errors);
    let parked = match run_app_parking(app, &mut req, &mut sink) {
        Run::Done(_) => None,
        Run::Parked(p) => Some(p),
    };
    let env = std::mem::replace(&mut req.environ, Environ::new(FASTCGI_FACTS));
    drop(req);
    let st = io.into_inner();
    if let Some(p) = parked {
        // Its body waits on a descriptor: the request goes on in later turns.
        st.parked = Some(p);
        return;
    }
    after_request(st, Some(env));
}

/// One turn of the parked request of `st` (its descriptor is ready, its waker woke or its
/// deadline passed); `true` when it is over. A client that has gone meanwhile ends it
/// (`check_peer`: the web server's socket was readable, so records are read first).
pub(super) fn turn(
    st: &mut ConnState,
    stream: &Stream,
    waker: &std::task::Waker,
    check_peer: bool,
) -> bool {
    let Some(p) = st.parked.take() else {
        return true;
    };
    let io = RefCell::new(st);
    let mut sink = FcgiSink { io: &io, stream };
    let gone = if check_peer {
        sink.client_gone()
    } else {
        io.borrow().dead().is_err()
    };
    let run = if gone {
        Run::Done(abandon(p, &mut sink))
    } else {
        let wake = match p.body().deadline() {
            Some(d) if std::time::Instant::now() >= d => Wake::TimedOut,
            _ => Wake::Ready,
        };
        let mut errors = ErrorStream { io: &io };
        let mut t = Turn {
            wake,
            errors: &mut errors,
            waker,
        };
        resume(p, &mut sink, &mut t)
    };
    let st = io.into_inner();
    match run {
        Run::Parked(p) => {
            st.parked = Some(p);
            false
        }
        Run::Done(_) => {
            after_request(st, None);
            true
        }
    }
}

/// What follows a request's end: the body the app left unread goes, the params' buffers
/// are kept for the next request, an aborted request gets its END_REQUEST.
fn after_request(st: &mut ConnState, env: Option<Environ>) {
    // Once the body has ended, what the app left unread is not needed: its memory and file
    // go now. (While STDIN still flows, the spool keeps counting it against --max-spool.)
    if !st.spool.is_empty() && !st.conn.stdin_open() {
        st.spool = super::spool::Spool::default();
    }
    if let Some(env) = env {
        let (raw, pairs) = env.into_parts();
        st.conn.recycle_params(Params { raw, pairs });
    }
    if st.conn.aborted() {
        // ABORT_REQUEST: the app has stopped; confirm with END_REQUEST at once.
        st.stage.clear();
        st.conn.end_request(0);
    }
}
