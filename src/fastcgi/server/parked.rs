//! Requests parked off the loop threads: their descriptors in the shared epoll set, their wakers, their deadlines.
//!
//! A request whose body waits on a descriptor (a backend's reply) is parked in its
//! connection's state. Its descriptor joins the epoll set one-shot under the connection's key
//! with [`PARK_BIT`] set; a body that waits for something else (a free backend connection)
//! is woken through its connection's waker, which lists the key and writes the pool's
//! eventfd. Either way one loop thread takes the connection's lock and gives the body a turn.
//! The watchdog wakes parked requests past their deadline.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use nix::errno::Errno;
use nix::sys::epoll::{EpollEvent, EpollFlags};

use super::conn_io::ConnState;
use super::pool::{PARK_BIT, Shared, Slot, lock};
use super::responder::{on_parked_ready, parked_body};
use crate::gateway::Interest;

thread_local! {
    /// On a loop thread: its pool and the parked requests woken by what it ran (a connection
    /// given back wakes the next request waiting for one), served before it waits again.
    static LOCAL: RefCell<(usize, Vec<u64>)> = const { RefCell::new((0, Vec::new())) };
}

/// Says the current thread is a loop thread of `sh` (wakes from it stay on it).
pub(super) fn enter_loop(sh: &Shared) {
    LOCAL.with(|l| l.borrow_mut().0 = sh as *const Shared as usize);
}

impl Shared {
    /// Lists `key` as woken: on one of this pool's loop threads, for that thread to serve
    /// once its current event is done (no system call); elsewhere on the shared list, and
    /// the eventfd tells a loop thread.
    pub(super) fn wake(&self, key: u64) {
        let me = self as *const Shared as usize;
        let local = LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            if l.0 == me {
                l.1.push(key);
                true
            } else {
                false
            }
        });
        if !local {
            self.wake_shared(key);
        }
    }

    /// Lists `key` on the shared list and tells a loop thread (from any thread).
    pub(super) fn wake_shared(&self, key: u64) {
        lock(&self.woken).push(key);
        let _ = self.wake_fd.write(1);
    }

    /// Serves the requests this thread woke (see [`Shared::wake`]); a detached thread hands
    /// them to the other loops instead.
    pub(super) fn run_local_wakes(&self, detached: impl Fn() -> bool) {
        loop {
            let Some(key) = LOCAL.with(|l| l.borrow_mut().1.pop()) else {
                return;
            };
            if detached() {
                self.wake_shared(key);
            } else {
                self.handle_parked(key);
            }
        }
    }

    /// The request of connection `key` was just parked: its descriptor goes into the epoll
    /// set (one-shot), its deadline to the watchdog.
    pub(super) fn park(&self, key: u64, slot: &Slot, st: &ConnState) {
        let Some(body) = parked_body(st) else {
            return;
        };
        let (fd, deadline) = (body.wait_for(), body.deadline());
        // In pool-clock milliseconds (+ 1: 0 means none), without reading the clock.
        let ms = deadline.map_or(0, |d| {
            let at = d.saturating_duration_since(self.clock).as_millis();
            u64::try_from(at).unwrap_or(u64::MAX / 4) + 1
        });
        slot.park_deadline.store(ms, SeqCst);
        let Some((fd, interest)) = fd else {
            return; // it waits for its waker
        };
        let flags = match interest {
            Interest::Read => EpollFlags::EPOLLIN,
            Interest::Write => EpollFlags::EPOLLOUT,
        } | EpollFlags::EPOLLONESHOT;
        let mut ev = EpollEvent::new(flags, key | PARK_BIT);
        // A kept backend connection stays in the set (disarmed) between its requests.
        let r = match self.epoll.modify(fd, &mut ev) {
            Err(Errno::ENOENT) => self.epoll.add(fd, ev),
            r => r,
        };
        if let Err(e) = r {
            // Cannot watch it: the request is woken at once and tries again.
            self.log_rate_limited(&format!("cannot watch a parked request's descriptor: {e}"));
            self.wake(key);
        }
    }

    /// Gives the parked request of connection `key` a turn (its descriptor is ready, its
    /// waker woke or its deadline passed).
    pub(super) fn handle_parked(&self, key: u64) {
        let Some(slot) = lock(&self.conns).get(&key).cloned() else {
            return;
        };
        let stream = Arc::clone(&slot.stream);
        let next = self.serve_conn(key, &slot, |st, s| {
            // Over already (a late event): nothing to do.
            st.parked.as_ref()?;
            on_parked_ready(st, &stream, s, false)
        });
        if let Some(next) = next {
            self.after(key, &slot, next);
        }
    }

    /// Wakes the parked requests whose wait has passed its deadline (the watchdog).
    pub(super) fn expire_parked(&self, now: u64) {
        let due: Vec<u64> = lock(&self.conns)
            .iter()
            .filter(|(_, s)| {
                let d = s.park_deadline.load(SeqCst);
                d != 0 && now >= d
            })
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            self.wake(k);
        }
    }
}

/// Wakes a parked request: its key goes on the woken list and the eventfd tells a loop.
struct SlotWake {
    key: u64,
    sh: std::sync::Weak<Shared>,
}

impl std::task::Wake for SlotWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(sh) = self.sh.upgrade() {
            sh.wake(self.key);
        }
    }
}

/// The waker of connection `key`'s parked requests.
pub(super) fn slot_waker(key: u64, sh: &std::sync::Weak<Shared>) -> std::task::Waker {
    std::task::Waker::from(Arc::new(SlotWake {
        key,
        sh: sh.clone(),
    }))
}
