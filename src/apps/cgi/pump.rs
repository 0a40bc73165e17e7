//! Full-duplex exchange with a running script: body to stdin, reply from stdout, stderr to the log.
//!
//! One thread polls the three non-blocking pipes together, so no mix of a large upload, a
//! script that writes before it reads or never reads, and a flood on stderr can block it:
//! a chunk of the request body is read only when the script's stdin can take more, stdout
//! is passed to the client chunk by chunk as it comes, stderr goes to the error log one
//! line per write ([`super::lines`]). The transport's [`Response::watch_fd`] is polled
//! beside the pipes, so a client that leaves (FastCGI ABORT_REQUEST, a closed connection)
//! ends even a script that never writes.
//!
//! Deadlines:
//! - **idle**: the time spent waiting in `poll` without the script writing to stdout. Time
//!   cgate spends blocked on the client (reading the body, writing the reply to a slow
//!   reader) is not the script's silence and never counts.
//! - **total**: the time until the reply head is complete. Once the head is in, a reply
//!   runs as long as it keeps flowing (each silence bounded by the idle timeout), so a long
//!   download at a slow steady rate completes.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::process::{ChildStderr, ChildStdin, ChildStdout};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, poll};

use super::child::{Pipes, Running};
use super::lines::LogLines;
use super::poll::{Scratch, read_once, timeout_of, watch};
use crate::cgi::reply::{BodyRule, Progress, ReplyHead, ReplyParser};
use crate::gateway::head::from_pairs;
use crate::gateway::{AppError, Head, Request, Response};

/// The longest single wait when the transport has no descriptor to watch, so a departed
/// client is still noticed while a script is silent.
const SLICE: Duration = Duration::from_secs(1);

/// The bounds of one exchange.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deadline for the reply head.
    pub total: Duration,
    /// Longest silence on stdout while cgate could take output.
    pub idle: Duration,
    /// Bytes of the script's stderr passed to the log.
    pub max_stderr: usize,
    /// Bound on the reply head.
    pub max_header: usize,
}

/// How an exchange ended (errors aside).
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// The script's output ended. `held_open` is set when the script had exited but
    /// something it started kept its stdout open for the idle timeout.
    Complete {
        /// Output was still open when reading stopped.
        held_open: bool,
    },
    /// The output ended before the body its Content-Length declared: the reply must be cut.
    Short {
        /// Body bytes missing.
        missing: u64,
    },
    /// The reply head was refused: nothing of it was forwarded.
    BadReply(String),
    /// A deadline passed: `"total"` or `"idle"`.
    TimedOut(&'static str),
}

fn gone(e: io::Error) -> AppError {
    AppError::from(e)
}

fn client_left() -> AppError {
    gone(io::Error::new(io::ErrorKind::BrokenPipe, "client gone"))
}

/// What one `poll` reported.
#[derive(Default)]
struct Events {
    out: bool,
    err: bool,
    input: Option<PollFlags>,
    client: bool,
}

/// One exchange: the pipes, the reply state and the clocks.
struct Pump {
    lim: Limits,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    parser: Option<ReplyParser>,
    body: BodyRule,
    declared: Option<u64>,
    log: LogLines,
    feed: Scratch,
    feed_len: usize,
    fed: usize,
    input_done: bool,
    idle: Duration,
    gone_checked: Instant,
    /// Set when the transport's descriptor was readable but the client still there: it
    /// is left out of the poll set until then, so a transport that cannot consume what
    /// made it readable never makes this loop spin.
    watch_rest: Option<Instant>,
}

/// How long the transport's descriptor rests after a readable-but-still-here answer.
const WATCH_REST: Duration = Duration::from_millis(5);

impl Pump {
    /// Handles stdout bytes; answers an ending when the reply is refused.
    fn on_output(
        &mut self,
        bytes: &[u8],
        resp: &mut Response<'_>,
    ) -> Result<Option<Ending>, AppError> {
        let Some(parser) = self.parser.as_mut() else {
            return self.on_body(bytes, resp);
        };
        match parser.feed(bytes) {
            Progress::NeedMore => Ok(None),
            Progress::Error(e) => Ok(Some(Ending::BadReply(e.to_string()))),
            Progress::Head { head, body } => {
                self.parser = None;
                if let Some(bad) = self.start(head, resp)? {
                    return Ok(Some(bad));
                }
                self.on_body(&body, resp)
            }
        }
    }

    /// Handles body bytes by the head's rule.
    fn on_body(
        &mut self,
        bytes: &[u8],
        resp: &mut Response<'_>,
    ) -> Result<Option<Ending>, AppError> {
        match self.body {
            BodyRule::Forward => resp.write(bytes).map_err(gone)?,
            BodyRule::Discard => {}
            BodyRule::MustBeEmpty if bytes.is_empty() => {}
            BodyRule::MustBeEmpty => {
                return Ok(Some(Ending::BadReply(
                    "body after a head without Content-Type".into(),
                )));
            }
        }
        Ok(None)
    }

