//! Bodies that wait on a descriptor: an event-loop gateway parks them without a thread, every other gateway waits for them in place.
//!
//! An app whose body depends on another socket (a FastCGI backend's reply) returns
//! [`Body::Deferred`](super::Body::Deferred). The FastCGI server takes the request off its
//! loop thread while the descriptor is not ready and resumes it on whichever loop thread sees
//! it ready, so a thousand waiting requests hold no thread. Everywhere else (CGI, `serve`,
//! `cgate request`, middleware that post-processes a body) [`complete`] waits for the
//! descriptor in a `poll()` (a blocking section) and resumes it in a loop: the same body
//! gives the same bytes under every gateway.
//!
//! A body that relays what a socket delivers, chunk by chunk, until its peer closes:
//!
//! ```
//! use std::io::{ErrorKind, Read, Write};
//! use std::os::fd::{AsFd, BorrowedFd};
//! use std::os::unix::net::UnixStream;
//! use std::time::{Duration, Instant};
//! use cgate::{Deferred, Interest, Response, Step, Turn, Wake};
//!
//! struct Relay(UnixStream, Instant);
//!
//! impl Deferred for Relay {
//!     fn wait_for(&self) -> Option<(BorrowedFd<'_>, Interest)> {
//!         Some((self.0.as_fd(), Interest::Read))
//!     }
//!     fn deadline(&self) -> Option<Instant> {
//!         Some(self.1)
//!     }
//!     fn resume(&mut self, resp: &mut Response<'_>, turn: &mut Turn<'_>) -> Step {
//!         if turn.wake == Wake::TimedOut {
//!             return Step::Done(Err(cgate::AppError::msg("the peer was too slow")));
//!         }
//!         let mut buf = [0u8; 4096];
//!         loop {
//!             match self.0.read(&mut buf) {
//!                 Ok(0) => return Step::Done(Ok(())),
//!                 Ok(n) => {
//!                     if let Err(e) = resp.write(&buf[..n]) {
//!                         return Step::Done(Err(e.into()));
//!                     }
//!                 }
//!                 Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Wait,
//!                 Err(e) => return Step::Done(Err(e.into())),
//!             }
//!         }
//!     }
//!     fn abort(&mut self) {}
//! }
//!
//! let app = cgate::app_fn(|_req, resp| {
//!     let (ours, mut theirs) = UnixStream::pair()?;
//!     ours.set_nonblocking(true)?;
//!     std::thread::spawn(move || {
//!         theirs.write_all(b"one\n").unwrap();
//!         std::thread::sleep(Duration::from_millis(20));
//!         theirs.write_all(b"two\n").unwrap();
//!     });
//!     resp.start(200, [("Content-Type", "text/plain")])?;
//!     let deadline = Instant::now() + Duration::from_secs(30);
//!     Ok(cgate::Body::Deferred(Box::new(Relay(ours, deadline))))
//! });
//! let r = cgate::testing::TestRequest::get("/").run(&app);
//! assert_eq!(r.text(), "one\ntwo\n");
//! ```

use std::cell::Cell;
use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Wake as WakeTask, Waker};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::error::AppError;
use super::response::Response;

/// What a deferred body waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// The descriptor has bytes to read (or its peer closed).
    Read,
    /// The descriptor has room to write.
    Write,
}

/// What [`Deferred::resume`] came to.
#[derive(Debug)]
pub enum Step {
    /// Wait again (for [`Deferred::wait_for`]) and resume.
    Wait,
    /// The body is complete (Ok) or failed (the driver answers or cuts, as for an app error).
    Done(Result<(), AppError>),
}

/// Why the body is resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The descriptor may be ready (resume tries without waiting; a false alarm is fine).
    Ready,
    /// The deadline of [`Deferred::deadline`] passed first.
    TimedOut,
}

/// One turn of a deferred body: why it runs, the request's error stream, and the waker
/// that resumes it when it waits on something other than a descriptor.
pub struct Turn<'a> {
    /// Why the body is resumed.
    pub wake: Wake,
    /// The request's error stream.
    pub errors: &'a mut dyn Write,
    /// Wakes the body when [`Deferred::wait_for`] says `None` (a free connection, a lock).
    pub waker: &'a Waker,
}

