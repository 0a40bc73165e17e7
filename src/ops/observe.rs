//! The app wrapper that feeds operations: request id, requests in flight, counters, access log, status path.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Instant;

use super::access::{self, Entry};
use super::clock::Utc;
use super::metrics::{COUNTERS, Outcome};
use super::{OpsOptions, REQUEST_ID};
use crate::gateway::driver::{drive_parking, panic_message};
use crate::gateway::input::BodyLength;
use crate::gateway::{App, AppError, Body, Environ, Head, Input, Request, Response, Sink};

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

/// Passes the inner response to the outer one, counting what goes out; small bodies are
/// collected so a short reply still leaves in one write.
pub(super) struct Forward<'o, 's> {
    pub(super) outer: &'o mut Response<'s>,
    pub(super) buf: Vec<u8>,
    pub(super) status: u16,
    pub(super) bytes: u64,
    pub(super) waiting: &'o AtomicU8,
}

const COLLECT: usize = 16 * 1024;

impl Forward<'_, '_> {
    fn pass(&mut self, last: bool) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        self.waiting.store(Waiting::Client as u8, Relaxed);
        let r = if last {
            self.outer.write_full(&buf)
        } else {
            self.outer.write(&buf)
        };
        self.waiting.store(Waiting::App as u8, Relaxed);
        self.buf = buf;
        self.buf.clear();
        r
    }
}

impl Sink for Forward<'_, '_> {
    fn send_head(&mut self, head: &Head) -> io::Result<()> {
        self.status = head.code();
        self.outer
            .start_head(head.clone())
            .map_err(io::Error::other)
    }

    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.bytes += chunk.len() as u64;
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= COLLECT {
            self.pass(false)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.pass(false)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.pass(true)
    }

    fn abort(&mut self) {
        self.buf.clear();
    }

    fn client_gone(&mut self) -> bool {
        self.outer.client_gone()
    }

    fn watch_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.outer.watch_fd()
    }
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

/// The error stream with `[ID] ` at the start of every line.
pub(super) struct Prefixed<'x> {
    pub(super) inner: &'x mut dyn Write,
    pub(super) id: &'x str,
    pub(super) line_start: bool,
}

impl Write for Prefixed<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut out = Vec::with_capacity(data.len() + self.id.len() + 3);
        for piece in data.split_inclusive(|&b| b == b'\n') {
            if self.line_start {
                out.push(b'[');
                out.extend_from_slice(self.id.as_bytes());
                out.extend_from_slice(b"] ");
            }
            out.extend_from_slice(piece);
            self.line_start = piece.ends_with(b"\n");
        }
        self.inner.write_all(&out)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
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

/// The inner app's deferred body, parked with its response and error-stream state.
pub(super) struct InnerParked {
    pub(super) body: Box<dyn crate::gateway::Deferred>,
    pub(super) resp: crate::gateway::response::Suspended,
    pub(super) line_start: bool,
}

pub(super) fn outcome_of(r: &Result<(), AppError>, head_sent: bool) -> Outcome {
    let io_kind = |e: &AppError| e.downcast_ref::<io::Error>().map(io::Error::kind);
    match r {
        Ok(()) => Outcome::Complete,
        Err(e) if io_kind(e) == Some(io::ErrorKind::ConnectionAborted) => Outcome::Aborted,
        Err(e)
            if matches!(
                io_kind(e),
                Some(io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
            ) =>
        {
            Outcome::ClientGone
        }
        Err(_) if head_sent => Outcome::Cut,
        Err(_) => Outcome::Complete,
    }
}

pub(super) fn env_str<'e>(env: &'e Environ, name: &str) -> &'e str {
    env.get_str(name).unwrap_or("")
}

/// How a request ended, for the counters and the access log.
pub(super) struct Done {
    /// Status sent (0: none).
    pub(super) status: u16,
    /// Body bytes sent.
    pub(super) bytes: u64,
    /// How it ended.
    pub(super) outcome: Outcome,
}

/// Counts a request's end and writes its access log line.
pub(super) fn finish(
    env: Option<&Environ>,
    id: &str,
    uri: &str,
    time: Utc,
    started: Instant,
    d: Done,
) {
    COUNTERS.request_ended(d.status, d.outcome);
    let Some(env) = env.filter(|_| access::enabled()) else {
        return;
    };
    access::record(&Entry {
        time,
        id,
        remote: env_str(env, "REMOTE_ADDR"),
        user: env_str(env, "REMOTE_USER"),
        method: env.method(),
        uri,
        protocol: env_str(env, "SERVER_PROTOCOL"),
        status: d.status,
        bytes: d.bytes,
        referer: env_str(env, "HTTP_REFERER"),
        agent: env_str(env, "HTTP_USER_AGENT"),
        ms: started.elapsed().as_millis() as u64,
        outcome: d.outcome.as_str(),
    });
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

/// What an observed request is accounted by when it ends (here, or after a parked body).
pub(super) struct Accounting {
    pub(super) inflight: Arc<InFlight>,
    pub(super) key: u64,
    pub(super) id: String,
    pub(super) uri: String,
    pub(super) time: Utc,
    pub(super) started: Instant,
    pub(super) waiting: Arc<AtomicU8>,
}

impl Accounting {
    /// The request ended with `r`: out of the in-flight list, counted, logged.
    pub(super) fn close(
        &self,
        r: &Result<(), AppError>,
        head_sent: bool,
        status: u16,
        bytes: u64,
        env: Option<&Environ>,
    ) {
        self.inflight.end(self.key);
        let outcome = outcome_of(r, head_sent);
        let (status, bytes) = match (r, head_sent, outcome) {
            (Err(_), false, Outcome::Complete) => (500, "Internal Server Error\n".len() as u64),
            (Err(_), false, _) => (0, 0),
            _ => (status, bytes),
        };
        let done = Done {
            status,
            bytes,
            outcome,
        };
        finish(env, &self.id, &self.uri, self.time, self.started, done);
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
