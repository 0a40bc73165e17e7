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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use super::responder::{ConnConfig, ConnState, Next, on_readable};
use crate::gateway::App;
use crate::net::listener::{Listener, Stream};

/// A loop thread inside one request for longer than this is replaced by a spare.
pub const SLOW_REQUEST: Duration = Duration::from_millis(2);
/// A spare thread with nothing to do exits after this long.
pub const SPARE_LINGER: Duration = Duration::from_secs(5);
/// A loop thread running (not blocked) in one request for longer than this is replaced too.
pub const HOGGING: Duration = Duration::from_millis(50);
/// Ready connections one loop thread takes per `epoll_wait`.
const BATCH: usize = 8;
/// Stack size of pool threads: address space only; touched pages cost memory.
const STACK_SIZE: usize = 512 * 1024;
const LISTENER_KEY: u64 = 0;
/// On a reload, idle kept-alive connections are closed once unused for this long.
const RETIRE_QUIET_MS: u64 = 200;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Slot {
    stream: Arc<Stream>,
    state: Mutex<ConnState>,
    registered: AtomicBool,
    busy: AtomicBool,
    /// Milliseconds (pool clock) of the last readiness event handled.
    last: AtomicU64,
    /// Milliseconds when the current incomplete request head started arriving; 0 if none.
    partial_since: AtomicU64,
    /// A request has started on this connection (a reload closes only such idle ones).
    served: AtomicBool,
}

struct Worker {
    /// Kernel thread id, to tell a thread blocked in an app from one merely preempted.
    tid: std::sync::atomic::AtomicI32,
    /// Pool-clock milliseconds + 1 when the current event started; 0 when waiting.
    busy_since: AtomicU64,
    detached: AtomicBool,
    pending: Mutex<VecDeque<u64>>,
}

