//! Full-duplex exchange with a running script: body to stdin, reply from stdout, stderr to the log.
//!
//! One thread polls the three non-blocking pipes together, so no mix of a large upload, a
//! script that writes before it reads or never reads, and a flood on stderr can block it:
//! a chunk of the request body is read only when the script's stdin can take more, stdout
//! is passed to the client chunk by chunk as it comes, stderr goes to the error log.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::child::{Pipes, Running};
use crate::cgi::reply::{Progress, ReplyHead, ReplyParser};
use crate::gateway::head::from_pairs;
use crate::gateway::{AppError, Head, Request, Response};

/// Bytes moved per read or write on a pipe.
const CHUNK: usize = 64 * 1024;

/// The longest single wait, so a departed client is noticed while a script is silent.
const SLICE: Duration = Duration::from_secs(1);

/// The bounds of one exchange.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deadline for the whole run.
    pub total: Duration,
    /// Longest time without output on stdout.
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
    /// The reply head was refused: nothing of it was forwarded.
    BadReply(String),
    /// A deadline passed: `"total"` or `"idle"`.
    TimedOut(&'static str),
}

struct Pump {
    lim: Limits,
    parser: Option<ReplyParser>,
    forward: bool,
    stderr_seen: usize,
    stderr_noted: bool,
    feed: Scratch,
    feed_len: usize,
    fed: usize,
    input_done: bool,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A [`CHUNK`]-byte buffer from this thread's small pool, given back on drop: scripts run on
/// long-lived server threads, so the buffers are not allocated and zeroed per request.
struct Scratch(Vec<u8>);

impl Scratch {
    fn new() -> Self {
        let pooled = SCRATCH.with(|p| p.borrow_mut().pop());
        Scratch(pooled.unwrap_or_else(|| vec![0; CHUNK]))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        if v.len() == CHUNK {
            SCRATCH.with(|p| {
                let mut pool = p.borrow_mut();
                if pool.len() < 2 {
                    pool.push(v);
                }
            });
        }
    }
}

fn gone(e: io::Error) -> AppError {
    AppError::from(e)
}

fn timeout_of(wait: Duration) -> PollTimeout {
    let ms = wait
        .as_millis()
        .saturating_add(u128::from(wait.subsec_nanos() % 1_000_000 != 0));
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// Adds `fd` (when open) to the poll set; answers its index.
fn watch<'f>(
    fds: &mut Vec<PollFd<'f>>,
    fd: Option<BorrowedFd<'f>>,
    ev: PollFlags,
) -> Option<usize> {
    let fd = fd?;
    fds.push(PollFd::new(fd, ev));
    Some(fds.len() - 1)
}

/// Reads once from a non-blocking pipe: `Some(0)` at end of file, `None` when nothing is
/// ready. A read error counts as end of file.
fn read_once(r: &mut impl Read, buf: &mut [u8]) -> Option<usize> {
    match r.read(buf) {
        Ok(n) => Some(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            None
        }
        Err(_) => Some(0),
    }
}

impl Pump {
    fn log_stderr(&mut self, errors: &mut dyn Write, bytes: &[u8]) {
        let room = self.lim.max_stderr.saturating_sub(self.stderr_seen);
        let take = room.min(bytes.len());
        if take > 0 {
            let _ = errors.write_all(&bytes[..take]);
            self.stderr_seen += take;
        }
        if take < bytes.len() && !self.stderr_noted {
            self.stderr_noted = true;
            let _ = writeln!(
                errors,
                "\ncgate: cgi: script stderr longer than {} bytes; the rest is dropped",
                self.lim.max_stderr
            );
        }
    }

    /// Handles stdout bytes; answers an ending when the reply head is refused.
    fn on_output(
        &mut self,
        bytes: &[u8],
        resp: &mut Response<'_>,
    ) -> Result<Option<Ending>, AppError> {
        let Some(parser) = self.parser.as_mut() else {
            if self.forward {
                resp.write(bytes).map_err(gone)?;
            }
            return Ok(None);
        };
        match parser.feed(bytes) {
            Progress::NeedMore => Ok(None),
            Progress::Error(e) => Ok(Some(Ending::BadReply(e.to_string()))),
            Progress::Head { head, body } => {
                self.parser = None;
                if let Some(bad) = self.start(head, resp)? {
                    return Ok(Some(bad));
                }
                if self.forward {
                    resp.write(&body).map_err(gone)?;
                }
                Ok(None)
            }
        }
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
                resp.start_head(h)?;
                self.forward = head.forward_body;
                Ok(None)
            }
            Err(e) => Ok(Some(Ending::BadReply(e.to_string()))),
        }
    }

    /// Moves request body bytes to the script's stdin; `false` once stdin is done with.
    fn on_stdin(
        &mut self,
        stdin: &mut impl Write,
        req: &mut Request<'_>,
    ) -> Result<bool, AppError> {
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
}

