//! `cgate call --repeat`'s load on one event-loop thread: every connection in one epoll set, each reply parsed as it arrives, so a backend's reply wakes only this thread.
//!
//! A thread per connection would make every reply wake a thread of its own, and the
//! backend's `send` pays for that wake-up: the load generator would measure itself. Here one
//! thread writes each request whole (non-blocking) and feeds what arrives to the sans-IO
//! [`Exchange`]; a reply's end starts the connection's next request at once.

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::Prepared;
use super::tally::{StatusOnly, Tally};
use crate::fastcgi::client::Conn;
use crate::fastcgi::client::exchange::{Exchange, Failure, Reply, TryFacts, retry_safe};
use crate::fastcgi::client::request::Handler;
use crate::fastcgi::proto::ProtocolStatus;

/// Bytes read per `recv`.
const READ_CHUNK: usize = 64 * 1024;
/// Most bytes of a reply kept unparsed (one record at most: 8 + 65535 + 255).
const MAX_PENDING: usize = 8 + 65_535 + 255;
/// How often requests are checked against the timeout.
const TICK: Duration = Duration::from_millis(100);

/// One connection of the load and the request on it.
struct Slot {
    conn: Option<Conn>,
    x: Exchange,
    h: StatusOnly,
    sent: usize,
    pending: Vec<u8>,
    started: Instant,
    progress: Instant,
    reused: bool,
    busy: bool,
    /// The epoll set also waits for room to write (the request did not go out whole).
    wants_out: bool,
}

/// How one try of a request ended.
enum Outcome {
    /// The reply is still coming (or the request still going out).
    Going,
    /// END_REQUEST came.
    Ended(ProtocolStatus, bool),
    /// The try failed.
    Failed(Failure, String),
}

/// The run: `request` (BEGIN_REQUEST, PARAMS, STDIN and its end) sent `total` times over
/// a number of connections.
pub(super) struct Load<'a> {
    p: &'a Prepared,
    request: &'a [u8],
    epoll: Epoll,
    slots: Vec<Slot>,
    issued: u64,
    total: u64,
    buf: Vec<u8>,
    /// Slots to move on, as (slot, `true` for the same request again): a loop, not
    /// recursion, so a backend that fails every request at once cannot grow the stack.
    todo: Vec<(usize, bool)>,
}

impl<'a> Load<'a> {
    /// The load of `total` requests over `conns` connections (none made yet).
    pub(super) fn new(
        p: &'a Prepared,
        request: &'a [u8],
        total: u64,
        conns: usize,
    ) -> io::Result<Self> {
        let slots = (0..conns)
            .map(|_| Slot {
                conn: None,
                x: Exchange::new(1, true),
                h: StatusOnly::new(),
                sent: 0,
                pending: Vec::new(),
                started: Instant::now(),
                progress: Instant::now(),
                reused: false,
                busy: false,
                wants_out: false,
            })
            .collect();
        Ok(Load {
            p,
            request,
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            slots,
            issued: 0,
            total,
            buf: vec![0; READ_CHUNK],
            todo: Vec::new(),
        })
    }

    /// Runs every request; `t` counts each one's end.
    pub(super) fn run(&mut self, t: &mut Tally, expect: Option<u16>) {
        self.todo
            .extend((0..self.slots.len()).rev().map(|i| (i, false)));
        self.pump(t, expect);
        let mut events = [EpollEvent::empty(); 64];
        let mut checked = Instant::now();
        while self.slots.iter().any(|s| s.busy) {
            let n = match self
                .epoll
                .wait(&mut events, EpollTimeout::from(TICK.as_millis() as u16))
            {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => {
                    t.fail_all(
                        &format!("epoll: {e}"),
                        self.slots.iter().filter(|s| s.busy).count(),
                    );
                    return;
                }
            };
            for ev in &events[..n] {
                let i = ev.data() as usize;
                if self.slots.get(i).is_some_and(|s| s.busy) {
                    let outcome = self.step(i, !(ev.events() & !EpollFlags::EPOLLOUT).is_empty());
                    self.conclude(i, outcome, t, expect);
                    self.pump(t, expect);
                }
            }
            if checked.elapsed() >= TICK {
                checked = Instant::now();
                self.expire(t, expect);
                self.pump(t, expect);
            }
        }
    }

