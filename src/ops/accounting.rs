//! How an observed request is passed on and accounted for: the counting sink, the error stream prefixed with the request id, the count and access-log line at its end.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Instant;

use super::access::{self, Entry};
use super::clock::Utc;
use super::inflight::InFlight;
use super::metrics::{COUNTERS, Outcome};
use super::waiting::Waiting;
use crate::gateway::{AppError, Environ, Head, Response, Sink};

/// Passes the inner response to the outer one, counting what goes out; small bodies are
/// collected so a short reply still leaves in one write.
pub(super) struct Forward<'o, 's> {
    pub(super) outer: &'o mut Response<'s>,
    pub(super) buf: Vec<u8>,
    pub(super) status: u16,
    pub(super) bytes: u64,
    pub(super) waiting: &'o AtomicU8,
}

const COLLECT: usize = 16 * 1024;

impl Forward<'_, '_> {
    fn pass(&mut self, last: bool) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        self.waiting.store(Waiting::Client as u8, Relaxed);
        let r = if last {
            self.outer.write_full(&buf)
        } else {
            self.outer.write(&buf)
        };
        self.waiting.store(Waiting::App as u8, Relaxed);
        self.buf = buf;
        self.buf.clear();
        r
    }
}

impl Sink for Forward<'_, '_> {
    fn send_head(&mut self, head: &Head) -> io::Result<()> {
        self.status = head.code();
        self.outer
            .start_head(head.clone())
            .map_err(io::Error::other)
    }

    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.bytes += chunk.len() as u64;
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= COLLECT {
            self.pass(false)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.pass(false)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.pass(true)
    }

    fn abort(&mut self) {
        self.buf.clear();
    }

    fn client_gone(&mut self) -> bool {
        self.outer.client_gone()
    }

    fn watch_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.outer.watch_fd()
    }
}

/// The error stream with `[ID] ` at the start of every line.
pub(super) struct Prefixed<'x> {
    pub(super) inner: &'x mut dyn Write,
    pub(super) id: &'x str,
    pub(super) line_start: bool,
}

impl Write for Prefixed<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut out = Vec::with_capacity(data.len() + self.id.len() + 3);
        for piece in data.split_inclusive(|&b| b == b'\n') {
            if self.line_start {
                out.push(b'[');
                out.extend_from_slice(self.id.as_bytes());
                out.extend_from_slice(b"] ");
            }
            out.extend_from_slice(piece);
            self.line_start = piece.ends_with(b"\n");
        }
        self.inner.write_all(&out)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub(super) fn outcome_of(r: &Result<(), AppError>, head_sent: bool) -> Outcome {
    let io_kind = |e: &AppError| e.downcast_ref::<io::Error>().map(io::Error::kind);
    match r {
        Ok(()) => Outcome::Complete,
        Err(e) if io_kind(e) == Some(io::ErrorKind::ConnectionAborted) => Outcome::Aborted,
        Err(e)
            if matches!(
                io_kind(e),
                Some(io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
            ) =>
        {
            Outcome::ClientGone
        }
        Err(_) if head_sent => Outcome::Cut,
        Err(_) => Outcome::Complete,
    }
}

pub(super) fn env_str<'e>(env: &'e Environ, name: &str) -> &'e str {
    env.get_str(name).unwrap_or("")
}

/// How a request ended, for the counters and the access log.
pub(super) struct Done {
    /// Status sent (0: none).
    pub(super) status: u16,
    /// Body bytes sent.
    pub(super) bytes: u64,
    /// How it ended.
    pub(super) outcome: Outcome,
}

/// Counts a request's end and writes its access log line.
pub(super) fn finish(
    env: Option<&Environ>,
    id: &str,
    uri: &str,
    time: Utc,
    started: Instant,
    d: Done,
) {
    COUNTERS.request_ended(d.status, d.outcome);
    let Some(env) = env.filter(|_| access::enabled()) else {
        return;
    };
    access::record(&Entry {
        time,
        id,
        remote: env_str(env, "REMOTE_ADDR"),
        user: env_str(env, "REMOTE_USER"),
        method: env.method(),
        uri,
        protocol: env_str(env, "SERVER_PROTOCOL"),
        status: d.status,
        bytes: d.bytes,
        referer: env_str(env, "HTTP_REFERER"),
        agent: env_str(env, "HTTP_USER_AGENT"),
        ms: started.elapsed().as_millis() as u64,
        outcome: d.outcome.as_str(),
    });
}

/// What an observed request is accounted by when it ends (here, or after a parked body).
pub(super) struct Accounting {
    pub(super) inflight: Arc<InFlight>,
    pub(super) key: u64,
    pub(super) id: String,
    pub(super) uri: String,
    pub(super) time: Utc,
    pub(super) started: Instant,
    pub(super) waiting: Arc<AtomicU8>,
}

impl Accounting {
    /// The request ended with `r`: out of the in-flight list, counted, logged.
    pub(super) fn close(
        &self,
        r: &Result<(), AppError>,
        head_sent: bool,
        status: u16,
        bytes: u64,
        env: Option<&Environ>,
    ) {
        self.inflight.end(self.key);
        let outcome = outcome_of(r, head_sent);
        let (status, bytes) = match (r, head_sent, outcome) {
            (Err(_), false, Outcome::Complete) => (500, "Internal Server Error\n".len() as u64),
            (Err(_), false, _) => (0, 0),
            _ => (status, bytes),
        };
        let done = Done {
            status,
            bytes,
            outcome,
        };
        finish(env, &self.id, &self.uri, self.time, self.started, done);
    }
}
