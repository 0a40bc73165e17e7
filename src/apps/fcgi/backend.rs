//! One backend of an `fcgi:` app: its bounded pool of kept connections, its health
//! (passive ejection with backoff, the GET_VALUES probe) and its counters.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::fastcgi::client::request::query_values;
use crate::fastcgi::client::{BackendAddr, Conn};

/// First time out of rotation; doubled on each failed probe up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest time out of rotation between two probes.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a probe waits for the answer to its GET_VALUES (no answer in time counts as
/// alive: libfcgi, for one, answers only with its next reply).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the first request to a backend waits for its FCGI_MAX_CONNS.
pub const SIZING_TIMEOUT: Duration = Duration::from_millis(250);

/// Counters of one backend, as the operations status endpoint shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStats {
    /// The backend's address.
    pub addr: String,
    /// Requests sent to it (tries, retries included).
    pub requests: u64,
    /// Tries that failed (connection, protocol, timeout, refusal).
    pub errors: u64,
    /// Tries that failed safely and were sent again (to any backend).
    pub retries: u64,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Times it was taken out of rotation.
    pub ejections: u64,
    /// Out of rotation now.
    pub ejected: bool,
    /// Connections open now (idle and busy) and the pool's bound.
    pub open: usize,
    /// The pool's bound: the `max_conns` option, lowered to the backend's FCGI_MAX_CONNS.
    pub limit: usize,
}

#[derive(Debug)]
struct Pool {
    idle: Vec<Conn>,
    open: usize,
    limit: usize,
    sized: bool,
    /// Leases waiting for a connection to come back (a release wakes one only if any: a
    /// condvar's notify is a system call even with no waiter).
    waiting: usize,
    /// Parked requests waiting for a connection to come back, woken one per release.
    wakers: std::collections::VecDeque<Waker>,
}

#[derive(Debug)]
struct Health {
    failures: u32,
    ejected_until: Option<Instant>,
    backoff: Duration,
}

/// A backend and its state.
#[derive(Debug)]
pub struct Backend {
    /// Where it listens.
    pub addr: BackendAddr,
    pool: Mutex<Pool>,
    sizing: Mutex<()>,
    /// The pool was sized (read without a lock on each lease).
    sized: AtomicBool,
    freed: Condvar,
    health: Mutex<Health>,
    requests: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    in_flight: AtomicU64,
    ejections: AtomicU64,
}

/// A parked request's place in a backend's queue for a connection.
#[derive(Debug, Clone, Copy)]
pub struct Queued<'a> {
    /// Wakes the request when a connection comes back.
    pub waker: &'a Waker,
    /// The request was woken for a connection (it goes to the front if it finds none).
    pub woken: bool,
}

