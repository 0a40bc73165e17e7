//! Event loops over one epoll set: requests run inline, and a watchdog replaces loops held up by slow apps.
//!
//! Every connection sits in one shared epoll set, armed one-shot, so exactly one thread
//! handles it at a time and an idle kept-alive connection costs no thread at all. `--workers`
//! loop threads wait in `epoll_wait`, take a small batch of ready connections and serve each
//! complete request inline: on a busy server one wake-up serves several requests, and a
//! request costs a `recv`, a `send` and an `epoll_ctl`, with no hand-off between threads.
//!
//! An app may block (a CGI script, a database, a slow upload). When a loop thread has been
//! inside one request for more than [`SLOW_REQUEST`], the watchdog detaches it: the rest of
//! its batch goes back to the epoll set for the other loops, and a spare thread (started if
//! needed, up to `--max-conns` more) takes its place. When the slow request ends, the thread
//! rejoins the loops if one is missing, or waits as a spare and exits after [`SPARE_LINGER`].

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use super::responder::{ConnConfig, ConnState, Next, Serving, on_readable};
use crate::gateway::App;
use crate::net::listener::{Listener, Stream};
use crate::ops::notrun::NotRun;
use nix::sys::eventfd::{EfdFlags, EventFd};

/// A loop thread inside one request for longer than this is replaced by a spare.
pub const SLOW_REQUEST: Duration = Duration::from_millis(2);
/// A spare thread with nothing to do exits after this long.
pub const SPARE_LINGER: Duration = Duration::from_secs(5);
/// A loop thread running (not blocked) in one request for longer than this is replaced too.
pub const HOGGING: Duration = Duration::from_millis(50);
/// Ready connections one loop thread takes per `epoll_wait`.
pub(super) const BATCH: usize = 8;
/// Stack size of pool threads: address space only; touched pages cost memory.
pub(super) const STACK_SIZE: usize = 512 * 1024;
pub(super) const LISTENER_KEY: u64 = 0;
/// The key of the eventfd that says parked requests were woken (see [`Shared::woken`]).
pub(super) const WAKE_KEY: u64 = 1 << 63;
/// Set in the key of a parked request's own descriptor (the rest is its connection's key).
pub(super) const PARK_BIT: u64 = 1 << 62;
/// On a reload or a stop, idle kept-alive connections are closed once unused for this long.
const RETIRE_QUIET_MS: u64 = 1000;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) struct Slot {
    pub(super) stream: Arc<Stream>,
    pub(super) state: Mutex<ConnState>,
    pub(super) registered: AtomicBool,
    pub(super) busy: AtomicBool,
    /// Milliseconds (pool clock) of the last readiness event handled.
    pub(super) last: AtomicU64,
    /// Milliseconds when the current incomplete request head started arriving; 0 if none.
    pub(super) partial_since: AtomicU64,
    /// A request has started on this connection (a reload closes only such idle ones).
    pub(super) served: AtomicBool,
    /// The connection is in its lingering close (its last reply complete).
    pub(super) lingering: AtomicBool,
    /// Its request is listed in [`crate::ops::arriving`] (reading its body ahead).
    pub(super) arriving: AtomicBool,
    /// The requests of the next event may have waited (a fresh connection, or the peer
    /// hung up): they run only if the connection is still there ([`NotRun`]).
    pub(super) check_peer: AtomicBool,
    /// Wakes this connection's parked request (see [`crate::gateway::deferred`]).
    pub(super) waker: std::task::Waker,
    /// Pool-clock milliseconds when the parked request's wait gives up; 0: none.
    pub(super) park_deadline: AtomicU64,
    /// The socket is armed in the epoll set and no event for it has been taken since.
    pub(super) armed: AtomicBool,
}

pub(super) struct Worker {
    /// Kernel thread id, to tell a thread blocked in an app from one merely preempted.
    pub(super) tid: std::sync::atomic::AtomicI32,
    /// Pool-clock milliseconds + 1 when the current event started; 0 when waiting.
    pub(super) busy_since: AtomicU64,
    pub(super) detached: AtomicBool,
    pub(super) pending: Mutex<VecDeque<u64>>,
}

/// Threads parked as spares, and wake-ups handed to them.
#[derive(Default)]
pub(super) struct Spares {
    pub(super) parked: usize,
    pub(super) tokens: usize,
}

