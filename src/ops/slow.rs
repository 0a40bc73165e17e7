//! The slow log: a request running longer than the limit gets one line (id, method, URI, age, what it waits on), another at ten times it.
//!
//! A thread scans the requests in flight; nothing is traced or stopped.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::metrics::COUNTERS;
use super::observe::InFlight;

/// How often the table is scanned: a quarter of the limit, within 5 ms to 1 s.
fn tick(limit: Duration) -> Duration {
    (limit / 4).clamp(Duration::from_millis(5), Duration::from_secs(1))
}

/// The slow-log lines due now (and marks them written).
pub fn due(inflight: &InFlight, limit: Duration) -> Vec<String> {
    let mut lines = Vec::new();
    inflight.each(|r| {
        let age = r.started.elapsed();
        let written = r.slow_lines.load(Relaxed);
        let level = if age >= limit.saturating_mul(10) {
            2
        } else if age >= limit {
            1
        } else {
            0
        };
        if level > written {
            r.slow_lines.store(level, Relaxed);
            if written == 0 {
                COUNTERS.slow();
            }
            lines.push(format!(
                "slow: id={} method={} uri={:?} age_ms={} waiting={} thread={}",
                r.id,
                r.method,
                r.uri,
                age.as_millis(),
                r.waiting().as_str(),
                r.thread
            ));
        }
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
