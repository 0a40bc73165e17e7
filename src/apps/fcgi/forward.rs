//! One forwarded request: pick a backend, lease a connection, run the exchange through the
//! bridge, and try again elsewhere only when the backend cannot have acted.

use std::io::{self, Read};

use super::Fcgi;
use super::backend::{Backend, Lease};
use super::balance;
use super::bridge::Bridge;
use crate::fastcgi::client::exchange::{Exchange, Failure, TryFacts, is_idempotent, retry_safe};
use crate::fastcgi::client::request::{self, Call};
use crate::fastcgi::proto::ProtocolStatus;
use crate::gateway::{AppError, Body, Request, Response};

/// A body up to this size is read before the first try, so a safe retry can send it again;
/// a longer one is streamed and a retry is possible only before its first byte was read.
pub const REPLAY_LIMIT: u64 = 64 * 1024;

thread_local! {
    /// The encoding buffer of this thread's last request head, kept for its next one.
    static HEAD_SPARE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Largest head buffer kept between requests (params of the usual size fit many times).
const HEAD_KEPT: usize = 64 * 1024;

/// A request head's buffer (empty at first), back to the thread's spare when dropped: a
/// forwarded request costs no allocation for its BEGIN_REQUEST and PARAMS.
struct SpareHead(Vec<u8>);

impl SpareHead {
    fn take() -> SpareHead {
        let mut v = HEAD_SPARE.with(|s| std::mem::take(&mut *s.borrow_mut()));
        if v.capacity() == 0 {
            v.reserve(4096 + 64);
        }
        SpareHead(v)
    }
}

impl Drop for SpareHead {
    fn drop(&mut self) {
        if self.0.capacity() <= HEAD_KEPT {
            let mut v = std::mem::take(&mut self.0);
            v.clear();
            HEAD_SPARE.with(|s| *s.borrow_mut() = v);
        }
    }
}

/// A failed try.
struct Tried {
    failure: Failure,
    output_seen: bool,
    client_side: bool,
    /// The pool had no free connection in time (not the backend's failure).
    busy: bool,
    /// The backend made no progress in time.
    timed_out: bool,
    what: String,
}

/// How the last try failed, for the answer when none is left.
enum LastError {
    Bad(String),
    Timeout(String),
    Busy(String),
}

fn answer<'a>(
    resp: &mut Response<'_>,
    req: &mut Request<'_>,
    last: LastError,
) -> Result<Body<'a>, AppError> {
    let (status, why) = match last {
        LastError::Bad(w) => ("502 Bad Gateway", w),
        LastError::Timeout(w) => ("504 Gateway Timeout", w),
        LastError::Busy(w) => ("503 Service Unavailable", w),
    };
    req.log(&format!("cgate: fcgi: {status}: {why}"));
    resp.start(status, [("Content-Type", "text/plain; charset=utf-8")])?;
    Ok(Body::Full(
        format!("{}\n", &status[4..]).into_bytes().into(),
    ))
}

fn read_replay(req: &mut Request<'_>, len: Option<u64>) -> Result<Option<Vec<u8>>, AppError> {
    match len {
        Some(n) if n > 0 && n <= REPLAY_LIMIT => {
            let mut v = Vec::with_capacity(n as usize);
            (&mut req.input).take(n).read_to_end(&mut v)?;
            Ok(Some(v))
        }
        _ => Ok(None),
    }
}

/// What one try came to.
enum Attempt {
    /// The request is answered (or must end with this error): no more tries.
    Done(Result<Body<'static>, AppError>),
    /// It failed before anything reached the client.
    Failed {
        t: Tried,
        started: bool,
        reused: bool,
    },
}

/// The parts of the request every try shares.
struct Shared<'h> {
    pooled: bool,
    idempotent: bool,
    head: &'h [u8],
    len: Option<u64>,
    replay: Option<Vec<u8>>,
}

