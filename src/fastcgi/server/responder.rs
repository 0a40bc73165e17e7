//! One FastCGI connection on the event loop: bytes through the sans-IO core, requests started when their body has arrived.
//!
//! The socket is non-blocking. [`on_readable`] reads what has arrived, lets the protocol
//! core consume it and returns to the event loop as soon as it needs more bytes, so an idle
//! connection, a request whose small body is still trickling in, a request draining the
//! rest of an unread body and a lingering close hold no thread. The app runs once its body
//! is complete or [`PREREAD_MAX`] bytes of it are buffered; inside the app, waits (a larger
//! body still in transit, a slow reader) are `poll()`s on this one socket.
//!
//! The socket and buffers are in [`super::conn_io`]; one request's I/O (the app's input,
//! error stream and sink) is in [`super::request`].

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::task::Waker;

pub use super::conn_io::{ConnConfig, ConnState, FASTCGI_FACTS, PREREAD_MAX};
use crate::fastcgi::proto::connection::{Disposition, Event, Progress};
use crate::gateway::App;
use crate::net::listener::Stream;

/// What the event loop should do with a connection after [`on_readable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait for more bytes (re-arm the socket); `partial` while a request is in progress
    /// (its deadline runs).
    Wait {
        /// A request has started arriving but is not complete.
        partial: bool,
    },
    /// The connection lingers before closing: re-arm it, and close it when the peer closes
    /// or the request timeout passes from now.
    Linger,
    /// Close the connection.
    Close,
    /// The current request's body waits on a descriptor (or a waker) off the thread:
    /// watch it, and re-arm the socket to hear of the web server's ABORT_REQUEST or close.
    Parked,
}

/// Writes what is owed and says whether the connection must end now.
fn settle(st: &mut ConnState) -> Option<Next> {
    if st.write_out().is_err() || st.broken {
        return Some(Next::Close);
    }
    match st.conn.disposition() {
        Disposition::Open => None,
        Disposition::Close => Some(Next::Close),
        Disposition::Linger => {
            // The reply is out; stop writing so the peer sees its end, and read on.
            let fd = st.stream.as_fd().as_raw_fd();
            let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Write);
            st.stdin = 0..0;
            Some(Next::Linger)
        }
    }
}

/// A lingering connection is readable: discard what came; close at its end.
fn linger(st: &mut ConnState) -> Next {
    loop {
        st.rstart = st.rend;
        match st.read_now() {
            Ok(Some(0)) | Err(_) => return Next::Close,
            Ok(Some(_)) => {}
            Ok(None) => return Next::Wait { partial: true },
        }
    }
}

/// The core needs more bytes: writes what is owed, then reads once more unless a short read
/// already drained the socket. Some(next) ends this readiness event.
fn read_more(st: &mut ConnState, read_once: &mut bool) -> Option<Next> {
    if let Some(next) = settle(st) {
        return Some(next);
    }
    let partial = st.fresh || st.rstart < st.rend || st.conn.active_request().is_some();
    let wait = |st: &mut ConnState| {
        if !partial {
            st.trim();
        }
        Some(Next::Wait { partial })
    };
    if *read_once {
        return wait(st);
    }
    match st.read_now() {
        Ok(Some(0)) => Some(Next::Close),
        Ok(Some(n)) => {
            // A short read drained the socket: after serving what came, wait for more.
            *read_once = n < st.rbuf.len() - st.rend + n;
            None
        }
        Ok(None) => wait(st),
        Err(e) => {
            if e.kind() == io::ErrorKind::InvalidData {
                eprintln!("cgate: closing FastCGI connection: {e}");
            }
            Some(Next::Close)
        }
    }
}

/// What a connection's handler is given by its server.
pub struct Serving<'a> {
    /// The app requests run.
    pub app: &'a dyn App,
    /// The connection settings.
    pub cfg: &'a ConnConfig,
    /// Called with `true` when an app starts and `false` when its request has ended.
    pub busy: &'a dyn Fn(bool),
    /// Says the server is shutting down.
    pub stop: &'a dyn Fn() -> bool,
    /// Wakes the connection's parked request (see [`crate::gateway::deferred`]).
    pub waker: &'a Waker,
}

