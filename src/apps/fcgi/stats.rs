//! The counters of every `fcgi:` backend in this process, for the operations status endpoint.

use std::sync::{Arc, Mutex, Weak};

use super::backend::{Backend, BackendStats};

static REGISTRY: Mutex<Vec<Weak<Backend>>> = Mutex::new(Vec::new());

/// Adds backends to the process-wide list (dropped apps fall out of it).
pub(crate) fn register(backends: &[Arc<Backend>]) {
    let mut r = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    r.retain(|w| w.strong_count() > 0);
    r.extend(backends.iter().map(Arc::downgrade));
}

/// Every live backend's counters (requests, errors, retries, in flight, ejections, pool).
pub fn all() -> Vec<BackendStats> {
    let r = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    r.iter()
        .filter_map(Weak::upgrade)
        .map(|b| b.stats())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_backends_are_listed_while_alive() {
        let app = super::super::Fcgi::from_spec("unix:/nonexistent/stats-test.sock").unwrap();
        let mine = |s: &BackendStats| s.addr == "unix:/nonexistent/stats-test.sock";
        let listed = all().into_iter().filter(mine).count();
        assert!(listed >= 1);
        let s = app.stats();
        assert_eq!(
            (s[0].requests, s[0].in_flight, s[0].ejected, s[0].limit),
            (0, 0, false, 8)
        );
        drop(app);
        assert_eq!(all().into_iter().filter(mine).count(), listed - 1);
    }
}
