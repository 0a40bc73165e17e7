//! Requests whose body is still being read ahead in the event loop (no thread, no app yet), for the status and the slow log.
//!
//! The pool notes a request here when an event leaves it waiting for more of its body and
//! forgets it when its app starts or its connection closes. A request that has no id yet
//! gets one now, added to its params under the configured id param, so the app, the access
//! log and the slow log later name it the same way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use std::time::Instant;

use crate::fastcgi::proto::Params;

/// One request reading its body ahead of the app.
#[derive(Debug)]
pub struct Arriving {
    /// Request id.
    pub id: String,
    /// REQUEST_METHOD.
    pub method: String,
    /// The request URI.
    pub uri: String,
    /// When it was first seen waiting for its body.
    pub since: Instant,
    /// Slow-log lines written for it (0, 1 or 2).
    pub slow_lines: AtomicU8,
}

static ON: AtomicBool = AtomicBool::new(false);
static TABLE: Mutex<Option<HashMap<u64, Arriving>>> = Mutex::new(None);

fn table() -> std::sync::MutexGuard<'static, Option<HashMap<u64, Arriving>>> {
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Turns the table on (the status or the slow log is on).
pub fn enable() {
    ON.store(true, Relaxed);
}

/// Whether requests are noted at all.
pub fn enabled() -> bool {
    ON.load(Relaxed)
}

fn text(p: &Params, name: &str) -> String {
    String::from_utf8_lossy(p.get(name.as_bytes()).unwrap_or_default()).into_owned()
}

/// REQUEST_URI, else SCRIPT_NAME + PATH_INFO + ?QUERY_STRING.
fn uri(p: &Params) -> String {
    let u = text(p, "REQUEST_URI");
    if !u.is_empty() {
        return u;
    }
    let mut s = text(p, "SCRIPT_NAME") + &text(p, "PATH_INFO");
    let q = text(p, "QUERY_STRING");
    if !q.is_empty() {
        s.push('?');
        s.push_str(&q);
    }
    s
}

/// Appends `name=value` to the params.
fn add_param(p: &mut Params, name: &str, value: &str) {
    let n = p.raw.len()..p.raw.len() + name.len();
    p.raw.extend_from_slice(name.as_bytes());
    let v = p.raw.len()..p.raw.len() + value.len();
    p.raw.extend_from_slice(value.as_bytes());
    p.pairs.push((n, v));
}

/// Notes the request of connection `key` as waiting for its body (once; later calls keep
/// the first time). Returns `true` when it is in the table.
pub fn note(key: u64, params: &mut Params) -> bool {
    if !enabled() {
        return false;
    }
    let mut t = table();
    let map = t.get_or_insert_with(HashMap::new);
    if map.contains_key(&key) {
        return true;
    }
    let name = super::request_id_param();
    let id = match params
        .get(name.as_bytes())
        .and_then(|v| std::str::from_utf8(v).ok())
    {
        Some(v) if super::inflight::valid_id(v) => v.to_owned(),
        Some(_) => super::inflight::new_id(),
        None => {
            let id = super::inflight::new_id();
            add_param(params, name, &id);
            id
        }
    };
    map.insert(
        key,
        Arriving {
            id,
            method: text(params, "REQUEST_METHOD"),
            uri: uri(params),
            since: Instant::now(),
            slow_lines: AtomicU8::new(0),
        },
    );
    true
}

/// Forgets connection `key`'s request (its app starts, or the connection closed).
pub fn forget(key: u64) {
    if let Some(map) = table().as_mut() {
        map.remove(&key);
    }
}

/// Calls `f` with every request noted (under the table's lock: keep it short).
pub fn each(mut f: impl FnMut(&Arriving)) {
    if let Some(map) = table().as_ref() {
        for a in map.values() {
            f(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_param_is_found_last() {
        let mut p = Params {
            raw: b"REQUEST_METHODPOSTPATH_INFO/up".to_vec(),
            pairs: vec![(0..14, 14..18), (18..27, 27..30)],
        };
        add_param(&mut p, "REQUEST_ID", "x-1");
        assert_eq!(p.get(b"REQUEST_ID"), Some(&b"x-1"[..]));
        assert_eq!(uri(&p), "/up");
        assert_eq!(text(&p, "REQUEST_METHOD"), "POST");
    }
}
