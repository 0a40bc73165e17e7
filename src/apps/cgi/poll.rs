//! Small pieces of the pump's I/O: pooled buffers, poll sets and timeouts, non-blocking reads.

use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};

/// Bytes moved per read or write on a pipe.
pub const CHUNK: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A [`CHUNK`]-byte buffer from this thread's small pool, given back on drop: scripts run on
/// long-lived server threads, so the buffers are not allocated and zeroed per request.
pub struct Scratch(pub Vec<u8>);

impl Scratch {
    /// A buffer from the pool, or a new one.
    pub fn new() -> Self {
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

/// A poll timeout of at least `wait` (rounded up to whole milliseconds, capped).
pub fn timeout_of(wait: Duration) -> PollTimeout {
    let ms = wait
        .as_millis()
        .saturating_add(u128::from(wait.subsec_nanos() % 1_000_000 != 0));
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// Adds `fd` (when open) to the poll set; answers its index.
pub fn watch<'f>(
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
pub fn read_once(r: &mut impl Read, buf: &mut [u8]) -> Option<usize> {
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