    /// Moves on every slot in `todo` (each may add itself again).
    fn pump(&mut self, t: &mut Tally, expect: Option<u16>) {
        while let Some((i, again)) = self.todo.pop() {
            if again {
                self.start(i, t, expect);
            } else {
                self.next_request(i, t, expect);
            }
        }
    }

    /// Starts the next request on slot `i` (on its kept connection or a new one), or leaves
    /// the slot idle when every request is out.
    fn next_request(&mut self, i: usize, t: &mut Tally, expect: Option<u16>) {
        if self.issued >= self.total {
            self.close(i);
            return;
        }
        self.issued += 1;
        self.slots[i].started = Instant::now();
        self.start(i, t, expect);
    }

    /// Sends the request on slot `i` (its connection, or a new one first).
    fn start(&mut self, i: usize, t: &mut Tally, expect: Option<u16>) {
        let s = &mut self.slots[i];
        s.x = Exchange::new(1, true);
        s.h = StatusOnly::new();
        s.sent = 0;
        s.pending.clear();
        s.progress = Instant::now();
        s.busy = true;
        s.reused = s.conn.is_some();
        if s.conn.is_none() {
            match Conn::connect(&self.p.addr, self.p.timeout) {
                Ok(c) => {
                    let ev = EpollEvent::new(EpollFlags::EPOLLIN, i as u64);
                    if let Err(e) = self.epoll.add(c.fd(), ev) {
                        let why = format!("epoll: {e}");
                        return self.conclude(i, Outcome::Failed(Failure::Other, why), t, expect);
                    }
                    self.slots[i].conn = Some(c);
                    self.slots[i].wants_out = false;
                }
                Err(e) => {
                    let why = format!("connect: {e}");
                    return self.conclude(i, Outcome::Failed(Failure::Connect, why), t, expect);
                }
            }
        }
        // The reply cannot be there yet: its readiness is waited for, not read for at once.
        let outcome = self.step(i, false);
        self.conclude(i, outcome, t, expect);
    }

    /// Moves slot `i`'s request on: what is left of it out, and, when the socket is
    /// `readable`, what has come of the reply in.
    fn step(&mut self, i: usize, readable: bool) -> Outcome {
        let (request, buf) = (self.request, &mut self.buf);
        let s = &mut self.slots[i];
        let Some(c) = s.conn.as_mut() else {
            return Outcome::Failed(Failure::Other, "no connection".into());
        };
        while s.sent < request.len() {
            match c.write_some(&request[s.sent..]) {
                Ok(n) => {
                    s.sent += n;
                    s.progress = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    let how = match (gone(&e), s.sent) {
                        (true, 0) => Failure::NotSent,
                        (true, _) => Failure::Dropped,
                        (false, _) => Failure::Other,
                    };
                    return Outcome::Failed(how, format!("send: {e}"));
                }
            }
        }
        // The epoll set is changed only when the wait for room to write starts or ends.
        let wants_out = s.sent < request.len();
        if wants_out != s.wants_out {
            let want = if wants_out {
                EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT
            } else {
                EpollFlags::EPOLLIN
            };
            let mut ev = EpollEvent::new(want, i as u64);
            if let Err(e) = self.epoll.modify(c.fd(), &mut ev) {
                return Outcome::Failed(Failure::Other, format!("epoll: {e}"));
            }
            s.wants_out = wants_out;
        }
        if !readable {
            return Outcome::Going;
        }
        loop {
            match c.read_some(buf) {
                Ok(0) => {
                    // A backend that shut only its sending side drains what it will never
                    // answer (php-fpm recycling a worker): the request was not run.
                    let how = if !s.x.output_seen() && c.peer_still_reads() {
                        Failure::HalfClosed
                    } else {
                        Failure::Eof
                    };
                    return Outcome::Failed(how, "recv: the backend closed the connection".into());
                }
                Ok(n) => {
                    s.progress = Instant::now();
                    let parts = Parts {
                        x: &mut s.x,
                        h: &mut s.h,
                        pending: &mut s.pending,
                    };
                    if let Some(o) = feed(parts, &buf[..n]) {
                        return o;
                    }
                    if n < buf.len() {
                        return Outcome::Going;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Going,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let how = if gone(&e) {
                        Failure::Dropped
                    } else {
                        Failure::Other
                    };
                    return Outcome::Failed(how, format!("recv: {e}"));
                }
            }
        }
    }

    /// Counts a finished try; queues the same request again when that is safe, else the
    /// slot's next request.
    fn conclude(&mut self, i: usize, outcome: Outcome, t: &mut Tally, expect: Option<u16>) {
        let result = match outcome {
            Outcome::Going => return,
            Outcome::Ended(ProtocolStatus::RequestComplete, reusable) => {
                if !reusable || self.slots[i].sent < self.request.len() {
                    self.drop_conn(i);
                }
                let h = &self.slots[i].h;
                match (h.status, h.stderr.is_empty()) {
                    (Some(code), false) if code >= 500 => Err(format!(
                        "status {code} ({})",
                        String::from_utf8_lossy(&h.stderr).trim_end()
                    )),
                    (status, _) => Ok(status),
                }
            }
            Outcome::Ended(status, _) => {
                self.drop_conn(i);
                Err(format!("END_REQUEST {status:?}"))
            }
            Outcome::Failed(how, why) => {
                let s = &self.slots[i];
                let facts = TryFacts {
                    output_seen: s.x.output_seen(),
                    reused: s.reused,
                    idempotent: self.p.idempotent,
                };
                self.drop_conn(i);
                if facts.reused && retry_safe(how, facts) {
                    self.todo.push((i, true)); // the same request, on a new connection
                    return;
                }
                t.failures += 1;
                Err(why)
            }
        };
        let s = &mut self.slots[i];
        s.busy = false;
        t.count(s.started.elapsed(), result, expect);
        self.todo.push((i, false));
    }

    /// Fails the requests whose backend made no progress for the timeout (as one
    /// `cgate call` does).
    fn expire(&mut self, t: &mut Tally, expect: Option<u16>) {
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.busy && s.progress.elapsed() >= self.p.timeout {
                let why = format!("backend: no progress in {:?}", self.p.timeout);
                self.conclude(i, Outcome::Failed(Failure::Other, why), t, expect);
            }
        }
    }