/// Settings of the pool.
pub struct PoolConfig {
    /// Loop threads (`--workers`).
    pub workers: usize,
    /// Most connections open at once (`--max-conns`).
    pub max_conns: usize,
    /// Peers allowed on TCP (FCGI_WEB_SERVER_ADDRS), if restricted.
    pub allowed: Option<Vec<IpAddr>>,
    /// Per-connection settings.
    pub conn: ConnConfig,
}

/// The running pool; [`Pool::shutdown`] stops it gracefully.
pub struct Pool {
    sh: Arc<Shared>,
}

pub(super) struct Shared {
    pub(super) epoll: Epoll,
    pub(super) listener: Listener,
    pub(super) app: Arc<dyn App>,
    pub(super) cfg: PoolConfig,
    pub(super) clock: Instant,
    pub(super) conns: Mutex<HashMap<u64, Arc<Slot>>>,
    pub(super) next_key: AtomicU64,
    pub(super) workers: Mutex<Vec<Arc<Worker>>>,
    pub(super) loops: AtomicUsize,
    pub(super) threads: AtomicUsize,
    pub(super) spares: Mutex<Spares>,
    pub(super) spare_wake: Condvar,
    pub(super) handled: AtomicU64,
    pub(super) stopping: AtomicBool,
    pub(super) last_error: AtomicU64,
    /// Keys of parked requests woken since a loop last looked ([`WAKE_KEY`]).
    pub(super) woken: Mutex<Vec<u64>>,
    pub(super) wake_fd: EventFd,
    pub(super) this: std::sync::Weak<Shared>,
}

