//! Accepting connections: each becomes a slot in the pool, with its waker for parked requests.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use super::parked::slot_waker;
use super::pool::{Shared, Slot, Worker, lock};
use super::responder::ConnState;

impl Shared {
    /// Accepts the connections waiting on the listener (up to 64), each a new slot, and
    /// queues them for this thread: the web server usually writes right after connecting.
    pub(super) fn accept_all(&self, mine: &Worker) {
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
                // The first request's deadline runs from the connection's start.
                partial_since: AtomicU64::new(self.now().max(1)),
                served: AtomicBool::new(false),
                lingering: AtomicBool::new(false),
                arriving: AtomicBool::new(false),
                // It waited in the listen queue: its web server may have left meanwhile.
                check_peer: AtomicBool::new(true),
                waker: slot_waker(key, &self.this),
                park_deadline: AtomicU64::new(0),
                armed: AtomicBool::new(false),
            });
            lock(&self.conns).insert(key, slot);
            crate::ops::metrics::COUNTERS.conn_opened();
            fresh.push(key);
        }
        // The web server usually writes its request right after connecting: try at once.
        self.keep_or_return(mine, fresh);
    }
}