/// Forwards `req` (see the module documentation of `fcgi:` for the rules).
pub(super) fn forward<'a>(
    app: &Fcgi,
    pooled: bool,
    req: &'a mut Request<'_>,
    resp: &mut Response<'_>,
) -> Result<Body<'a>, AppError> {
    let opts = &app.opts;
    let mut head = SpareHead::take();
    let head = &mut head.0;
    Exchange::new(1, pooled).begin(head, req.environ.iter());
    let key = opts
        .hash
        .as_ref()
        .map(|p| balance::hash(req.environ.get(p).unwrap_or_default()));
    let len = req.input.content_length();
    let replay = read_replay(req, len)?;
    let shared = Shared {
        pooled,
        idempotent: is_idempotent(req.environ.method().as_bytes()),
        head,
        len,
        replay,
    };
    // Bit i: backend i was tried (at most MAX_BACKENDS = 64 of them).
    let all = match app.backends.len() {
        n @ 0..64 => (1u64 << n) - 1,
        _ => u64::MAX,
    };
    let mut tried = 0u64;
    let mut last = LastError::Bad("no backend tried".into());
    for _ in 0..opts.tries {
        if tried == all {
            tried = 0;
        }
        let Some(i) = app.choose(tried, key) else {
            break;
        };
        tried |= 1 << i;
        let b = &app.backends[i];
        let (t, started, reused) = match attempt(app, b, &shared, req, resp) {
            None => break,
            Some(Attempt::Done(result)) => return result,
            Some(Attempt::Failed { t, started, reused }) => (t, started, reused),
        };
        if t.busy {
            last = LastError::Busy(t.what);
            continue;
        }
        if !(reused
            && matches!(
                t.failure,
                Failure::NotSent | Failure::Dropped | Failure::Eof
            ))
        {
            b.failed(opts.eject_after, &t.what);
        }
        let what = format!("{}: {}", b.addr, t.what);
        last = if t.timed_out {
            LastError::Timeout(what)
        } else {
            LastError::Bad(what)
        };
        let facts = TryFacts {
            output_seen: t.output_seen || started,
            reused,
            idempotent: shared.idempotent,
        };
        if !retry_safe(t.failure, facts) {
            break;
        }
        b.retried();
    }
    answer(resp, req, last)
}

impl Shared<'_> {
    /// The body is streamed from the client (not replayable): it is neither held nor empty.
    fn streamed(&self) -> bool {
        self.replay.is_none() && self.len != Some(0)
    }
}

/// What the exchange came to: the reply's tail and whether the connection may carry another
/// request, or the failed try.
type Outcome = Result<(io::Result<Vec<u8>>, bool), Tried>;

/// One exchange as it ended, with what the bridge saw of the reply.
struct Ran {
    outcome: Outcome,
    /// Reply bytes reached the bridge (the client may have some of them).
    started: bool,
    /// The reply's head was not a valid CGI response head (why).
    bad_reply: Option<String>,
}

/// One try on backend `b`; `None` when it cannot be made (a streamed body already began).
fn attempt(
    app: &Fcgi,
    b: &Backend,
    shared: &Shared<'_>,
    req: &mut Request<'_>,
    resp: &mut Response<'_>,
) -> Option<Attempt> {
    let opts = &app.opts;
    if shared.streamed() && req.input.consumed() > 0 {
        return None;
    }
    let mut lease = match b.lease(shared.pooled, opts.idle, opts.connect_timeout, opts.timeout) {
        Ok(l) => l,
        Err(e) => return Some(lease_failed(&e)),
    };
    let ran = exchange(app, b, shared, &mut lease, req, resp);
    Some(settle(app, b, shared, lease, ran, req, resp))
}