    /// Passes the parsed head through the gateway's header validation.
    fn start(
        &mut self,
        head: ReplyHead,
        resp: &mut Response<'_>,
    ) -> Result<Option<Ending>, AppError> {
        let pairs = head.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
        match Head::new(&head.status, from_pairs(pairs)) {
            Ok(h) => {
                self.declared = h.content_length();
                resp.start_head(h)?;
                self.body = head.body;
                Ok(None)
            }
            Err(e) => Ok(Some(Ending::BadReply(e.to_string()))),
        }
    }

    /// Moves request body bytes to the script's stdin; `false` once stdin is done with.
    fn on_stdin(&mut self, req: &mut Request<'_>) -> Result<bool, AppError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Ok(false);
        };
        if self.fed == self.feed_len {
            self.fed = 0;
            self.feed_len = 0;
            match req.input.read(&mut self.feed.0) {
                Ok(0) => {
                    self.input_done = true;
                    return Ok(false);
                }
                Ok(n) => self.feed_len = n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
                Err(e) => return Err(AppError::from(e)),
            }
        }
        match stdin.write(&self.feed.0[self.fed..self.feed_len]) {
            Ok(n) => {
                self.fed += n;
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(true)
            }
            // The script closed its stdin or exited: the rest of the body is left unread.
            Err(_) => Ok(false),
        }
    }

    /// The next wait: up to the nearest deadline, and a slice when the transport gives no
    /// descriptor to watch. `None` when a deadline has passed (`Err` names it).
    fn next_wait(&self, head_by: Option<Instant>, run: &Running) -> Result<Duration, Ending> {
        let now = Instant::now();
        if self.parser.is_some() && head_by.is_some_and(|t| now >= t) {
            return Err(Ending::TimedOut("total"));
        }
        let mut wait = self.lim.idle.saturating_sub(self.idle);
        if wait.is_zero() {
            return Err(if run.exited() {
                Ending::Complete { held_open: true }
            } else {
                Ending::TimedOut("idle")
            });
        }
        if let Some(t) = head_by.filter(|_| self.parser.is_some()) {
            wait = wait.min(t - now);
        }
        Ok(wait)
    }

    /// Polls the open pipes and the transport's descriptor for at most `wait`.
    fn poll(&mut self, resp: &Response<'_>, wait: Duration) -> Result<Events, AppError> {
        let resting = self.watch_rest.filter(|&t| Instant::now() < t);
        self.watch_rest = resting;
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(4);
        let o = watch(
            &mut fds,
            self.stdout.as_ref().map(AsFd::as_fd),
            PollFlags::POLLIN,
        );
        let e = watch(
            &mut fds,
            self.stderr.as_ref().map(AsFd::as_fd),
            PollFlags::POLLIN,
        );
        let i = watch(
            &mut fds,
            self.stdin.as_ref().map(AsFd::as_fd),
            PollFlags::POLLOUT,
        );
        let c = watch(
            &mut fds,
            resp.watch_fd().filter(|_| resting.is_none()),
            PollFlags::POLLIN,
        );
        let wait = match resting {
            Some(t) => wait.min(t.saturating_duration_since(Instant::now())),
            None if c.is_some() => wait,
            None => wait.min(SLICE),
        };
        crate::ops::waiting::on_script(true);
        let polled = crate::gateway::blocking(|| poll(&mut fds, timeout_of(wait)));
        crate::ops::waiting::on_script(false);
        match polled {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(AppError::from(io::Error::from(e))),
        }
        let ev = |i: Option<usize>| {
            i.and_then(|i| fds.get(i))
                .and_then(PollFd::revents)
                .filter(|r| !r.is_empty())
        };
        Ok(Events {
            out: ev(o).is_some(),
            err: ev(e).is_some(),
            input: ev(i),
            client: ev(c).is_some(),
        })
    }

    /// Asks the transport whether the client left: when its descriptor turned readable, or
    /// once per slice when it has none.
    fn client_gone(&mut self, resp: &mut Response<'_>, readable: bool) -> bool {
        let due = resp.watch_fd().is_none() && self.gone_checked.elapsed() >= SLICE;
        if !readable && !due {
            return false;
        }
        self.gone_checked = Instant::now();
        let gone = resp.client_gone();
        if readable && !gone {
            self.watch_rest = Some(self.gone_checked + WATCH_REST);
        }
        gone
    }

    /// One round: wait, then move what is ready. `Some` ends the exchange.
    fn step(
        &mut self,
        run: &Running,
        head_by: Option<Instant>,
        buf: &mut [u8],
        req: &mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Option<Ending>, AppError> {
        if self.input_done && self.fed == self.feed_len {
            self.stdin = None;
        }
        let wait = match self.next_wait(head_by, run) {
            Ok(w) => w,
            Err(end) => return Ok(Some(end)),
        };
        let before = Instant::now();
        let ev = self.poll(resp, wait)?;
        if !ev.out {
            self.idle += before.elapsed();
        }
        if self.client_gone(resp, ev.client) {
            return Err(client_left());
        }
        if !ev.out && !ev.err && ev.input.is_none() {
            return Ok(None);
        }
        if ev.err {
            self.read_stderr(buf, req);
        }
        if let Some(flags) = ev.input {
            let hung_up = flags.intersects(PollFlags::POLLERR | PollFlags::POLLHUP);
            if hung_up || !self.on_stdin(req)? {
                self.stdin = None;
            }
        }
        if ev.out {
            if let Some(s) = self.stdout.as_mut() {
                match read_once(s, buf) {
                    Some(0) => self.stdout = None,
                    Some(n) => {
                        self.idle = Duration::ZERO;
                        return self.on_output(&buf[..n], resp);
                    }
                    None => {}
                }
            }
        }
        Ok(None)
    }

    fn read_stderr(&mut self, buf: &mut [u8], req: &mut Request<'_>) {
        if let Some(s) = self.stderr.as_mut() {
            match read_once(s, buf) {
                Some(0) => {
                    self.stderr = None;
                    self.log.flush(req.errors);
                }
                Some(n) => self.log.feed(&buf[..n], req.errors),
                None => {}
            }
        }
    }

    /// Output is over: waits (bounded by the idle timeout) for the script to exit,
    /// collecting what is left on stderr, so its last log lines are kept and its exit
    /// status is known.
    fn collect_stderr(&mut self, run: &Running, buf: &mut [u8], req: &mut Request<'_>) {
        let until = Instant::now().checked_add(self.lim.idle);
        let mut nap = Duration::from_micros(100);
        loop {
            let exited = run.exited();
            let now = Instant::now();
            let left = until.map_or(Duration::MAX, |u| u.saturating_duration_since(now));
            if left.is_zero() {
                break;
            }
            let Some(s) = self.stderr.as_ref() else {
                if exited {
                    break;
                }
                crate::gateway::blocking(|| std::thread::sleep(nap.min(left)));
                nap = (nap * 2).min(Duration::from_millis(10));
                continue;
            };
            let mut fds = [PollFd::new(s.as_fd(), PollFlags::POLLIN)];
            let wait = if exited { Duration::ZERO } else { left };
            let slice = timeout_of(wait.min(Duration::from_millis(100)));
            match crate::gateway::blocking(|| poll(&mut fds, slice)) {
                Ok(0) if exited => break,
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => break,
            }
            self.read_stderr(buf, req);
        }
        self.log.flush(req.errors);
    }

    /// The ending once stdout is closed.
    fn end_of_output(&mut self, resp: &Response<'_>) -> Option<Ending> {
        if let Some(mut parser) = self.parser.take() {
            if let Progress::Error(e) = parser.finish() {
                return Some(Ending::BadReply(e.to_string()));
            }
        }
        let sent = resp.outcome(false).body_bytes;
        match self.declared {
            Some(n) if self.body == BodyRule::Forward && sent < n => {
                Some(Ending::Short { missing: n - sent })
            }
            _ => None,
        }
    }
}

