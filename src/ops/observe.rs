//! The app wrapper that feeds operations: request id, requests in flight, counters, access log, status path.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Instant;

use super::access;
use super::accounting::{Accounting, Forward, Prefixed, env_str};
use super::clock::Utc;
use super::metrics::COUNTERS;
use super::observe_wait::InnerParked;
use super::{OpsOptions, REQUEST_ID};
use crate::gateway::driver::{drive_parking, panic_message};
use crate::gateway::input::BodyLength;
use crate::gateway::{App, AppError, Body, Environ, Input, Request, Response};

pub(super) use super::inflight::request_id;
pub use super::inflight::{InFlight, Running};
pub use super::waiting::Waiting;

/// Wraps the served app (see the module doc).
pub struct Observe {
    inner: Arc<dyn App>,
    inflight: Arc<InFlight>,
    id_param: String,
    status_path: Option<String>,
    status_any_addr: bool,
}

impl Observe {
    /// Wraps `inner` as `opts` configure.
    pub fn new(inner: Arc<dyn App>, opts: &OpsOptions) -> Self {
        Observe {
            inner,
            inflight: Arc::new(InFlight::default()),
            id_param: opts.request_id_param.clone(),
            status_path: opts.status_path.clone(),
            status_any_addr: opts.status_any_addr,
        }
    }

    /// The requests running now.
    pub fn inflight(&self) -> &Arc<InFlight> {
        &self.inflight
    }

    fn request_id(&self, env: &Environ) -> String {
        request_id(env, &self.id_param)
    }

    fn is_status(&self, env: &Environ, uri: &str) -> bool {
        let Some(p) = &self.status_path else {
            return false;
        };
        let path = uri.split('?').next().unwrap_or("");
        path == p && (self.status_any_addr || loopback(env.get_str("REMOTE_ADDR")))
    }
}

fn loopback(addr: Option<&str>) -> bool {
    match addr.and_then(|a| a.parse::<std::net::IpAddr>().ok()) {
        Some(std::net::IpAddr::V4(a)) => a.is_loopback(),
        Some(std::net::IpAddr::V6(a)) => {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

/// REQUEST_URI, or SCRIPT_NAME + PATH_INFO + ?QUERY_STRING when the web server sent none.
pub fn request_uri(env: &Environ) -> String {
    if let Some(u) = env.get("REQUEST_URI").filter(|u| !u.is_empty()) {
        return String::from_utf8_lossy(u).into_owned();
    }
    let mut s = String::from_utf8_lossy(env.script_name()).into_owned();
    s.push_str(&String::from_utf8_lossy(env.path_info()));
    if let Some(q) = env.get("QUERY_STRING").filter(|q| !q.is_empty()) {
        s.push('?');
        s.push_str(&String::from_utf8_lossy(q));
    }
    s
}

/// Reads the body on the app's behalf, noting while it waits for it.
struct Tracked<'x, 'r> {
    input: &'x mut Input<'r>,
    waiting: &'x AtomicU8,
}

impl Read for Tracked<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.waiting.store(Waiting::Body as u8, Relaxed);
        let r = self.input.read(buf);
        self.waiting.store(Waiting::App as u8, Relaxed);
        r
    }
}

/// Runs `app` over its own request: the same environ and body (read through [`Tracked`]),
/// the error stream [`Prefixed`] with the request id. A panic becomes the error the
/// outermost driver would make of it, so the request is still accounted for.
fn run_tracked(
    app: &dyn App,
    req: &mut Request<'_>,
    fwd: &mut Forward<'_, '_>,
    id: &str,
) -> Result<Option<InnerParked>, AppError> {
    let facts = req.environ.gateway;
    let environ = std::mem::replace(&mut req.environ, Environ::new(facts));
    let length = match req.input.content_length() {
        Some(n) => BodyLength::Exact(n.saturating_sub(req.input.consumed())),
        None => BodyLength::ToEnd { max: u64::MAX },
    };
    let mut tracked = Tracked {
        input: &mut req.input,
        waiting: fwd.waiting,
    };
    let mut errors = Prefixed {
        inner: &mut *req.errors,
        id,
        line_start: true,
    };
    let mut inner = Request::new(environ, Input::new(&mut tracked, length), &mut errors);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut resp = Response::new(fwd);
        drive_parking(app, &mut inner, &mut resp).map(|d| d.map(|body| (body, resp.suspend())))
    }))
    .unwrap_or_else(|p| Err(AppError::panic(panic_message(&*p))));
    inner.run_cleanups();
    let environ = std::mem::replace(&mut inner.environ, Environ::new(facts));
    drop(inner);
    req.environ = environ;
    let line_start = errors.line_start;
    r.map(|p| {
        p.map(|(body, resp)| InnerParked {
            body,
            resp,
            line_start,
        })
    })
}

impl App for Observe {
    fn call<'a>(
        &self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        let id = self.request_id(&req.environ);
        req.environ.set(REQUEST_ID, &id);
        let uri = request_uri(&req.environ);
        if self.is_status(&req.environ, &uri) {
            let query = env_str(&req.environ, "QUERY_STRING");
            return super::status::answer(query, &self.inflight, resp);
        }
        let time = Utc::now();
        let started = Instant::now();
        COUNTERS.request_started();
        let waiting = Arc::new(AtomicU8::new(Waiting::App as u8));
        let key = self.inflight.begin(Running {
            id: id.clone(),
            method: req.environ.method().to_owned(),
            uri: uri.clone(),
            started,
            thread: std::thread::current().name().unwrap_or("?").to_owned(),
            waiting: Arc::clone(&waiting),
            slow_lines: AtomicU8::new(0),
        });
        let acct = Accounting {
            inflight: Arc::clone(&self.inflight),
            key,
            id,
            uri,
            time,
            started,
            waiting,
        };
        let mut fwd = Forward {
            outer: resp,
            buf: Vec::new(),
            status: 0,
            bytes: 0,
            waiting: &acct.waiting,
        };
        let r = {
            let _current = super::waiting::Current::enter(&acct.waiting);
            run_tracked(&*self.inner, req, &mut fwd, &acct.id)
        };
        let r = match r {
            Ok(Some(parked)) => {
                let (buf, status, bytes) = (fwd.buf, fwd.status, fwd.bytes);
                let env = access::enabled().then(|| req.environ.clone());
                return Ok(Body::Deferred(Box::new(
                    super::observe_wait::ObserveWait::new(parked, acct, env, buf, status, bytes),
                )));
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        let (head_sent, status, bytes) = (fwd.outer.headers_sent(), fwd.status, fwd.bytes);
        acct.close(&r, head_sent, status, bytes, Some(&req.environ));
        r.map(|()| Body::Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::inflight::valid_id;

    #[test]
    fn ids_and_addresses() {
        assert!(valid_id("a1-b2"));
        assert!(!valid_id(""));
        assert!(!valid_id("a b"));
        assert!(!valid_id(&"x".repeat(65)));
        assert!(loopback(Some("127.0.0.1")));
        assert!(loopback(Some("::1")));
        assert!(loopback(Some("::ffff:127.0.0.2")));
        assert!(!loopback(Some("10.0.0.1")));
        assert!(!loopback(None));
    }
}