    fn drop_conn(&mut self, i: usize) {
        if let Some(c) = self.slots[i].conn.take() {
            let _ = self.epoll.delete(c.fd().as_fd());
        }
    }

    fn close(&mut self, i: usize) {
        self.drop_conn(i);
        self.slots[i].busy = false;
    }
}

/// EPIPE or ECONNRESET: the backend closed the connection (with our bytes unread).
fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// What a slot's reply is fed to: its exchange, its status reader, a split record.
struct Parts<'s> {
    x: &'s mut Exchange,
    h: &'s mut StatusOnly,
    pending: &'s mut Vec<u8>,
}

/// Feeds reply bytes to a slot's exchange; the outcome once the reply ended or failed.
fn feed(p: Parts<'_>, data: &[u8]) -> Option<Outcome> {
    if p.pending.is_empty() {
        return records(p, data);
    }
    // A record split over reads: parse it joined (rare: replies are small, reads large).
    let mut held = std::mem::take(p.pending);
    held.extend_from_slice(data);
    records(p, &held)
}

/// Parses the whole records at the front of `data`; keeps a partial one in `pending`.
fn records(p: Parts<'_>, data: &[u8]) -> Option<Outcome> {
    let mut at = 0;
    loop {
        match p.x.next(&data[at..]) {
            Ok(None) => break,
            Ok(Some((reply, used))) => {
                at += used;
                match reply {
                    Reply::Stdout(d) => {
                        let _ = p.h.stdout(d);
                    }
                    Reply::Stderr(d) => p.h.stderr(d),
                    Reply::End { status, .. } => {
                        let reusable = at == data.len();
                        return Some(Outcome::Ended(status, reusable));
                    }
                    Reply::Values(_) | Reply::Nothing => {}
                }
            }
            Err(e) => return Some(Outcome::Failed(Failure::Other, format!("reply: {e}"))),
        }
    }
    let left = &data[at..];
    if left.len() > MAX_PENDING {
        return Some(Outcome::Failed(
            Failure::Other,
            "reply: record too long".into(),
        ));
    }
    p.pending.clear();
    p.pending.extend_from_slice(left);
    None
}
