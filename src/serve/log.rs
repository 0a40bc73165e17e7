//! The access log: one line per request on stderr, written when its response has ended.
//!
//! `127.0.0.1 GET /path?q 200 14 0.42ms`: client address, method, target as sent, status,
//! body bytes handed to the connection, and the time from the request head to the end of
//! the response; ` cut` follows when the response did not end cleanly (the app failed after
//! it started, or the client went away).
//!
//! Connection threads append their lines to one buffer; a writer thread passes it to stderr
//! [`GATHER`] after the first line of a batch arrived, so under load many lines leave in one
//! write (and one wake-up) instead of every thread queueing on the file. The buffer is bounded ([`MAX_PENDING`]): while
//! stderr cannot keep up, lines are dropped and counted, and the count is reported.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

/// Bytes of log lines held while stderr is slow; past it lines are dropped (counted).
pub const MAX_PENDING: usize = 1 << 20;

/// How long the writer gathers lines after the first one of a batch arrives.
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    dropped: u64,
}

struct Writer {
    pending: Mutex<Pending>,
    ready: Condvar,
    /// Held while writing, so batches reach stderr whole and in order.
    out: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

static WRITER: OnceLock<&'static Writer> = OnceLock::new();

fn writer() -> &'static Writer {
    WRITER.get_or_init(|| {
        let w: &'static Writer = Box::leak(Box::new(Writer {
            pending: Mutex::new(Pending::default()),
            ready: Condvar::new(),
            out: Mutex::new(()),
        }));
        let spawned = std::thread::Builder::new()
            .name("cgate-log".into())
            .spawn(move || {
                loop {
                    {
                        let mut p = lock(&w.pending);
                        while p.bytes.is_empty() && p.dropped == 0 {
                            p = w
                                .ready
                                .wait(p)
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                        }
                    }
                    // Lines of the next moment join this batch: one wake-up and one write
                    // per window under load, instead of one per request.
                    std::thread::sleep(GATHER);
                    // Taken under `out`, as `flush` does: batches leave in the order queued.
                    let _out = lock(&w.out);
                    let batch = take(&mut lock(&w.pending));
                    write_stderr(&batch);
                }
            });
        if spawned.is_err() {
            eprintln!("cgate: no access-log thread: lines are written when flushed");
        }
        w
    })
}

fn take(p: &mut Pending) -> Vec<u8> {
    let mut batch = std::mem::take(&mut p.bytes);
    if p.dropped > 0 {
        let note = format!(
            "cgate: {} access-log line(s) dropped: stderr was slow\n",
            p.dropped
        );
        batch.extend_from_slice(note.as_bytes());
        p.dropped = 0;
    }
    batch
}

fn write_stderr(mut bytes: &[u8]) {
    let err = std::io::stderr();
    while !bytes.is_empty() {
        match nix::unistd::write(err.as_fd(), bytes) {
            Ok(0) | Err(_) => return,
            Ok(n) => bytes = &bytes[n..],
        }
    }
}

/// Queues one line (newline included) for stderr.
fn push(line: &[u8]) {
    let w = writer();
    let mut p = lock(&w.pending);
    let was_empty = p.bytes.is_empty();
    if p.bytes.len() + line.len() <= MAX_PENDING {
        p.bytes.extend_from_slice(line);
    } else {
        p.dropped += 1;
    }
    drop(p);
    if was_empty {
        w.ready.notify_one();
    }
}

/// Writes whatever lines are still queued, now (before the process exits).
pub fn flush() {
    let Some(w) = WRITER.get() else { return };
    let _out = lock(&w.out);
    let batch = take(&mut lock(&w.pending));
    write_stderr(&batch);
}

/// One request's log line, queued on drop.
#[derive(Debug)]
pub struct AccessLog {
    remote: IpAddr,
    method: String,
    target: String,
    start: Instant,
    /// The status sent (0 until a response is made).
    pub status: u16,
    /// Body bytes handed to hyper.
    pub bytes: u64,
    /// The body ended cleanly.
    pub complete: bool,
}

impl AccessLog {
    /// A line for the request `method target` from `remote`, begun at `start`.
    pub fn new(remote: IpAddr, method: &str, target: &str, start: Instant) -> AccessLog {
        AccessLog {
            remote,
            method: method.to_owned(),
            target: target.to_owned(),
            start,
            status: 0,
            bytes: 0,
            complete: false,
        }
    }

    /// The line, without its newline.
    pub fn line(&self) -> String {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let cut = if self.complete { "" } else { " cut" };
        let target: String = self.target.chars().take(2048).collect();
        format!(
            "{} {} {} {} {} {ms:.2}ms{cut}",
            self.remote, self.method, target, self.status, self.bytes
        )
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let mut line = self.line();
        line.push('\n');
        push(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let mut log = AccessLog::new([127, 0, 0, 1].into(), "GET", "/a?b", Instant::now());
        log.status = 200;
        log.bytes = 14;
        let line = log.line();
        assert!(line.starts_with("127.0.0.1 GET /a?b 200 14 "), "{line}");
        assert!(line.ends_with("ms cut"), "{line}");
        log.complete = true;
        let line = log.line();
        assert!(line.ends_with("ms") && !line.contains("cut"), "{line}");
        std::mem::forget(log);
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        let mut p = Pending {
            bytes: b"a\n".to_vec(),
            dropped: 3,
        };
        let batch = take(&mut p);
        assert_eq!(
            batch,
            b"a\ncgate: 3 access-log line(s) dropped: stderr was slow\n"
        );
        assert!(p.bytes.is_empty() && p.dropped == 0);
    }
}
