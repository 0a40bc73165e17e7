//! `cgate call --repeat N --concurrency C`: N requests over C kept-alive connections, and a
//! summary of counts, throughput and latency percentiles.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Body, CallArgs, EXIT_FAILED, EXIT_MET, EXIT_NOT_MET, EXIT_USAGE, Prepared};
use crate::cgi::reply::{Progress, ReplyParser};
use crate::fastcgi::client::Conn;
use crate::fastcgi::client::exchange::Exchange;
use crate::fastcgi::client::request::{self, Call, Handler};
use crate::fastcgi::proto::ProtocolStatus;

/// Most requests one `--repeat` run sends (latencies are kept: 16 bytes each).
pub const MAX_REPEAT: u64 = 10_000_000;
/// Most connections of one run.
pub const MAX_CONCURRENCY: usize = 1024;

/// Only the status is kept; the body is read and dropped.
struct StatusOnly {
    parser: Option<ReplyParser>,
    status: Option<u16>,
    stderr: Vec<u8>,
}

impl Handler for StatusOnly {
    fn stdout(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(p) = self.parser.as_mut() {
            match p.feed(data) {
                Progress::NeedMore => return Ok(()),
                Progress::Head { head, .. } => {
                    self.status = crate::gateway::head::parse_status(&head.status).ok();
                }
                Progress::Error(_) => {}
            }
            self.parser = None;
        }
        Ok(())
    }

    fn stderr(&mut self, data: &[u8]) {
        let room = STDERR_KEPT.saturating_sub(self.stderr.len());
        self.stderr.extend_from_slice(&data[..data.len().min(room)]);
    }
}

/// FCGI_STDERR bytes kept per request, shown with the first error.
const STDERR_KEPT: usize = 1024;

/// What one connection's worker measured.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    failures: u64,
    first_error: Option<String>,
}

fn worker(p: &Prepared, head: &[u8], next: &AtomicU64, total: u64, expect: Option<u16>) -> Tally {
    let mut t = Tally::default();
    let mut conn: Option<Conn> = None;
    let body: &[u8] = match &p.body {
        Body::Bytes(b) => b,
        _ => &[],
    };
    while next.fetch_add(1, Ordering::Relaxed) < total {
        let started = Instant::now();
        let result = one(p, head, body, &mut conn);
        t.latencies.push(started.elapsed());
        let failed = match result {
            Ok(status) if super::verdict(status, expect) == EXIT_MET => continue,
            Ok(status) => format!("status {status:?}"),
            Err(e) => {
                t.failures += 1;
                e
            }
        };
        t.errors += 1;
        t.first_error.get_or_insert(failed);
    }
    t
}

/// A new connection for the load: its reads wait in the kernel (one `recv` per reply, no
/// `poll`), each at most the timeout.
fn connect(p: &Prepared) -> Result<Conn, String> {
    let mut c = Conn::connect(&p.addr, p.timeout).map_err(|e| format!("connect: {e}"))?;
    c.block_reads(p.timeout)
        .map_err(|e| format!("socket: {e}"))?;
    Ok(c)
}

/// One request on the kept connection (or a new one). A request that failed on a kept
/// connection is sent once more on a new one when the retry rule allows (the backend cannot
/// have acted on it). Before a request that is not idempotent a kept connection is first
/// checked for the backend's close (one `poll`); an idempotent one is sent at once, since
/// every failure of a kept connection the backend closed meanwhile (EPIPE, reset, end of
/// stream before any reply byte) lets the rule send it again.
fn one(
    p: &Prepared,
    head: &[u8],
    body: &[u8],
    conn: &mut Option<Conn>,
) -> Result<Option<u16>, String> {
    loop {
        let (mut c, reused) = match conn.take() {
            Some(c) if p.idempotent || !c.is_stale() => (c, true),
            _ => (connect(p)?, false),
        };
        let mut h = StatusOnly {
            parser: Some(ReplyParser::new(
                crate::cgi::reply::DEFAULT_MAX_HEADER_BYTES,
            )),
            status: None,
            stderr: Vec::new(),
        };
        let mut src = body;
        let call = Call {
            head,
            body: (!matches!(p.body, Body::None)).then_some(&mut src as &mut dyn io::Read),
            body_len: p.len,
            timeout: p.timeout,
        };
        let end = match request::run(&mut c, Exchange::new(1, true), call, &mut h) {
            Ok(end) => end,
            Err(e) if reused && e.retry_safe(true, p.idempotent) => continue,
            Err(e) => return Err(e.to_string()),
        };
        if end.status != ProtocolStatus::RequestComplete {
            return Err(format!("END_REQUEST {:?}", end.status));
        }
        if end.reusable {
            *conn = Some(c);
        }
        if h.status.is_some_and(|s| s >= 500) && !h.stderr.is_empty() {
            let text = String::from_utf8_lossy(&h.stderr);
            return Err(format!("status {:?} ({})", h.status, text.trim_end()));
        }
        return Ok(h.status);
    }
}

/// The value at fraction `q` of sorted `v` (nearest rank).
fn percentile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Runs the load; returns the exit code (0 no error, 1 some, 3 every request failed).
pub fn run(args: &CallArgs) -> i32 {
    let total = args.repeat.unwrap_or(1);
    if total == 0
        || total > MAX_REPEAT
        || args.concurrency == 0
        || args.concurrency > MAX_CONCURRENCY
    {
        eprintln!(
            "cgate call: --repeat must be 1..={MAX_REPEAT} and --concurrency 1..={MAX_CONCURRENCY}"
        );
        return EXIT_USAGE;
    }
    let prepared = match args.prepare(true) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cgate call: {e}");
            return EXIT_USAGE;
        }
    };
    let head = prepared.head(true);
    let next = AtomicU64::new(0);
    let started = Instant::now();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.concurrency.min(total as usize))
            .map(|_| s.spawn(|| worker(&prepared, &head, &next, total, args.expect)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let elapsed = started.elapsed();
    let mut all: Vec<Duration> = tallies
        .iter()
        .flat_map(|t| t.latencies.iter().copied())
        .collect();
    all.sort_unstable();
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let failures: u64 = tallies.iter().map(|t| t.failures).sum();
    let count = all.len() as u64;
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "requests {count}  errors {errors}  {:.1} req/s  over {:.3} s",
        count as f64 / elapsed.as_secs_f64().max(1e-9),
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "latency  p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.90)),
        ms(percentile(&all, 0.99)),
        ms(all.last().copied().unwrap_or_default())
    );
    if let Some(e) = tallies.iter().find_map(|t| t.first_error.as_ref()) {
        eprintln!("cgate call: first error: {e}");
    }
    match errors {
        0 => EXIT_MET,
        _ if failures == count => EXIT_FAILED,
        _ => EXIT_NOT_MET,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&v[..1], 0.9), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.9), Duration::ZERO);
    }
}
