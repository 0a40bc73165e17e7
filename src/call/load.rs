//! `cgate call --repeat N --concurrency C`: N requests over C kept-alive connections, and a
//! summary of counts, throughput and latency percentiles.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use super::tally::Tally;
use super::{Body, CallArgs, EXIT_FAILED, EXIT_MET, EXIT_NOT_MET, EXIT_USAGE};
use crate::fastcgi::client::exchange::Exchange;

/// Most requests one `--repeat` run sends (latencies are kept: 16 bytes each).
pub const MAX_REPEAT: u64 = 10_000_000;
/// Most connections of one run.
pub const MAX_CONCURRENCY: usize = 1024;

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
    let body: &[u8] = match &prepared.body {
        Body::Bytes(b) => b,
        _ => &[],
    };
    let mut request = prepared.head(true);
    let x = Exchange::new(1, true);
    x.stdin(&mut request, body);
    x.end_stdin(&mut request);
    let conns = args.concurrency.min(total as usize);
    let started = Instant::now();
    let mut tally = Tally::default();
    match super::evloop::Load::new(&prepared, &request, total, conns) {
        Ok(mut load) => load.run(&mut tally, args.expect),
        Err(e) => tally.fail_all(&format!("epoll: {e}"), total as usize),
    }
    let elapsed = started.elapsed();
    let mut all = std::mem::take(&mut tally.latencies);
    all.sort_unstable();
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "requests {}  errors {}  {:.1} req/s  over {:.3} s",
        tally.requests,
        tally.errors,
        all.len() as f64 / elapsed.as_secs_f64().max(1e-9),
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
    if let Some(e) = &tally.first_error {
        eprintln!("cgate call: first error: {e}");
    }
    let (errors, failures, count) = (tally.errors, tally.failures, tally.requests);
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