/// Threads parked as spares, and wake-ups handed to them.
#[derive(Default)]
struct Spares {
    parked: usize,
    tokens: usize,
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

struct Shared {
    epoll: Epoll,
    listener: Listener,
    app: Arc<dyn App>,
    cfg: PoolConfig,
    clock: Instant,
    conns: Mutex<HashMap<u64, Arc<Slot>>>,
    next_key: AtomicU64,
    workers: Mutex<Vec<Arc<Worker>>>,
    loops: AtomicUsize,
    threads: AtomicUsize,
    spares: Mutex<Spares>,
    spare_wake: Condvar,
    handled: AtomicU64,
    stopping: AtomicBool,
    last_error: AtomicU64,
}

impl Shared {
    fn now(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn log_rate_limited(&self, msg: &str) {
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

    fn arm(&self, key: u64, slot: &Slot) -> bool {
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLONESHOT;
        let mut ev = EpollEvent::new(flags, key);
        let r = if slot.registered.swap(true, SeqCst) {
            self.epoll.modify(&*slot.stream, &mut ev)
        } else {
            self.epoll.add(&*slot.stream, ev)
        };
        r.is_ok()
    }

    /// Puts a taken but unhandled event back into the epoll set.
    fn rearm(&self, key: u64) {
        if key == LISTENER_KEY {
            // Level-triggered: still reported while connections wait.
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
    fn close(&self, key: u64, _slot: &Slot) {
        if lock(&self.conns).remove(&key).is_some() {
            crate::ops::metrics::COUNTERS.conn_closed();
        }
    }

    fn accept_all(&self, mine: &Worker) {
        let mut fresh = Vec::new();
        while fresh.len() < 64 {
            let (stream, peer) = match self.listener.accept_nonblocking(self.cfg.allowed.is_some())
            {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.log_rate_limited(&format!("accept failed: {e}"));
                    break;
                }
            };
            if let (Some(allowed), Some(ip)) = (&self.cfg.allowed, peer) {
                if !allowed.contains(&ip) {
                    eprintln!("cgate: refused connection from {ip} (not in FCGI_WEB_SERVER_ADDRS)");
                    continue;
                }
            }
            if lock(&self.conns).len() >= self.cfg.max_conns {
                crate::ops::metrics::COUNTERS.conn_rejected();
                self.log_rate_limited(&format!(
                    "refusing connections: {} open (--max-conns)",
                    self.cfg.max_conns
                ));
                continue;
            }
            let key = self.next_key.fetch_add(1, SeqCst);
            let stream = Arc::new(stream);
            let slot = Arc::new(Slot {
                state: Mutex::new(ConnState::new(Arc::clone(&stream), &self.cfg.conn)),
                stream,
                registered: AtomicBool::new(false),
                busy: AtomicBool::new(false),
                last: AtomicU64::new(self.now()),
                partial_since: AtomicU64::new(0),
                served: AtomicBool::new(false),
            });
            lock(&self.conns).insert(key, slot);
            crate::ops::metrics::COUNTERS.conn_opened();
            fresh.push(key);
        }
        // The web server usually writes its request right after connecting: try at once.
        self.keep_or_return(mine, fresh);
    }

    /// Queues `keys` for this thread, or, if the watchdog has detached it meanwhile, puts
    /// them back into the epoll set for the other loops.
    fn keep_or_return(&self, mine: &Worker, keys: Vec<u64>) {
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

    fn handle(&self, key: u64, mine: &Worker) {
        if key == LISTENER_KEY {
            self.accept_all(mine);
            return;
        }
        let Some(slot) = lock(&self.conns).get(&key).cloned() else {
            return;
        };
        let next = {
            let mut st = lock(&slot.state);
            let busy = |on: bool| {
                slot.busy.store(on, SeqCst);
                slot.served.fetch_or(on, SeqCst);
            };
            let stop = || self.stopping.load(SeqCst);
            on_readable(&mut st, &*self.app, &self.cfg.conn, &busy, &stop)
        };
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
                if !self.arm(key, &slot) {
                    self.close(key, &slot);
                }
            }
            Next::Close => self.close(key, &slot),
        }
    }

    /// Takes loop thread `w` out of the loops (it stays in its slow request): its unhandled
    /// events go back to the epoll set and a spare takes its place. Idempotent.
    fn detach(self: &Arc<Self>, w: &Worker) {
        if w.detached.swap(true, SeqCst) {
            return;
        }
        self.loops.fetch_sub(1, SeqCst);
        let keys: Vec<u64> = lock(&w.pending).drain(..).collect();
        for k in keys {
            self.rearm(k);
        }
        if !self.stopping.load(SeqCst) {
            self.add_loop();
        }
    }

    /// Adds a loop thread: wakes a spare or starts a thread.
    fn add_loop(self: &Arc<Self>) {
        self.loops.fetch_add(1, SeqCst);
        {
            let mut s = lock(&self.spares);
            if s.parked > s.tokens {
                s.tokens += 1;
                self.spare_wake.notify_one();
                return;
            }
        }
        if self.threads.load(SeqCst) >= self.cfg.workers + self.cfg.max_conns {
            self.loops.fetch_sub(1, SeqCst);
            self.log_rate_limited("all threads are busy in slow requests");
            return;
        }
        self.spawn();
    }

    fn spawn(self: &Arc<Self>) {
        let sh = Arc::clone(self);
        let me = Arc::new(Worker {
            tid: std::sync::atomic::AtomicI32::new(0),
            busy_since: AtomicU64::new(0),
            detached: AtomicBool::new(false),
            pending: Mutex::new(VecDeque::new()),
        });
        lock(&self.workers).push(Arc::clone(&me));
        self.threads.fetch_add(1, SeqCst);
        let r = std::thread::Builder::new()
            .name("cgate-loop".into())
            .stack_size(STACK_SIZE)
            .spawn(move || run_loop(&sh, &me));
        if let Err(e) = r {
            self.threads.fetch_sub(1, SeqCst);
            self.loops.fetch_sub(1, SeqCst);
            eprintln!("cgate: cannot start a thread: {e}");
        }
    }

    /// A detached thread whose slow request ended: rejoin, or wait as a spare. Returns
    /// false when the thread should exit.
    fn after_detach(&self) -> bool {
        let target = self.cfg.workers;
        let mut n = self.loops.load(SeqCst);
        while n < target {
            match self.loops.compare_exchange(n, n + 1, SeqCst, SeqCst) {
                Ok(_) => return true,
                Err(cur) => n = cur,
            }
        }
        let start = Instant::now();
        let mut s = lock(&self.spares);
        s.parked += 1;
        loop {
            if s.tokens > 0 {
                // add_loop counted this thread as a loop already.
                s.tokens -= 1;
                s.parked -= 1;
                return true;
            }
            let waited = start.elapsed();
            if waited >= SPARE_LINGER || self.stopping.load(SeqCst) {
                s.parked -= 1;
                return false;
            }
            s = self
                .spare_wake
                .wait_timeout(s, SPARE_LINGER - waited)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn watchdog(self: &Arc<Self>) {
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

fn run_loop(sh: &Arc<Shared>, me: &Arc<Worker>) {
    me.tid.store(nix::unistd::gettid().as_raw(), SeqCst);
    // An app or the responder about to wait detaches this thread at once (no watchdog delay).
    let (hook_sh, hook_me) = (Arc::downgrade(sh), Arc::downgrade(me));
    crate::gateway::blocking::set_hook(Some(Box::new(move || {
        if let (Some(sh), Some(me)) = (hook_sh.upgrade(), hook_me.upgrade()) {
            if me.busy_since.load(SeqCst) != 0 {
                sh.detach(&me);
            }
        }
    })));
    let mut events = [EpollEvent::empty(); BATCH];
    loop {
        if me.detached.load(SeqCst) {
            if !sh.after_detach() {
                break;
            }
            me.detached.store(false, SeqCst);
        }
        let n = match sh.epoll.wait(&mut events, 1000u16) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                sh.log_rate_limited(&format!("epoll_wait failed: {e}"));
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        lock(&me.pending).extend(events.iter().take(n).map(EpollEvent::data));
        loop {
            me.busy_since.store(sh.now() + 1, SeqCst);
            let Some(key) = lock(&me.pending).pop_front() else {
                me.busy_since.store(0, SeqCst);
                break;
            };
            sh.handle(key, me);
            me.busy_since.store(0, SeqCst);
            if me.detached.load(SeqCst) {
                break;
            }
        }
    }
    sh.threads.fetch_sub(1, SeqCst);
    lock(&sh.workers).retain(|w| !Arc::ptr_eq(w, me));
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
        let sh = Arc::new(Shared {
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
        self.sh.listener.shutdown();
        let left = self.drain(grace, false);
        self.sh.listener.remove_file();
        left
    }

    /// Like [`Pool::shutdown`], but the listening socket stays open and listening (a reload
    /// successor accepts on it), and a connection that has not carried a request yet is
    /// left to deliver and finish its first one.
    pub fn retire(&self, grace: Duration) -> usize {
        self.drain(grace, true)
    }

    fn drain(&self, grace: Duration, keep_fresh: bool) -> usize {
        let sh = &self.sh;
        sh.stopping.store(true, SeqCst);
        let _ = sh.epoll.delete(&sh.listener);
        let deadline = Instant::now().checked_add(grace);
        let request_timeout = sh.cfg.conn.request_timeout.as_millis() as u64;
        loop {
            let conns: Vec<Arc<Slot>> = lock(&sh.conns).values().cloned().collect();
            let now = sh.now();
            for slot in &conns {
                // On a reload, a connection is closed between requests once the web server
                // has left it unused for a moment (one in use closes after its next reply),
                // so a request is rarely sent just as it closes; one that never carried a
                // request is left to deliver its first.
                let quiet = now.saturating_sub(slot.last.load(SeqCst));
                let fresh = keep_fresh
                    && if slot.served.load(SeqCst) {
                        quiet < RETIRE_QUIET_MS
                    } else {
                        quiet < request_timeout
                    };
                if !slot.busy.load(SeqCst) && !fresh {
                    slot.stream.shutdown();
                }
            }
            if conns.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
                return conns.len();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
