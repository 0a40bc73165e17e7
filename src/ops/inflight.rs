//! The requests running now, and request ids: the web server's when usable, else one of ours.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use super::MAX_REQUEST_ID;
use super::waiting::Waiting;
use crate::gateway::Environ;

/// One request running now.
#[derive(Debug)]
pub struct Running {
    /// Request id.
    pub id: String,
    /// REQUEST_METHOD.
    pub method: String,
    /// The request URI.
    pub uri: String,
    /// When it started.
    pub started: Instant,
    /// The thread running it.
    pub thread: String,
    /// What it waits on ([`Waiting`] as u8).
    pub waiting: Arc<AtomicU8>,
    /// Slow-log lines written for it (0, 1 or 2).
    pub slow_lines: AtomicU8,
}

impl Running {
    /// What it waits on now.
    pub fn waiting(&self) -> Waiting {
        Waiting::from_u8(self.waiting.load(Relaxed))
    }
}

/// The requests running now.
#[derive(Debug, Default)]
pub struct InFlight {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Running>>,
}

impl InFlight {
    /// Lists `r`; the key ends it.
    pub(super) fn begin(&self, r: Running) -> u64 {
        let key = self.next.fetch_add(1, Relaxed);
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, r);
        key
    }

    /// Takes the request listed under `key` off.
    pub(super) fn end(&self, key: u64) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    /// Calls `f` with every running request (under the table's lock: keep it short).
    pub fn each(&self, mut f: impl FnMut(&Running)) {
        for r in self.map.lock().unwrap_or_else(|p| p.into_inner()).values() {
            f(r);
        }
    }
}

/// A new request id: this process's start (ms, hex) and pid, then a counter.
pub fn new_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static IDS: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        format!("{:x}{:x}", ms & 0xff_ffff_ffff, std::process::id())
    });
    format!("{prefix}-{}", IDS.fetch_add(1, Relaxed))
}

/// The request's id: the web server's (from param `id_param`) if usable, else a new one.
pub(super) fn request_id(env: &Environ, id_param: &str) -> String {
    match env.get_str(id_param) {
        Some(v) if valid_id(v) => v.to_owned(),
        _ => new_id(),
    }
}

/// Whether a web server's request id is taken as is.
pub(super) fn valid_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_REQUEST_ID
        && v.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
}