/// A connection taken from the pool (or newly made) for one try.
#[derive(Debug)]
pub struct Lease {
    /// The connection.
    pub conn: Conn,
    /// It had carried a request before (a failure on it may be a stale-connection race).
    pub reused: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Backend {
    /// A backend whose pool holds at most `max_conns` connections.
    pub fn new(addr: BackendAddr, max_conns: usize) -> Self {
        Backend {
            addr,
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
                limit: max_conns.max(1),
                sized: false,
                waiting: 0,
                wakers: std::collections::VecDeque::new(),
            }),
            sizing: Mutex::new(()),
            sized: AtomicBool::new(false),
            freed: Condvar::new(),
            health: Mutex::new(Health {
                failures: 0,
                ejected_until: None,
                backoff: FIRST_BACKOFF,
            }),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
        }
    }

    /// Asks the backend's FCGI_MAX_CONNS once (on its own connection, closed at once) and
    /// lowers the pool's bound to it. A backend that does not answer keeps the option's bound.
    fn size_pool(&self, connect_timeout: Duration) {
        let _one_at_a_time = lock(&self.sizing);
        if lock(&self.pool).sized {
            return;
        }
        let advertised = Conn::connect(&self.addr, connect_timeout)
            .and_then(|mut c| query_values(&mut c, SIZING_TIMEOUT))
            .ok()
            .and_then(|v| v.max_conns)
            .filter(|&n| n > 0);
        let mut pool = lock(&self.pool);
        if !pool.sized {
            pool.sized = true;
            if let Some(n) = advertised {
                pool.limit = pool.limit.min(usize::try_from(n).unwrap_or(usize::MAX));
            }
        }
        drop(pool);
        self.sized.store(true, Ordering::Release);
    }

    /// A connection for one try: the most recently returned idle one that is neither older
    /// than `idle_for` nor closed by the backend, else a new one while the pool has room,
    /// else waits up to `wait` for one to be returned. `pooled`: connections are kept, so
    /// the pool is first sized from the backend's GET_VALUES.
    ///
    /// A parked request (`queue`) never waits: when every connection is busy it queues its
    /// waker, woken when one comes back, and fails with `WouldBlock`. The queue is first come,
    /// first served: while requests wait in it, a newcomer queues behind them (a connection
    /// given back goes to the request it wakes), and a woken one that still finds none goes
    /// back to the front.
    pub fn lease(
        &self,
        pooled: bool,
        idle_for: Duration,
        connect_timeout: Duration,
        wait: Duration,
        queue: Option<Queued<'_>>,
    ) -> io::Result<Lease> {
        if pooled && !self.sized.load(Ordering::Acquire) {
            self.size_pool(connect_timeout);
        }
        let deadline = Instant::now() + wait;
        loop {
            let mut pool = lock(&self.pool);
            if let Some(q) = queue {
                if q.woken {
                    pool.wakers.retain(|w| !w.will_wake(q.waker));
                } else if !pool.wakers.is_empty() {
                    pool.wakers.push_back(q.waker.clone());
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
            let mut taken = None;
            while let Some(conn) = pool.idle.pop() {
                if conn.idle_since.elapsed() <= idle_for {
                    taken = Some(conn);
                    break;
                }
                pool.open -= 1;
            }
            if let Some(conn) = taken {
                // The staleness check is a system call: made outside the lock.
                drop(pool);
                if !conn.is_stale() {
                    return Ok(Lease { conn, reused: true });
                }
                self.release(None);
                continue;
            }
            if pool.open < pool.limit {
                pool.open += 1;
                drop(pool);
                return match Conn::connect(&self.addr, connect_timeout) {
                    Ok(conn) => Ok(Lease {
                        conn,
                        reused: false,
                    }),
                    Err(e) => {
                        self.release(None);
                        Err(e)
                    }
                };
            }
            if let Some(q) = queue {
                if q.woken {
                    pool.wakers.push_front(q.waker.clone());
                } else {
                    pool.wakers.push_back(q.waker.clone());
                }
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "all {} connections to {} busy for {wait:?}",
                        pool.limit, self.addr
                    ),
                ));
            }
            pool.waiting += 1;
            let mut pool = self
                .freed
                .wait_timeout(pool, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            pool.waiting -= 1;
        }
    }

    /// Gives a connection back: kept idle when `Some`, else closed; wakes one waiter.
    pub fn release(&self, conn: Option<Conn>) {
        let mut pool = lock(&self.pool);
        match conn {
            Some(mut c) => {
                c.uses += 1;
                c.idle_since = Instant::now();
                pool.idle.push(c);
            }
            None => pool.open -= 1,
        }
        let waiting = pool.waiting > 0;
        let parked = pool.wakers.pop_front();
        drop(pool);
        if waiting {
            self.freed.notify_one();
        }
        if let Some(w) = parked {
            w.wake();
        }
    }

    /// A parked request stops waiting (it left, or timed out): its waker leaves the queue,
    /// and if it had been woken already, the connection it was woken for goes to the next.
    pub fn forget_waker(&self, waker: &Waker) {
        let mut pool = lock(&self.pool);
        let before = pool.wakers.len();
        pool.wakers.retain(|w| !w.will_wake(waker));
        let next = if pool.wakers.len() == before {
            pool.wakers.pop_front()
        } else {
            None
        };
        drop(pool);
        if let Some(w) = next {
            w.wake();
        }
    }

    /// Closes idle connections older than `idle_for` (the reaper calls this).
    pub fn expire_idle(&self, idle_for: Duration) {
        let mut pool = lock(&self.pool);
        let before = pool.idle.len();
        pool.idle.retain(|c| c.idle_since.elapsed() <= idle_for);
        let closed = before - pool.idle.len();
        pool.open -= closed;
        let waiting = pool.waiting > 0;
        drop(pool);
        if closed > 0 && waiting {
            self.freed.notify_all();
        }
    }

    /// Out of rotation now.
    pub fn is_ejected(&self) -> bool {
        lock(&self.health).ejected_until.is_some()
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A try starts.
    pub fn started(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A try ended (either way).
    pub fn stopped(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// A try failed safely and the request goes out again.
    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// A try succeeded: the count of consecutive failures starts over.
    pub fn succeeded(&self) {
        lock(&self.health).failures = 0;
    }

    /// A try failed; after `eject_after` consecutive failures the backend leaves the
    /// rotation for its backoff (one log line).
    pub fn failed(&self, eject_after: u32, why: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut h = lock(&self.health);
        h.failures = h.failures.saturating_add(1);
        if h.failures >= eject_after && h.ejected_until.is_none() {
            h.ejected_until = Some(Instant::now() + h.backoff);
            self.ejections.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "cgate: fcgi: backend {} ejected for {:?} after {} consecutive failures (last: {why})",
                self.addr, h.backoff, h.failures
            );
        }
    }

    /// If the backoff is over, probes the backend with GET_VALUES (no app call): back in
    /// rotation when it answers (one log line), else out for twice as long.
    pub fn probe_if_due(&self, connect_timeout: Duration) {
        match lock(&self.health).ejected_until {
            Some(until) if until <= Instant::now() => {}
            _ => return,
        }
        let result =
            Conn::connect(&self.addr, connect_timeout).and_then(|mut c| {
                match query_values(&mut c, PROBE_TIMEOUT) {
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(()),
                    other => other.map(|_| ()),
                }
            });
        let mut h = lock(&self.health);
        match result {
            Ok(()) => {
                h.failures = 0;
                h.ejected_until = None;
                h.backoff = FIRST_BACKOFF;
                eprintln!(
                    "cgate: fcgi: backend {} returned to rotation (probe answered)",
                    self.addr
                );
            }
            Err(_) => {
                h.backoff = (h.backoff * 2).min(MAX_BACKOFF);
                h.ejected_until = Some(Instant::now() + h.backoff);
            }
        }
    }

    /// The counters now.
    pub fn stats(&self) -> BackendStats {
        let pool = lock(&self.pool);
        BackendStats {
            addr: self.addr.to_string(),
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            in_flight: self.in_flight(),
            ejections: self.ejections.load(Ordering::Relaxed),
            ejected: self.is_ejected(),
            open: pool.open,
            limit: pool.limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn the_pool_never_exceeds_its_bound_and_reuses_what_comes_back() {
        let dir = std::env::temp_dir().join(format!("cgate-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.sock");
        let _ = std::fs::remove_file(&path);
        let _listener = UnixListener::bind(&path).unwrap();
        let b = Backend::new(BackendAddr::Unix(path.clone()), 2);
        let (idle, connect, wait) = (
            Duration::from_secs(60),
            Duration::from_secs(1),
            Duration::from_millis(20),
        );
        let one = b.lease(false, idle, connect, wait, None).unwrap();
        let two = b.lease(false, idle, connect, wait, None).unwrap();
        assert!(!one.reused && !two.reused);
        let busy = b.lease(false, idle, connect, wait, None).unwrap_err();
        assert_eq!(busy.kind(), io::ErrorKind::ResourceBusy);
        assert_eq!((b.stats().open, b.stats().limit), (2, 2));
        b.release(Some(one.conn));
        let again = b.lease(false, idle, connect, wait, None).unwrap();
        assert!(again.reused, "the returned connection is reused");
        b.release(None);
        b.release(Some(again.conn));
        assert_eq!(b.stats().open, 1);
        b.expire_idle(Duration::ZERO);
        assert_eq!(b.stats().open, 0);
        drop(two);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn consecutive_failures_eject_and_a_success_resets_the_count() {
        let b = Backend::new(BackendAddr::Tcp("127.0.0.1:9".into()), 4);
        b.failed(2, "one");
        b.succeeded();
        b.failed(2, "two");
        assert!(
            !b.is_ejected(),
            "a success between failures starts the count over"
        );
        b.failed(2, "three");
        assert!(b.is_ejected());
        b.failed(2, "four");
        let s = b.stats();
        assert_eq!((s.errors, s.ejections, s.ejected), (4, 1, true));
        b.started();
        b.retried();
        assert_eq!(
            (b.stats().requests, b.stats().in_flight, b.stats().retries),
            (1, 1, 1)
        );
        b.stopped();
        assert_eq!(b.in_flight(), 0);
    }
}
