//! The slow log: a request running longer than the limit gets one line (id, method, URI, age, what it waits on), another at ten times it.
//!
//! A thread scans the requests in flight; nothing is traced or stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use super::inflight::InFlight;
use super::metrics::COUNTERS;

/// How often the table is scanned: a quarter of the limit, within 5 ms to 1 s.
fn tick(limit: Duration) -> Duration {
    (limit / 4).clamp(Duration::from_millis(5), Duration::from_secs(1))
}

/// One request as the slow log sees it.
struct Seen<'a> {
    id: &'a str,
    method: &'a str,
    uri: &'a str,
    age: Duration,
    waiting: &'a str,
    thread: &'a str,
    lines: &'a AtomicU8,
}

/// The line due for `r` now, if any (and marks it written).
fn line(r: &Seen<'_>, limit: Duration) -> Option<String> {
    let written = r.lines.load(Relaxed);
    let level = if r.age >= limit.saturating_mul(10) {
        2
    } else if r.age >= limit {
        1
    } else {
        0
    };
    if level <= written {
        return None;
    }
    r.lines.store(level, Relaxed);
    if written == 0 {
        COUNTERS.slow();
    }
    Some(format!(
        "slow: id={} method={} uri={:?} age_ms={} waiting={} thread={}",
        r.id,
        r.method,
        r.uri,
        r.age.as_millis(),
        r.waiting,
        r.thread
    ))
}

/// The slow-log lines due now (and marks them written): requests running their app, and
/// requests still reading their body ahead of it (`waiting=body thread=-`).
pub fn due(inflight: &InFlight, limit: Duration) -> Vec<String> {
    let mut lines = Vec::new();
    inflight.each(|r| {
        let seen = Seen {
            id: &r.id,
            method: &r.method,
            uri: &r.uri,
            age: r.started.elapsed(),
            waiting: r.waiting().as_str(),
            thread: &r.thread,
            lines: &r.slow_lines,
        };
        lines.extend(line(&seen, limit));
    });
    super::arriving::each(|a| {
        let seen = Seen {
            id: &a.id,
            method: &a.method,
            uri: &a.uri,
            age: a.since.elapsed(),
            waiting: "body",
            thread: "-",
            lines: &a.slow_lines,
        };
        lines.extend(line(&seen, limit));
    });
    lines
}

/// Starts the scanning thread.
pub fn start(inflight: Arc<InFlight>, limit: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("cgate-slow-log".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick(limit));
                for line in due(&inflight, limit) {
                    super::event(&line);
                }
            }
        })
        .map(drop)
}
