//! One request over one backend connection: the head and the body written as the body is
//! read, the reply handed to a [`Handler`] record batch by record batch as it arrives.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;

use super::buffers::{Buffer, Out, READ_LEN, take_buffer};
use super::conn::{Conn, wait};
use super::exchange::{Exchange, Failure, Reply, ReplyError};

pub use super::handler::{CallError, End, Handler};

/// A request's parts for [`run`].
pub struct Call<'a> {
    /// BEGIN_REQUEST and PARAMS, as [`Exchange::begin`] wrote them.
    pub head: &'a [u8],
    /// The body (STDIN); `None`: no body, the empty STDIN goes with the head.
    pub body: Option<&'a mut dyn Read>,
    /// The body's length when known (CONTENT_LENGTH): its last chunk and the empty STDIN
    /// record then leave in one write.
    pub body_len: Option<u64>,
    /// Longest wait for any progress (connect excluded).
    pub timeout: Duration,
}

/// How long the backend may be silent before the handler hears [`Handler::about_to_wait`]
/// (a fast backend's reply comes first and costs the server no hand-off).
pub const SILENT_BEFORE_HINT: Duration = Duration::from_millis(1);

/// How often a client without a descriptor to watch is asked whether it is gone while the
/// backend is silent.
pub const CLIENT_CHECK: Duration = Duration::from_millis(500);

struct Io<'c, 'h> {
    conn: &'c mut Conn,
    x: Exchange,
    buf: Buffer,
    start: usize,
    filled: usize,
    handler: &'h mut dyn Handler,
    timeout: Duration,
    end: Option<End>,
    sent_all: bool,
    watch_client: bool,
    waited: bool,
    written: u64,
}

/// Runs one request on `conn`. On a client-side failure ABORT_REQUEST is sent (best
/// effort); after any failure the connection must be closed. A reply that ends without
/// FCGI_KEEP_CONN having been asked is complete at END_REQUEST.
pub fn run(
    conn: &mut Conn,
    x: Exchange,
    call: Call<'_>,
    handler: &mut dyn Handler,
) -> Result<End, CallError> {
    let timeout = call.timeout;
    let mut io = Io::new(conn, x, handler, timeout);
    io.send_call(call)?;
    // The reply cannot be there yet: wait before the first read (one syscall less).
    if io.end.is_none() {
        io.wait_readable()?;
    }
    while io.end.is_none() {
        io.receive(true)?;
    }
    io.end_of_reply()
}

/// Sends the whole request (waiting while the backend is slow to take it) and returns it
/// waiting for the rest of its reply, which [`Pending::step`] reads as it arrives.
pub fn start(
    conn: &mut Conn,
    x: Exchange,
    call: Call<'_>,
    handler: &mut dyn Handler,
) -> Result<Pending, CallError> {
    let timeout = call.timeout;
    let mut io = Io::new(conn, x, handler, timeout);
    io.send_call(call)?;
    Ok(io.into_pending())
}

/// A request sent in whole, waiting for its reply: owned, so it can wait off any thread.
/// Its read buffer is held only while a partial record is in it.
pub struct Pending {
    x: Exchange,
    buf: Option<Buffer>,
    start: usize,
    filled: usize,
    end: Option<End>,
    sent_all: bool,
    written: u64,
}

impl Pending {
    /// Reads what has arrived, without waiting, and hands it to `handler`: `Ok(Some(end))`
    /// once the reply is over, `Ok(None)` when the socket has nothing more yet.
    pub fn step(
        &mut self,
        conn: &mut Conn,
        handler: &mut dyn Handler,
    ) -> Result<Option<End>, CallError> {
        let mut io = Io::from_pending(conn, handler, self);
        let r = io.read_ready();
        *self = io.into_pending();
        r?;
        self.end.map_or(Ok(None), |mut end| {
            end.reusable &= self.sent_all;
            Ok(Some(end))
        })
    }

    /// END_REQUEST has come (while the request was still being sent).
    pub fn ended(&self) -> bool {
        self.end.is_some()
    }

    /// Some reply byte has come (the backend has acted).
    pub fn output_seen(&self) -> bool {
        self.x.output_seen()
    }

    /// The failure of a backend silent for `timeout`.
    pub fn timed_out(&self, timeout: Duration) -> CallError {
        timed_out(&self.x, timeout)
    }

    /// Sends ABORT_REQUEST (best effort, without waiting).
    pub fn abort(&self, conn: &mut Conn) {
        let mut out = Vec::new();
        self.x.abort(&mut out);
        let _ = conn.write_some(&out);
    }
}

fn timed_out(x: &Exchange, timeout: Duration) -> CallError {
    CallError::io(
        x,
        &io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no progress in {timeout:?}"),
        ),
        "backend",
    )
}

