//! One FastCGI request over a connection: the app's input, error stream and response sink.
//!
//! Also what becomes of the request body the app did not read: read ahead into a spool
//! before the first response bytes (nginx stops sending it once it has the response head),
//! or skipped after the reply so the connection can carry the next request.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;

use nix::sys::socket::{MsgFlags, recv};

use super::responder::{ConnConfig, ConnState, FASTCGI_FACTS, STAGE_MAX, Step, WBUF_FLUSH};
use super::spool::Spool;
use crate::fastcgi::proto::connection::Params;
use crate::fastcgi::proto::record::{self, RecordType};
use crate::gateway::input::DRAIN_LIMIT;
use crate::gateway::{
    App, BodyLength, Environ, Head, Input, Request, Sink, parse_content_length, run_app, send_plain,
};

impl ConnState {
    /// Writes the queued output; first reads the rest of the request body into the spool
    /// when response bytes would go out before it has all arrived.
    pub(super) fn send_out(&mut self) -> io::Result<()> {
        if self.stdout_pending && !self.stdin_done {
            self.drain_body()?;
        }
        self.write_out()
    }

    /// Reads the request body up to its end into the spool.
    pub(super) fn drain_body(&mut self) -> io::Result<()> {
        let r = self.drain_body_inner();
        self.broken |= r.is_err();
        r
    }

    pub(super) fn drain_body_inner(&mut self) -> io::Result<()> {
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

    pub(super) fn dead(&self) -> io::Result<()> {
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
    pub(super) fn drain_buffered(&mut self) -> Result<bool, ()> {
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

/// Serves one request; returns whether the connection may carry another.
pub(super) fn serve_request(
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
            let _ = send_plain(&mut sink, "400 Bad Request", "Bad Request\n");
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