/// The try that found no connection: a connect error, or no free pooled one in time.
fn lease_failed(e: &io::Error) -> Attempt {
    let what = match e.kind() {
        io::ErrorKind::TimedOut => e.to_string(),
        _ => format!("connect: {e}"),
    };
    let t = Tried {
        failure: Failure::Connect,
        output_seen: false,
        client_side: false,
        busy: e.kind() == io::ErrorKind::ResourceBusy,
        timed_out: false,
        what,
    };
    Attempt::Failed {
        t,
        started: false,
        reused: false,
    }
}

/// Runs the request on the leased connection through a bridge to `resp`.
fn exchange(
    app: &Fcgi,
    b: &Backend,
    shared: &Shared<'_>,
    lease: &mut Lease,
    req: &mut Request<'_>,
    resp: &mut Response<'_>,
) -> Ran {
    let mut bytes: &[u8] = shared.replay.as_deref().unwrap_or_default();
    let body: Option<&mut dyn Read> = match (&shared.replay, shared.streamed()) {
        (Some(_), _) => Some(&mut bytes),
        (None, true) => Some(&mut req.input),
        (None, false) => None,
    };
    b.started();
    let mut bridge = Bridge::new(resp, &mut *req.errors);
    let call = Call {
        head: shared.head,
        body,
        body_len: shared.len,
        timeout: app.opts.timeout,
    };
    let result = request::run(
        &mut lease.conn,
        Exchange::new(1, shared.pooled),
        call,
        &mut bridge,
    );
    b.stopped();
    let started = bridge.started;
    let outcome = match result {
        Ok(end) if end.status == ProtocolStatus::RequestComplete => {
            Ok((bridge.finish(), end.reusable))
        }
        Ok(end) => Err(Tried {
            failure: Failure::Refused(end.status),
            output_seen: false,
            client_side: false,
            busy: false,
            timed_out: false,
            what: format!("END_REQUEST {:?}", end.status),
        }),
        Err(e) => Err(Tried {
            failure: e.failure,
            output_seen: e.output_seen,
            client_side: e.client_side,
            busy: false,
            timed_out: e.timed_out,
            what: e.what,
        }),
    };
    Ran {
        outcome,
        started,
        bad_reply: bridge.bad_reply.take(),
    }
}

/// Returns the connection to the pool (kept only after a clean reply) and decides what the
/// exchange means: the answer, an error that ends the request, or a failed try.
fn settle(
    app: &Fcgi,
    b: &Backend,
    shared: &Shared<'_>,
    lease: Lease,
    ran: Ran,
    req: &mut Request<'_>,
    resp: &mut Response<'_>,
) -> Attempt {
    let Ran {
        outcome,
        started,
        bad_reply,
    } = ran;
    let done = Attempt::Done;
    match outcome {
        Ok((Ok(tail), reusable)) if bad_reply.is_none() => {
            b.succeeded();
            b.release((shared.pooled && reusable).then_some(lease.conn));
            return done(Ok(Body::Full(tail.into())));
        }
        _ => b.release(None),
    }
    if let Some(why) = bad_reply {
        return done(answer(
            resp,
            req,
            LastError::Bad(format!("{}: {why}", b.addr)),
        ));
    }
    let t = match outcome {
        Err(t) => t,
        Ok((r, _)) => {
            let why = r.err().map(|e| e.to_string()).unwrap_or_default();
            return done(answer(
                resp,
                req,
                LastError::Bad(format!("{}: {why}", b.addr)),
            ));
        }
    };
    if t.client_side {
        let kind = if t.what.starts_with("request body") {
            io::ErrorKind::Other
        } else {
            io::ErrorKind::BrokenPipe
        };
        return done(Err(AppError::from(io::Error::new(kind, t.what))));
    }
    if started && resp.headers_sent() {
        b.failed(app.opts.eject_after, &t.what);
        let what = format!("{}: {} (reply cut)", b.addr, t.what);
        return done(Err(AppError::from(io::Error::other(what))));
    }
    Attempt::Failed {
        t,
        started,
        reused: lease.reused,
    }
}