/// Runs the exchange until the script's output ends, a deadline passes, the reply head is
/// refused, the client goes away or the request body fails (the last two are errors).
pub fn exchange(
    run: &Running,
    pipes: Pipes,
    req: &mut Request<'_>,
    resp: &mut Response<'_>,
    lim: Limits,
) -> Result<Ending, AppError> {
    let Pipes {
        mut stdin,
        mut stdout,
        mut stderr,
    } = pipes;
    let mut p = Pump {
        lim,
        parser: Some(ReplyParser::new(lim.max_header)),
        forward: false,
        stderr_seen: 0,
        stderr_noted: false,
        feed: Scratch::new(),
        feed_len: 0,
        fed: 0,
        input_done: req.input.is_finished(),
    };
    let start = Instant::now();
    let total_deadline = start + lim.total;
    let mut last_out = start;
    let mut exited_at: Option<Instant> = None;
    let mut held_open = false;
    let mut scratch = Scratch::new();
    let buf = &mut scratch.0;
    while stdout.is_some() {
        if p.input_done && p.fed == p.feed_len {
            stdin = None;
        }
        let now = Instant::now();
        if now >= total_deadline {
            return Ok(Ending::TimedOut("total"));
        }
        let idle_deadline = last_out + lim.idle;
        let linger_deadline = exited_at.map(|t| t + lim.idle);
        if now >= idle_deadline || linger_deadline.is_some_and(|t| now >= t) {
            if run.exited() {
                held_open = true;
                break;
            }
            return Ok(Ending::TimedOut("idle"));
        }
        if resp.client_gone() {
            return Err(gone(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "client gone",
            )));
        }
        let deadline = linger_deadline.map_or(idle_deadline, |l| l.min(idle_deadline));
        let wait = deadline.min(total_deadline).saturating_duration_since(now);
        let (out_ev, err_ev, in_ev) = {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(3);
            let o = watch(
                &mut fds,
                stdout.as_ref().map(AsFd::as_fd),
                PollFlags::POLLIN,
            );
            let e = watch(
                &mut fds,
                stderr.as_ref().map(AsFd::as_fd),
                PollFlags::POLLIN,
            );
            let i = watch(
                &mut fds,
                stdin.as_ref().map(AsFd::as_fd),
                PollFlags::POLLOUT,
            );
            match poll(&mut fds, timeout_of(wait.min(SLICE))) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(AppError::from(io::Error::from(e))),
            }
            let ev = |i: Option<usize>| {
                i.and_then(|i| fds.get(i))
                    .and_then(PollFd::revents)
                    .unwrap_or(PollFlags::empty())
            };
            (ev(o), ev(e), ev(i))
        };
        if out_ev.is_empty() && err_ev.is_empty() && in_ev.is_empty() {
            if exited_at.is_none() && run.exited() {
                exited_at = Some(Instant::now());
            }
            continue;
        }
        if !err_ev.is_empty() {
            if let Some(s) = stderr.as_mut() {
                match read_once(s, buf) {
                    Some(0) => stderr = None,
                    Some(n) => p.log_stderr(req.errors, &buf[..n]),
                    None => {}
                }
            }
        }
        if !in_ev.is_empty() {
            if let Some(s) = stdin.as_mut() {
                let hung_up = in_ev.intersects(PollFlags::POLLERR | PollFlags::POLLHUP);
                if hung_up || !p.on_stdin(s, req)? {
                    stdin = None;
                }
            }
        }
        if !out_ev.is_empty() {
            if let Some(s) = stdout.as_mut() {
                match read_once(s, buf) {
                    Some(0) => stdout = None,
                    Some(n) => {
                        last_out = Instant::now();
                        if let Some(bad) = p.on_output(&buf[..n], resp)? {
                            return Ok(bad);
                        }
                    }
                    None => {}
                }
            }
        }
    }
    drop(stdin);
    if let Some(mut parser) = p.parser.take() {
        if let Progress::Error(e) = parser.finish() {
            return Ok(Ending::BadReply(e.to_string()));
        }
    }
    // Output is over: wait (bounded) for the script to exit, collecting what is left on
    // stderr, so its last log lines are kept and its exit status is known.
    let until = (Instant::now() + lim.idle).min(total_deadline);
    let mut nap = Duration::from_micros(100);
    loop {
        let exited = run.exited();
        let now = Instant::now();
        if now >= until {
            break;
        }
        let Some(s) = stderr.as_mut() else {
            if exited {
                break;
            }
            std::thread::sleep(nap.min(until - now));
            nap = (nap * 2).min(Duration::from_millis(10));
            continue;
        };
        let mut fds = [PollFd::new(s.as_fd(), PollFlags::POLLIN)];
        let wait = if exited { Duration::ZERO } else { until - now };
        match poll(&mut fds, timeout_of(wait.min(Duration::from_millis(100)))) {
            Ok(0) if exited => break,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break,
        }
        match read_once(s, buf) {
            Some(0) => stderr = None,
            Some(n) => p.log_stderr(req.errors, &buf[..n]),
            None if exited => break,
            None => {}
        }
    }
    Ok(Ending::Complete { held_open })
}
