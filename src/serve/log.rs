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

use crate::gateway::input::push_decimal;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use hyper::{Method, Uri};

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

/// Queues one line for stderr: `write` appends it (newline included) to the batch.
fn push(write: impl FnOnce(&mut Vec<u8>)) {
    let w = writer();
    let mut p = lock(&w.pending);
    let was_empty = p.bytes.is_empty();
    let before = p.bytes.len();
    write(&mut p.bytes);
    if p.bytes.len() > MAX_PENDING {
        p.bytes.truncate(before);
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

/// Most bytes of the target a line shows.
const MAX_TARGET: usize = 2048;

/// One request's log line, queued on drop.
#[derive(Debug)]
pub struct AccessLog {
    remote: Arc<str>,
    method: Method,
    target: Uri,
    start: Instant,
    /// The status sent (0 until a response is made).
    pub status: u16,
    /// Body bytes handed to hyper.
    pub bytes: u64,
    /// The body ended cleanly.
    pub complete: bool,
}

impl AccessLog {
    /// A line for the request `method target` from `remote` (its address as text), begun at
    /// `start`. Nothing is copied but reference counts.
    pub fn new(remote: &Arc<str>, method: &Method, target: &Uri, start: Instant) -> AccessLog {
        AccessLog {
            remote: remote.clone(),
            method: method.clone(),
            target: target.clone(),
            start,
            status: 0,
            bytes: 0,
            complete: false,
        }
    }

    /// Appends the line, without its newline, to `out`, for a response that took `micros`.
    /// By hand: this runs once per request, and the formatting machinery cost more than all
    /// the rest of the line.
    fn write_to(&self, out: &mut Vec<u8>, micros: u64) {
        let target = self.target.path_and_query().map_or("/", |pq| pq.as_str());
        let mut end = target.len().min(MAX_TARGET);
        while !target.is_char_boundary(end) {
            end -= 1;
        }
        for text in [&*self.remote, self.method.as_str(), &target[..end]] {
            out.extend_from_slice(text.as_bytes());
            out.push(b' ');
        }
        push_decimal(out, u64::from(self.status));
        out.push(b' ');
        push_decimal(out, self.bytes);
        out.push(b' ');
        push_decimal(out, micros / 1000);
        out.push(b'.');
        let hundredths = micros % 1000 / 10;
        out.extend_from_slice(&[
            b'0' + (hundredths / 10) as u8,
            b'0' + (hundredths % 10) as u8,
        ]);
        out.extend_from_slice(if self.complete { b"ms" } else { b"ms cut" });
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The line, without its newline.
    #[cfg(test)]
    pub fn line(&self) -> String {
        let mut out = Vec::new();
        self.write_to(&mut out, self.micros());
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let micros = self.micros();
        push(|out| {
            self.write_to(out, micros);
            out.push(b'\n');
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let uri = Uri::from_static("/a?b");
        let mut log = AccessLog::new(&"127.0.0.1".into(), &Method::GET, &uri, Instant::now());
        log.status = 200;
        log.bytes = 14;
        let line = log.line();
        assert!(line.starts_with("127.0.0.1 GET /a?b 200 14 "), "{line}");
        assert!(line.ends_with("ms cut"), "{line}");
        log.complete = true;
        let line = log.line();
        assert!(line.ends_with("ms") && !line.contains("cut"), "{line}");
        let exact = |log: &AccessLog, micros| {
            let mut out = Vec::new();
            log.write_to(&mut out, micros);
            String::from_utf8(out).expect("ASCII line")
        };
        assert_eq!(exact(&log, 1_057), "127.0.0.1 GET /a?b 200 14 1.05ms");
        log.complete = false;
        log.status = 0;
        log.bytes = u64::MAX;
        assert_eq!(
            exact(&log, 12_345_009),
            "127.0.0.1 GET /a?b 0 18446744073709551615 12345.00ms cut"
        );
        std::mem::forget(log);
        // A long target is cut at 2048 bytes, on a character boundary.
        let long = format!("/{}", "\u{e9}".repeat(2000));
        let uri: Uri = long.parse().expect("uri");
        let log = AccessLog::new(&"::1".into(), &Method::POST, &uri, Instant::now());
        let line = exact(&log, 0);
        assert!(line.starts_with("::1 POST /\u{e9}"), "{line}");
        assert_eq!(
            line.len(),
            "::1 POST ".len() + 2047 + " 0 0 0.00ms cut".len()
        );
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