impl Shared {
    pub(super) fn now(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn log_rate_limited(&self, msg: &str) {
        let now = self.now() + 10_000;
        let last = self.last_error.load(SeqCst);
        if now.saturating_sub(last) >= 10_000
            && self
                .last_error
                .compare_exchange(last, now, SeqCst, SeqCst)
                .is_ok()
        {
            eprintln!("cgate: {msg}");
        }
    }

    pub(super) fn arm(&self, key: u64, slot: &Slot) -> bool {
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLONESHOT;
        let mut ev = EpollEvent::new(flags, key);
        // Set first: an event right after the call may clear it on another thread.
        slot.armed.store(true, SeqCst);
        let r = if slot.registered.swap(true, SeqCst) {
            self.epoll.modify(&*slot.stream, &mut ev)
        } else {
            self.epoll.add(&*slot.stream, ev)
        };
        r.is_ok()
    }

    /// Arms the socket unless it is armed already: a parked request's socket was armed when
    /// it parked and stays so until an event for it comes (which clears the flag).
    fn arm_once(&self, key: u64, slot: &Slot) -> bool {
        slot.armed.load(SeqCst) || self.arm(key, slot)
    }

    /// The peer of connection `key` hung up (an epoll event said so): its next requests
    /// are checked before they run. Not while stopping: the pool shuts reading sides down
    /// itself then, and what was sent before is still to be served.
    pub(super) fn peer_hung_up(&self, key: u64) {
        if self.stopping.load(SeqCst) {
            return;
        }
        if let Some(slot) = lock(&self.conns).get(&key) {
            slot.check_peer.store(true, SeqCst);
        }
    }

    /// Puts a taken but unhandled event back into the epoll set.
    pub(super) fn rearm(&self, key: u64) {
        if key == LISTENER_KEY || key == WAKE_KEY {
            // Level-triggered: still reported while connections (or wakes) wait.
            return;
        }
        if key & PARK_BIT != 0 {
            // A parked request's descriptor was ready: another loop gives it its turn.
            self.wake_shared(key & !PARK_BIT);
            return;
        }
        let slot = lock(&self.conns).get(&key).cloned();
        if let Some(slot) = slot {
            if !self.arm(key, &slot) {
                self.close(key, &slot);
            }
        }
    }

    /// Forgets a connection; its socket closes when the last reference goes, which also
    /// takes it out of the epoll set.
    pub(super) fn close(&self, key: u64, slot: &Slot) {
        if slot.arriving.swap(false, SeqCst) {
            crate::ops::arriving::forget(key);
        }
        if lock(&self.conns).remove(&key).is_some() {
            crate::ops::metrics::COUNTERS.conn_closed();
        }
    }

    /// Queues `keys` for this thread, or, if the watchdog has detached it meanwhile, puts
    /// them back into the epoll set for the other loops.
    pub(super) fn keep_or_return(&self, mine: &Worker, keys: Vec<u64>) {
        {
            let mut pending = lock(&mine.pending);
            if !mine.detached.load(SeqCst) {
                pending.extend(keys);
                return;
            }
        }
        for k in keys {
            self.rearm(k);
        }
    }

    pub(super) fn handle(&self, key: u64, mine: &Worker) {
        if key == LISTENER_KEY {
            self.accept_all(mine);
            return;
        }
        if key == WAKE_KEY {
            let _ = self.wake_fd.read();
            let keys = std::mem::take(&mut *lock(&self.woken));
            for k in keys {
                self.handle_parked(k);
            }
            return;
        }
        if key & PARK_BIT != 0 {
            self.handle_parked(key & !PARK_BIT);
            return;
        }
        let Some(slot) = lock(&self.conns).get(&key).cloned() else {
            return;
        };
        slot.armed.store(false, SeqCst);
        let stream = Arc::clone(&slot.stream);
        if let Some(next) = self.serve_conn(key, &slot, |st, s| Some(on_readable(st, &stream, s))) {
            self.after(key, &slot, next);
        }
    }

    /// Runs `step` (a connection's handler) on its state with the pool's hooks; then a
    /// request that parked, or still waits (`None`), has its wait set up, and a request
    /// still reading its body ahead of its app is listed for the status and the slow log.
    pub(super) fn serve_conn(
        &self,
        key: u64,
        slot: &Slot,
        step: impl FnOnce(&mut ConnState, &Serving<'_>) -> Option<Next>,
    ) -> Option<Next> {
        let mut st = lock(&slot.state);
        let busy = |on: bool| {
            slot.busy.store(on, SeqCst);
            slot.served.fetch_or(on, SeqCst);
            if on && slot.arriving.load(Relaxed) && slot.arriving.swap(false, SeqCst) {
                crate::ops::arriving::forget(key);
            }
        };
        let stop = || self.stopping.load(SeqCst);
        let guarded = NotRun(&*self.app);
        let check = slot.check_peer.load(Relaxed) && slot.check_peer.swap(false, SeqCst);
        let app: &dyn App = if check { &guarded } else { &*self.app };
        let serving = Serving {
            app,
            cfg: &self.cfg.conn,
            busy: &busy,
            stop: &stop,
            waker: &slot.waker,
        };
        let next = step(&mut st, &serving);
        if next.is_some() {
            // Its parked request (if any) is over; one parked since gets its own deadline.
            slot.park_deadline.store(0, SeqCst);
        }
        if next.is_none_or(|n| n == Next::Parked) {
            self.park(key, slot, &st);
        }
        let next = next?;
        match (next, st.waiting.as_mut()) {
            (Next::Wait { .. }, Some(p)) => {
                let listed = crate::ops::arriving::note(key, p);
                slot.arriving.fetch_or(listed, SeqCst);
            }
            _ if slot.arriving.load(Relaxed) && slot.arriving.swap(false, SeqCst) => {
                crate::ops::arriving::forget(key)
            }
            _ => {}
        }
        Some(next)
    }

    /// Acts on what a connection's handler said: re-arm, linger or close.
    pub(super) fn after(&self, key: u64, slot: &Arc<Slot>, next: Next) {
        self.handled.fetch_add(1, SeqCst);
        let now = self.now();
        slot.last.store(now, SeqCst);
        match next {
            Next::Wait { partial } => {
                if !partial {
                    slot.partial_since.store(0, SeqCst);
                } else if slot.partial_since.load(SeqCst) == 0 {
                    slot.partial_since.store(now.max(1), SeqCst);
                }
                if !self.arm_once(key, slot) {
                    self.close(key, slot);
                }
            }
            Next::Linger => {
                // The lingering close gets a request timeout from now.
                slot.lingering.store(true, SeqCst);
                slot.partial_since.store(now.max(1), SeqCst);
                if !self.arm(key, slot) {
                    self.close(key, slot);
                }
            }
            Next::Close => self.close(key, slot),
            Next::Parked => {
                // The socket is watched for ABORT_REQUEST or the web server's close.
                if !self.arm_once(key, slot) {
                    self.close(key, slot);
                }
            }
        }
    }
}

impl Pool {
    /// Starts the loop threads and the watchdog on `listener`.
    pub fn start(listener: Listener, app: Arc<dyn App>, cfg: PoolConfig) -> std::io::Result<Pool> {
        listener.set_nonblocking(true)?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        // The listener is level-triggered: any loop may accept while connections wait.
        epoll.add(
            &listener,
            EpollEvent::new(EpollFlags::EPOLLIN, LISTENER_KEY),
        )?;
        let workers = cfg.workers.max(1);
        let wake_fd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        epoll.add(&wake_fd, EpollEvent::new(EpollFlags::EPOLLIN, WAKE_KEY))?;
        let sh = Arc::new_cyclic(|this| Shared {
            epoll,
            listener,
            app,
            cfg: PoolConfig { workers, ..cfg },
            clock: Instant::now(),
            conns: Mutex::new(HashMap::new()),
            next_key: AtomicU64::new(1),
            workers: Mutex::new(Vec::new()),
            loops: AtomicUsize::new(0),
            threads: AtomicUsize::new(0),
            spares: Mutex::new(Spares::default()),
            spare_wake: Condvar::new(),
            handled: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            last_error: AtomicU64::new(0),
            woken: Mutex::new(Vec::new()),
            wake_fd,
            this: this.clone(),
        });
        for _ in 0..workers {
            sh.loops.fetch_add(1, SeqCst);
            sh.spawn();
        }
        let dog = Arc::clone(&sh);
        std::thread::Builder::new()
            .name("cgate-watchdog".into())
            .stack_size(STACK_SIZE)
            .spawn(move || dog.watchdog())?;
        Ok(Pool { sh })
    }

    /// Stops accepting, closes idle connections, lets requests in flight finish until
    /// `grace` has passed. Returns the number of connections still busy at the end.
    pub fn shutdown(&self, grace: Duration) -> usize {
        // Stopping is set first: once connections are refused, every loop sees it.
        self.sh.stopping.store(true, SeqCst);
        self.sh.listener.shutdown();
        let left = self.drain(grace);
        self.sh.listener.remove_file();
        left
    }

    /// Like [`Pool::shutdown`], but the listening socket stays open and listening (a reload
    /// successor accepts on it), and a connection that has not carried a request yet is
    /// left to deliver and finish its first one.
    pub fn retire(&self, grace: Duration) -> usize {
        self.drain(grace)
    }

    /// Stops taking new connections (the listening socket stays open for a successor);
    /// connections already accepted are served on.
    pub fn stop_accepting(&self) {
        self.sh.stopping.store(true, SeqCst);
        let _ = self.sh.epoll.delete(&self.sh.listener);
    }

    fn drain(&self, grace: Duration) -> usize {
        let sh = &self.sh;
        self.stop_accepting();
        let deadline = Instant::now().checked_add(grace);
        let request_timeout = sh.cfg.conn.request_timeout.as_millis() as u64;
        loop {
            let conns: Vec<Arc<Slot>> = lock(&sh.conns).values().cloned().collect();
            let now = sh.now();
            for slot in &conns {
                // A connection is closed between requests once the web server has left it
                // unused for a moment (one in use closes after its next reply), so a request
                // is rarely sent just as it closes. A request that is arriving (its head or
                // the body read ahead in the loop; a fresh connection counts from its
                // connect) is left to arrive and be served: it was accepted. A lingering
                // close (its reply complete) is simply closed.
                let quiet = now.saturating_sub(slot.last.load(SeqCst));
                let arriving = slot.partial_since.load(SeqCst) != 0 && !slot.lingering.load(SeqCst);
                let fresh = if slot.served.load(SeqCst) {
                    quiet < RETIRE_QUIET_MS
                } else {
                    quiet < request_timeout
                };
                if !slot.busy.load(SeqCst) && !arriving && !fresh {
                    // Its loop wakes, serves what has arrived and closes at the end.
                    slot.stream.shutdown_read();
                }
            }
            if conns.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
                return conns.len();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
