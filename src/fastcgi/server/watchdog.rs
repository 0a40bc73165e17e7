//! The watchdog thread: replaces loop threads held up in slow requests, and closes connections past their deadlines.

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use super::pool::{HOGGING, SLOW_REQUEST, Shared, Slot, Worker, lock};

impl Shared {
    /// The watchdog thread's loop: detaches overdue loop threads every tick, and once a
    /// second closes connections past their deadlines.
    pub(super) fn watchdog(self: &Arc<Self>) {
        let mut last_scan = 0;
        let mut last_handled = 0;
        let mut quiet_ticks = 0u32;
        loop {
            let active = self.handled.load(SeqCst) != last_handled;
            last_handled = self.handled.load(SeqCst);
            quiet_ticks = if active {
                0
            } else {
                quiet_ticks.saturating_add(1)
            };
            // Every 2 ms while requests flow (so a blocked loop is replaced within 2-4 ms),
            // every 50 ms after half a second without any.
            let tick = if quiet_ticks < 250 { 2 } else { 50 };
            std::thread::sleep(Duration::from_millis(tick));
            let now = self.now();
            let slow = u64::try_from(SLOW_REQUEST.as_millis()).unwrap_or(2);
            let overdue: Vec<Arc<Worker>> = lock(&self.workers)
                .iter()
                .filter(|w| {
                    let since = w.busy_since.load(SeqCst);
                    since != 0 && !w.detached.load(SeqCst) && now + 1 >= since + slow
                })
                .cloned()
                .collect();
            for w in &overdue {
                let since = w.busy_since.load(SeqCst);
                if since == 0 || now + 1 < since + slow {
                    continue; // finished, or a new request started, meanwhile
                }
                // A runnable thread is computing or merely preempted on a busy machine; only
                // a thread that sleeps (blocked in the app) or runs very long is replaced.
                let long = now + 1 >= since + HOGGING.as_millis() as u64;
                if !long && is_running(w.tid.load(SeqCst)) {
                    continue;
                }
                self.detach(w);
            }
            if now.saturating_sub(last_scan) >= 1000 {
                last_scan = now;
                self.expire(now);
                self.expire_parked(now);
            }
        }
    }

    /// Closes idle connections past the idle timeout and partial requests past the request
    /// timeout (slowloris); shutting the socket down wakes its handler, which closes it.
    fn expire(&self, now: u64) {
        let idle = u64::try_from(self.cfg.conn.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let partial = u64::try_from(self.cfg.conn.request_timeout.as_millis()).unwrap_or(u64::MAX);
        let conns: Vec<Arc<Slot>> = lock(&self.conns).values().cloned().collect();
        for slot in conns {
            if slot.busy.load(SeqCst) {
                continue;
            }
            let since = slot.partial_since.load(SeqCst);
            if since != 0 && now.saturating_sub(since) > partial {
                eprintln!("cgate: closing FastCGI connection: request did not arrive in time");
                slot.stream.shutdown();
            } else if since == 0 && now.saturating_sub(slot.last.load(SeqCst)) > idle {
                slot.stream.shutdown();
            }
        }
    }
}

/// `true` when thread `tid` of this process is runnable (state `R` in /proc).
fn is_running(tid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
        return false;
    };
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .is_some_and(|c| c == 'R')
}
