//! The loop threads: each waits in `epoll_wait` and serves its batch; a thread detached in a slow request rejoins or waits as a spare.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::epoll::{EpollEvent, EpollFlags};

use super::pool::{BATCH, LISTENER_KEY, SPARE_LINGER, STACK_SIZE, Shared, Worker, lock};

impl Shared {
    /// Takes loop thread `w` out of the loops (it stays in its slow request): its unhandled
    /// events go back to the epoll set and a spare takes its place. Idempotent.
    pub(super) fn detach(self: &Arc<Self>, w: &Worker) {
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
    pub(super) fn add_loop(self: &Arc<Self>) {
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

    pub(super) fn spawn(self: &Arc<Self>) {
        let sh = Arc::clone(self);
        let me = Arc::new(Worker {
            tid: AtomicI32::new(0),
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
    pub(super) fn after_detach(&self) -> bool {
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
}

/// Queues the events `epoll_wait` gave this thread, or, if the watchdog detached it since
/// (it may see a thread waiting for the queue's lock as blocked), puts them back into the
/// epoll set: a one-shot event dropped here would leave its connection unwatched for good.
/// `detach` sets the flag before it empties the queue under the same lock, so every event
/// is either queued before that or returned here.
fn take_events(sh: &Shared, me: &Worker, events: &[EpollEvent]) {
    let mut pending = lock(&me.pending);
    if !me.detached.load(SeqCst) {
        pending.extend(events.iter().map(EpollEvent::data));
        return;
    }
    drop(pending);
    for ev in events {
        sh.rearm(ev.data());
    }
}

pub(super) fn run_loop(sh: &Arc<Shared>, me: &Arc<Worker>) {
    me.tid.store(nix::unistd::gettid().as_raw(), SeqCst);
    // Deferred bodies park here: a request waiting on a backend holds no loop thread.
    crate::gateway::deferred::set_parking(true);
    super::parked::enter_loop(sh);
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
        let hung_up = EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR;
        for ev in &events[..n] {
            if ev.data() != LISTENER_KEY && ev.events().intersects(hung_up) {
                sh.peer_hung_up(ev.data());
            }
        }
        take_events(sh, me, &events[..n]);
        loop {
            me.busy_since.store(sh.now() + 1, SeqCst);
            let Some(key) = lock(&me.pending).pop_front() else {
                me.busy_since.store(0, SeqCst);
                break;
            };
            sh.handle(key, me);
            sh.run_local_wakes(|| me.detached.load(SeqCst));
            me.busy_since.store(0, SeqCst);
            if me.detached.load(SeqCst) {
                break;
            }
        }
    }
    sh.threads.fetch_sub(1, SeqCst);
    lock(&sh.workers).retain(|w| !Arc::ptr_eq(w, me));
}