impl<'c, 'h> Io<'c, 'h> {
    fn new(
        conn: &'c mut Conn,
        x: Exchange,
        handler: &'h mut dyn Handler,
        timeout: Duration,
    ) -> Self {
        Io {
            conn,
            x,
            buf: Buffer(take_buffer()),
            start: 0,
            filled: 0,
            handler,
            timeout,
            end: None,
            sent_all: false,
            watch_client: true,
            waited: false,
            written: 0,
        }
    }

    fn from_pending(conn: &'c mut Conn, handler: &'h mut dyn Handler, p: &mut Pending) -> Self {
        Io {
            conn,
            x: p.x.clone(),
            buf: p.buf.take().unwrap_or_else(|| Buffer(take_buffer())),
            start: p.start,
            filled: p.filled,
            handler,
            timeout: Duration::ZERO,
            end: p.end,
            sent_all: p.sent_all,
            watch_client: false,
            waited: true,
            written: p.written,
        }
    }

    fn into_pending(self) -> Pending {
        let keep = self.start < self.filled;
        Pending {
            x: self.x,
            buf: keep.then_some(self.buf),
            start: if keep { self.start } else { 0 },
            filled: if keep { self.filled } else { 0 },
            end: self.end,
            sent_all: self.sent_all,
            written: self.written,
        }
    }

    /// Reads until the reply is over or the socket has nothing more.
    fn read_ready(&mut self) -> Result<(), CallError> {
        while self.end.is_none() {
            if !self.receive(false)? {
                break;
            }
        }
        Ok(())
    }

    /// Writes the head and the body of `call`.
    fn send_call(&mut self, call: Call<'_>) -> Result<(), CallError> {
        let mut out = Out::take();
        let out = &mut out.0;
        out.extend_from_slice(call.head);
        match call.body {
            None => {
                self.x.end_stdin(out);
                self.sent_all = self.send(out)?;
            }
            // A body of unknown length (often none at all: a GET from a web server): its
            // first read goes out with the head, in one write.
            Some(body) if call.body_len.is_none() => {
                self.sent_all = self.send_body(body, None, out)?;
            }
            Some(body) => {
                if self.send(out)? {
                    out.clear();
                    self.sent_all = self.send_body(body, call.body_len, out)?;
                }
            }
        }
        Ok(())
    }

    fn end_of_reply(&self) -> Result<End, CallError> {
        let mut end = self
            .end
            .ok_or_else(|| CallError::io(&self.x, &io::ErrorKind::UnexpectedEof.into(), "reply"))?;
        end.reusable &= self.sent_all;
        Ok(end)
    }
}