/// A body written as a descriptor becomes ready (see the module documentation).
///
/// Each [`Deferred::resume`] does what it can without waiting, writes what it has into the
/// response and says whether it is done. It must never block: the gateway waits.
pub trait Deferred: Send {
    /// The descriptor to wait on and for what; `None`: the body waits for the waker of its
    /// last turn (woken at once if it should simply run again).
    fn wait_for(&self) -> Option<(BorrowedFd<'_>, Interest)>;
    /// When waiting gives up: [`Deferred::resume`] then hears [`Wake::TimedOut`].
    fn deadline(&self) -> Option<Instant>;
    /// Goes on after a wait.
    fn resume(&mut self, resp: &mut Response<'_>, turn: &mut Turn<'_>) -> Step;
    /// The client went away: stop (tell the peer, release what is held). The body is
    /// dropped after this.
    fn abort(&mut self);
}

thread_local! {
    static PARKING: Cell<bool> = const { Cell::new(false) };
}

/// Whether the gateway running the current request parks deferred bodies (the FastCGI
/// server's loop threads). An app may choose a deferred body only then and wait in place
/// otherwise; either way is correct.
pub fn parking() -> bool {
    PARKING.with(Cell::get)
}

/// Says (for the current thread) whether deferred bodies are parked; used by servers.
pub(crate) fn set_parking(on: bool) -> bool {
    PARKING.with(|p| p.replace(on))
}

/// The first wait for a descriptor is this short and unannounced; a longer one is a
/// blocking section (and tells an event-loop server to move its other work elsewhere).
const FIRST_SLICE: Duration = Duration::from_millis(1);

/// Longest single `poll()` while the client is watched (it is asked again after it).
const CLIENT_CHECK: Duration = Duration::from_millis(500);

/// Wakes the thread that waits in [`complete`].
struct ThreadWaker {
    thread: std::thread::Thread,
    woken: AtomicBool,
}

impl WakeTask for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Drives `body` to its end on this thread: waits for its descriptor (a blocking section),
/// watching the client's descriptor meanwhile, and resumes it until it is done.
pub fn complete(
    mut body: Box<dyn Deferred>,
    resp: &mut Response<'_>,
    errors: &mut dyn Write,
) -> Result<(), AppError> {
    let signal = Arc::new(ThreadWaker {
        thread: std::thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(Arc::clone(&signal));
    let mut wake = Wake::Ready;
    loop {
        let mut turn = Turn {
            wake,
            errors: &mut *errors,
            waker: &waker,
        };
        match body.resume(resp, &mut turn) {
            Step::Done(r) => return r,
            Step::Wait => {}
        }
        wake = match wait(&*body, resp, &signal) {
            Ok(w) => w,
            Err(e) => {
                body.abort();
                return Err(e);
            }
        };
    }
}

/// One wait of [`complete`]: until the body's descriptor is ready (or its waker woke), its
/// deadline passes or the client is gone (an error).
fn wait(
    body: &dyn Deferred,
    resp: &mut Response<'_>,
    signal: &ThreadWaker,
) -> Result<Wake, AppError> {
    let mut watch_client = true;
    let mut first = true;
    loop {
        let left = body
            .deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return Ok(Wake::TimedOut);
        }
        let slice = left.unwrap_or(CLIENT_CHECK).min(CLIENT_CHECK);
        let Some((fd, interest)) = body.wait_for() else {
            if signal.woken.swap(false, Ordering::Acquire) {
                return Ok(Wake::Ready);
            }
            super::blocking(|| std::thread::park_timeout(slice));
            if !signal.woken.load(Ordering::Acquire) && resp.client_gone() {
                return Err(gone());
            }
            continue;
        };
        let flags = match interest {
            Interest::Read => PollFlags::POLLIN,
            Interest::Write => PollFlags::POLLOUT,
        };
        let client = if watch_client { resp.watch_fd() } else { None };
        if first {
            // A fast peer answers within the first slice: no hand-off for it.
            first = false;
            if !poll_pair(fd, flags, None, slice.min(FIRST_SLICE))?
                .0
                .is_empty()
            {
                return Ok(Wake::Ready);
            }
            super::about_to_block();
            continue;
        }
        let (ready, client_ready) = super::blocking(|| poll_pair(fd, flags, client, slice))?;
        let (ready, client_ready) = (!ready.is_empty(), !client_ready.is_empty());
        if ready {
            return Ok(Wake::Ready);
        }
        if client_ready || client.is_none() {
            if resp.client_gone() {
                return Err(gone());
            }
            // Readable but not gone (body bytes): ask it only after each slice from now.
            watch_client &= !client_ready;
        }
    }
}

fn gone() -> AppError {
    AppError::from(io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the client went away",
    ))
}

/// `poll` on one descriptor (and an optional second one, for input) until `events` or the
/// timeout; returns the revents of both. Interrupted polls are made again.
pub fn poll_pair(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    other: Option<BorrowedFd<'_>>,
    timeout: Duration,
) -> io::Result<(PollFlags, PollFlags)> {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let mut both = [PollFd::new(fd, events), PollFd::new(fd, PollFlags::empty())];
    let fds = match other {
        Some(o) => {
            both[1] = PollFd::new(o, PollFlags::POLLIN);
            &mut both[..]
        }
        None => &mut both[..1],
    };
    loop {
        match poll(fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let rev = |p: &PollFd| p.revents().unwrap_or(PollFlags::empty());
    Ok((
        rev(&fds[0]),
        fds.get(1).map(rev).unwrap_or(PollFlags::empty()),
    ))
}