/// Handles a readiness event: reads what has arrived and serves every complete request in
/// the buffer (the app may block inside, or its body may park: [`Next::Parked`]). `stream`
/// is the connection's socket (the one in `st`), lent to the request's sink for
/// [`crate::gateway::Sink::watch_fd`].
pub fn on_readable(st: &mut ConnState, stream: &Stream, s: &Serving<'_>) -> Next {
    if st.parked.is_some() {
        // The web server wrote while its request waits (ABORT_REQUEST, or it closed).
        return on_parked_ready(st, stream, s, true).unwrap_or(Next::Parked);
    }
    // Only `settle` returns to the event loop in this disposition, after shutting down
    // the writing side.
    if st.conn.disposition() == Disposition::Linger {
        return linger(st);
    }
    let mut read_once = false;
    loop {
        let progress = match st.step() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("cgate: closing FastCGI connection: {e}");
                let _ = st.write_out();
                return Next::Close;
            }
        };
        let start = match progress {
            Progress::Event(Event::Request { params, .. }) => {
                // A request that has arrived is served even while stopping (then closed).
                st.begin_body(params, s.cfg);
                false
            }
            Progress::Event(Event::Stdin(r)) => {
                st.limit_waiting_body(s.cfg);
                st.body_progress(r.len());
                if let Err(e) = st.spool_stdin() {
                    eprintln!("cgate: closing FastCGI connection: {e}");
                    return Next::Close;
                }
                st.spool.len() >= PREREAD_MAX
            }
            Progress::Event(Event::StdinEnd) => true,
            Progress::Event(Event::Abort) => {
                // ABORT_REQUEST before the app started: END_REQUEST at once.
                if let Some(params) = st.waiting.take() {
                    st.conn.recycle_params(params);
                }
                st.conn.end_request(0);
                false
            }
            Progress::Transmit => {
                if let Some(next) = settle(st) {
                    return next;
                }
                false
            }
            Progress::NeedData => {
                if let Some(next) = read_more(st, &mut read_once) {
                    return next;
                }
                false
            }
        };
        if start && let Some(params) = st.waiting.take() {
            (s.busy)(true);
            super::request::serve_request(st, stream, s.app, s.cfg, params);
            // A parked body's first turn comes at once: it starts its wait there.
            if st.parked.is_some() && !super::request::turn(st, stream, s.waker, false) {
                return Next::Parked;
            }
            if let Some(next) = request_ended(st, stream, s) {
                return next;
            }
        }
    }
}

/// A request ended: the connection closes if broken; while stopping it takes no more input.
fn request_ended(st: &mut ConnState, stream: &Stream, s: &Serving<'_>) -> Option<Next> {
    (s.busy)(false);
    if st.broken {
        return Some(Next::Close);
    }
    // While stopping, the connection takes no more input after this request: what the web
    // server sent before that is still read and served (a reply held for the rest of STDIN
    // goes out first), then the end of the stream closes it.
    if (s.stop)() && st.conn.active_request().is_none() {
        stream.shutdown_read();
    }
    None
}

/// One turn of the parked request of `st` (its descriptor is ready, its waker woke, its
/// deadline passed, or with `check_peer` the web server's socket was readable): `None`
/// while it still waits, else what the connection does next, having gone on with what
/// arrived meanwhile.
pub fn on_parked_ready(
    st: &mut ConnState,
    stream: &Stream,
    s: &Serving<'_>,
    check_peer: bool,
) -> Option<Next> {
    if !super::request::turn(st, stream, s.waker, check_peer) {
        return None;
    }
    if let Some(next) = request_ended(st, stream, s) {
        return Some(next);
    }
    Some(on_readable(st, stream, s))
}

/// The body of the parked request of `st`, if one is parked (for its wait).
pub fn parked_body(st: &ConnState) -> Option<&dyn crate::gateway::Deferred> {
    st.parked.as_ref().map(|p| p.body())
}

impl ConnState {
    /// A request's PARAMS are complete: its body is read ahead before the app starts.
    fn begin_body(&mut self, params: crate::fastcgi::proto::Params, cfg: &ConnConfig) {
        if !self.spool.is_empty() {
            self.spool = super::spool::Spool::default();
        }
        self.max_spool = cfg.max_spool;
        self.body_deadline = None;
        self.body_limited = false;
        self.waiting = Some(params);
        self.fresh = false;
    }

    /// Bounds the body of the request still waiting for its app by `--max-body`, at its
    /// first body byte; STDIN past CONTENT_LENGTH is not body and is skipped, within the
    /// same bound.
    fn limit_waiting_body(&mut self, cfg: &ConnConfig) {
        if !self.body_limited {
            self.limit_body(cfg);
        }
    }

    /// Sets the request's body bound: `--max-body`, whatever length was declared (STDIN
    /// past a smaller CONTENT_LENGTH is skipped within it; a larger one does not raise it,
    /// so a peer cannot keep cgate reading by declaring more).
    pub(super) fn limit_body(&mut self, cfg: &ConnConfig) {
        self.body_limited = true;
        self.conn.limit_body(cfg.max_body);
    }
}