impl Io<'_, '_> {
    /// Sends the body as STDIN records as it is read, after what `out` holds already (the
    /// head, when it was not sent); `false` when the reply ended first.
    fn send_body(
        &mut self,
        body: &mut dyn Read,
        len: Option<u64>,
        out: &mut Vec<u8>,
    ) -> Result<bool, CallError> {
        let mut chunk = Buffer(take_buffer());
        let mut left = len;
        loop {
            let n = match body.read(&mut chunk.0[..READ_LEN]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if self.written > 0 {
                        self.abort();
                    }
                    return Err(CallError::client(&self.x, format!("request body: {e}")));
                }
            };
            if n == 0 {
                self.x.end_stdin(out);
                return self.send(out);
            }
            self.x.stdin(out, &chunk.0[..n]);
            left = left.map(|l| l.saturating_sub(n as u64));
            if left == Some(0) {
                self.x.end_stdin(out);
                return self.send(out);
            }
            if !self.send(out)? {
                return Ok(false);
            }
            out.clear();
        }
    }

    /// Writes `data`, handling reply records that arrive meanwhile (a backend may answer
    /// before it has read the whole body). `false` when the reply ended before all was sent.
    fn send(&mut self, mut data: &[u8]) -> Result<bool, CallError> {
        while !data.is_empty() {
            match self.conn.write_some(data) {
                Ok(n) => {
                    data = &data[n..];
                    self.written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let (fd, timeout) = (self.conn.fd(), self.timeout);
                    let both = PollFlags::POLLOUT | PollFlags::POLLIN;
                    let (r, _) = crate::gateway::blocking(|| wait(fd, both, None, timeout))
                        .map_err(|e| CallError::io(&self.x, &e, "poll"))?;
                    if r.is_empty() {
                        return Err(self.timed_out());
                    }
                    if r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP)
                        && !r.contains(PollFlags::POLLOUT)
                    {
                        self.receive(false)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let mut err = CallError::io(&self.x, &e, "sending the request");
                    if err.failure == Failure::Dropped && self.written == 0 {
                        err.failure = Failure::NotSent;
                    }
                    return self.reply_after_write_error(err);
                }
            }
            if self.end.is_some() {
                return Ok(data.is_empty());
            }
        }
        Ok(true)
    }

    /// The backend stopped reading (it answered from part of the body and closed): its
    /// reply may still be waiting in our receive queue; without a whole reply, `err` stands.
    fn reply_after_write_error(&mut self, err: CallError) -> Result<bool, CallError> {
        while self.end.is_none() {
            if self.receive(true).is_err() {
                return Err(err);
            }
        }
        Ok(false)
    }

    fn timed_out(&self) -> CallError {
        timed_out(&self.x, self.timeout)
    }

    fn abort(&mut self) {
        let mut out = Vec::new();
        self.x.abort(&mut out);
        let _ = self.conn.write_some(&out);
    }

    /// Reads once (waiting when `block`) and hands every whole record to the handler;
    /// `false` when nothing was there (not waiting).
    fn receive(&mut self, block: bool) -> Result<bool, CallError> {
        if self.start == self.filled {
            (self.start, self.filled) = (0, 0);
        } else if self.filled + READ_LEN > self.buf.0.len() {
            // What is left is part of one record (< 64 KiB + 264): move it to the front.
            self.buf.0.copy_within(self.start..self.filled, 0);
            (self.start, self.filled) = (0, self.filled - self.start);
        }
        let got = loop {
            match self.conn.read_some(&mut self.buf.0[self.filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && block => self.wait_readable()?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(CallError::io(&self.x, &e, "reading the reply")),
            }
        };
        self.filled += got;
        if got == 0 {
            let e = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "backend closed the connection",
            );
            let mut err = CallError::io(&self.x, &e, "reading the reply");
            if !self.x.output_seen() && self.conn.peer_still_reads() {
                err.failure = Failure::HalfClosed;
                err.what
                    .push_str(" (it still reads: it drains what it will not answer)");
            }
            return Err(err);
        }
        self.dispatch().map(|()| true)
    }

    /// Waits until the backend's socket is readable, watching the client meanwhile: its
    /// descriptor when it has one (until it turned readable without the client being gone:
    /// then, like without one, the client is asked every [`CLIENT_CHECK`]).
    fn wait_readable(&mut self) -> Result<(), CallError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timed_out());
            }
            let watch = if self.watch_client {
                self.handler.watch_fd()
            } else {
                None
            };
            let slice = if !self.waited {
                left.min(SILENT_BEFORE_HINT)
            } else if watch.is_some() {
                left
            } else {
                left.min(CLIENT_CHECK)
            };
            // The first slice waits where the request runs; after it, the wait is a blocking
            // section (under `cgate serve` the loop thread's other connections move on).
            let fd = self.conn.fd();
            let waited = if self.waited {
                crate::gateway::blocking(|| wait(fd, PollFlags::POLLIN, watch, slice))
            } else {
                wait(fd, PollFlags::POLLIN, watch, slice)
            };
            let (r, client) = waited.map_err(|e| CallError::io(&self.x, &e, "poll"))?;
            if !r.is_empty() {
                return Ok(());
            }
            if !self.waited {
                self.waited = true;
                self.handler.about_to_wait();
            }
            if self.handler.client_gone() {
                self.abort();
                return Err(CallError::client(&self.x, "the client went away".into()));
            }
            if !client.is_empty() {
                self.watch_client = false;
            }
        }
    }

    fn dispatch(&mut self) -> Result<(), CallError> {
        let proto = |x: &Exchange, e: ReplyError| CallError {
            failure: Failure::Other,
            output_seen: x.output_seen(),
            client_side: false,
            timed_out: false,
            what: format!("backend protocol error: {e}"),
        };
        while let Some((reply, used)) = self
            .x
            .next(&self.buf.0[self.start..self.filled])
            .map_err(|e| proto(&self.x, e))?
        {
            let result = match reply {
                Reply::Stdout(b) => self.handler.stdout(b),
                Reply::Stderr(b) => {
                    self.handler.stderr(b);
                    Ok(())
                }
                Reply::End { app_status, status } => {
                    self.end = Some(End {
                        app_status,
                        status,
                        reusable: true,
                    });
                    Ok(())
                }
                Reply::Values(_) | Reply::Nothing => Ok(()),
            };
            self.start += used;
            if let Err(e) = result {
                self.abort();
                return Err(CallError::client(
                    &self.x,
                    format!("writing the reply: {e}"),
                ));
            }
        }
        if let Some(end) = self.end.as_mut() {
            end.reusable &= self.start == self.filled;
        }
        self.handler
            .batch_end(self.end.is_some())
            .map_err(|e| CallError::client(&self.x, format!("writing the reply: {e}")))
    }
}

pub use super::values::query_values;

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