/// Runs the exchange until the script's output ends, a deadline passes, the reply head is
/// refused, the client goes away or the request body fails (the last two are errors).
/// `label` names the script file in every log line.
pub fn exchange(
    run: &Running,
    pipes: Pipes,
    req: &mut Request<'_>,
    resp: &mut Response<'_>,
    lim: Limits,
    label: &str,
) -> Result<Ending, AppError> {
    let now = Instant::now();
    let mut p = Pump {
        lim,
        stdin: pipes.stdin,
        stdout: pipes.stdout,
        stderr: pipes.stderr,
        parser: Some(ReplyParser::new(lim.max_header)),
        body: BodyRule::Discard,
        declared: None,
        log: LogLines::new(label, lim.max_stderr),
        feed: Scratch::new(),
        feed_len: 0,
        fed: 0,
        input_done: req.input.is_finished(),
        idle: Duration::ZERO,
        gone_checked: now,
        watch_rest: None,
    };
    let head_by = now.checked_add(lim.total);
    let mut scratch = Scratch::new();
    let buf = &mut scratch.0;
    let mut held_open = false;
    while p.stdout.is_some() {
        match p.step(run, head_by, buf, req, resp)? {
            None => {}
            Some(Ending::Complete { held_open: h }) => {
                held_open = h;
                break;
            }
            Some(end) => {
                p.log.flush(req.errors);
                return Ok(end);
            }
        }
    }
    p.stdin = None;
    p.stdout = None;
    if let Some(end) = p.end_of_output(resp) {
        p.collect_stderr(run, buf, req);
        return Ok(end);
    }
    p.collect_stderr(run, buf, req);
    Ok(Ending::Complete { held_open })
}
