//! What every try of a forwarded request shares ([`Plan`]: the encoded head, the body held for
//! a retry, the backends tried) and how one try's end is judged ([`settle`]): an answer, an
//! error that ends the request, or a failure after which another try may follow.

use std::io::{self, Read, Write};
use std::sync::Arc;

use super::Balancer;
use super::backend::{Backend, Lease};
use super::balance;
use super::bridge::Bridge;
use crate::fastcgi::client::exchange::{Exchange, Failure, TryFacts, is_idempotent, retry_safe};
use crate::fastcgi::client::request;
use crate::fastcgi::proto::ProtocolStatus;
use crate::gateway::{AppError, Body, Input, Request, Response};

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
pub(super) struct SpareHead(pub(super) Vec<u8>);

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
pub(super) struct Tried {
    pub(super) failure: Failure,
    pub(super) output_seen: bool,
    pub(super) client_side: bool,
    /// The pool had no free connection in time (not the backend's failure).
    pub(super) busy: bool,
    /// The backend made no progress in time.
    pub(super) timed_out: bool,
    pub(super) what: String,
}

/// How the last try failed, for the answer when none is left.
pub(super) enum LastError {
    Bad(String),
    Timeout(String),
    Busy(String),
}

/// The answer when no try is left: 502, 504 or 503 with a short page, and one log line.
pub(super) fn answer(
    resp: &mut Response<'_>,
    errors: &mut dyn Write,
    last: LastError,
) -> Result<Body<'static>, AppError> {
    let (status, why) = match last {
        LastError::Bad(w) => ("502 Bad Gateway", w),
        LastError::Timeout(w) => ("504 Gateway Timeout", w),
        LastError::Busy(w) => ("503 Service Unavailable", w),
    };
    let _ = writeln!(errors, "cgate: fcgi: {status}: {why}");
    resp.start(status, [("Content-Type", "text/plain; charset=utf-8")])?;
    Ok(Body::Full(
        format!("{}\n", &status[4..]).into_bytes().into(),
    ))
}

/// The body a try sends: held whole when it can be sent again (`replay`), else streamed
/// after the bytes read while finding out (`prefix`).
struct BodyPlan {
    len: Option<u64>,
    replay: Option<Vec<u8>>,
    pub(super) prefix: Vec<u8>,
}

/// Reads a body of up to [`REPLAY_LIMIT`] declared bytes. Where the request is parked
/// (`probe`), a body of unknown length is read up to the limit too: one that ends within it
/// is held (a GET's empty body costs nothing), a longer one is streamed after what was read.
fn read_replay(req: &mut Request<'_>, len: Option<u64>, probe: bool) -> Result<BodyPlan, AppError> {
    let mut plan = BodyPlan {
        len,
        replay: None,
        prefix: Vec::new(),
    };
    let limit = match len {
        Some(n) if n > 0 && n <= REPLAY_LIMIT => n,
        None if probe => REPLAY_LIMIT + 1,
        _ => return Ok(plan),
    };
    let mut v = Vec::with_capacity(len.map_or(0, |n| n as usize));
    (&mut req.input).take(limit).read_to_end(&mut v)?;
    match len {
        Some(_) => plan.replay = Some(v),
        None if v.len() as u64 > REPLAY_LIMIT => plan.prefix = v,
        None if v.is_empty() => plan.len = Some(0),
        None => {
            plan.len = Some(v.len() as u64);
            plan.replay = Some(v);
        }
    }
    Ok(plan)
}

/// What one try came to.
pub(super) enum Attempt {
    /// The request is answered (or must end with this error): no more tries.
    Done(Result<Body<'static>, AppError>),
    /// It failed before anything reached the client.
    Failed {
        t: Tried,
        started: bool,
        reused: bool,
    },
}

/// The request's side of a try: its body (read only when it is streamed) and error stream.
pub(super) struct ReqIo<'x, 'r> {
    pub(super) input: Option<&'x mut Input<'r>>,
    pub(super) errors: &'x mut dyn Write,
}

/// What every try of one request shares, and how far the tries have gone.
pub(super) struct Plan {
    pub(super) bal: Arc<Balancer>,
    pub(super) pooled: bool,
    idempotent: bool,
    pub(super) head: SpareHead,
    pub(super) len: Option<u64>,
    pub(super) replay: Option<Vec<u8>>,
    /// Bytes of a streamed body read before the first try (sent first by every try).
    pub(super) prefix: Vec<u8>,
    key: Option<usize>,
    /// Bit i: backend i was tried (at most MAX_BACKENDS = 64 of them).
    tried: u64,
    tries: u32,
    pub(super) last: LastError,
}

impl Plan {
    /// The plan for `req`: its head encoded, a body up to [`REPLAY_LIMIT`] read.
    pub(super) fn new(
        bal: &Arc<Balancer>,
        pooled: bool,
        req: &mut Request<'_>,
    ) -> Result<Plan, AppError> {
        let mut head = SpareHead::take();
        Exchange::new(1, pooled).begin(&mut head.0, req.environ.iter());
        let key = bal
            .opts
            .hash
            .as_ref()
            .map(|p| balance::hash(req.environ.get(p).unwrap_or_default()));
        let probe = pooled && crate::gateway::deferred::parking();
        let body = read_replay(req, req.input.content_length(), probe)?;
        Ok(Plan {
            bal: Arc::clone(bal),
            pooled,
            idempotent: is_idempotent(req.environ.method().as_bytes()),
            head,
            len: body.len,
            replay: body.replay,
            prefix: body.prefix,
            key,
            tried: 0,
            tries: 0,
            last: LastError::Bad("no backend tried".into()),
        })
    }

    /// The body is streamed from the client (not replayable): it is neither held nor empty.
    pub(super) fn streamed(&self) -> bool {
        self.replay.is_none() && self.len != Some(0)
    }

    /// The backend of the next try, if a try is left.
    pub(super) fn next_backend(&mut self) -> Option<usize> {
        if self.tries >= self.bal.opts.tries {
            return None;
        }
        let all = match self.bal.backends.len() {
            n @ 0..64 => (1u64 << n) - 1,
            _ => u64::MAX,
        };
        if self.tried == all {
            self.tried = 0;
        }
        let i = self.bal.choose(self.tried, self.key)?;
        self.tried |= 1 << i;
        self.tries += 1;
        Some(i)
    }

    /// Takes a failed try on backend `i` into account; `true` when another try may follow.
    pub(super) fn failed(&mut self, i: usize, t: Tried, started: bool, reused: bool) -> bool {
        let b = &self.bal.backends[i];
        if t.busy {
            self.last = LastError::Busy(t.what);
            return true;
        }
        if !(reused
            && matches!(
                t.failure,
                Failure::NotSent | Failure::Dropped | Failure::Eof
            ))
        {
            b.failed(self.bal.opts.eject_after, &t.what);
        }
        let what = format!("{}: {}", b.addr, t.what);
        self.last = if t.timed_out {
            LastError::Timeout(what)
        } else {
            LastError::Bad(what)
        };
        let facts = TryFacts {
            output_seen: t.output_seen || started,
            reused,
            idempotent: self.idempotent,
        };
        if !retry_safe(t.failure, facts) {
            return false;
        }
        b.retried();
        true
    }

    /// The answer once no try is left.
    pub(super) fn give_up(
        &mut self,
        resp: &mut Response<'_>,
        errors: &mut dyn Write,
    ) -> Result<Body<'static>, AppError> {
        let last = std::mem::replace(&mut self.last, LastError::Bad(String::new()));
        answer(resp, errors, last)
    }
}

/// What the exchange came to: the reply's tail and whether the connection may carry another
/// request, or the failed try.
pub(super) type Outcome = Result<(io::Result<Vec<u8>>, bool), Tried>;

/// One exchange as it ended, with what the bridge saw of the reply.
pub(super) struct Ran {
    pub(super) outcome: Outcome,
    /// Reply bytes reached the bridge (the client may have some of them).
    pub(super) started: bool,
    /// The reply's head was not a valid CGI response head (why).
    pub(super) bad_reply: Option<String>,
}

/// The try that found no connection: a connect error, or no free pooled one in time.
pub(super) fn lease_failed(e: &io::Error) -> Tried {
    let what = match e.kind() {
        io::ErrorKind::TimedOut => e.to_string(),
        _ => format!("connect: {e}"),
    };
    Tried {
        failure: Failure::Connect,
        output_seen: false,
        client_side: false,
        busy: e.kind() == io::ErrorKind::ResourceBusy,
        timed_out: false,
        what,
    }
}

/// What a finished exchange means, with what its bridge saw.
pub(super) fn ran(
    result: Result<request::End, request::CallError>,
    mut bridge: Bridge<'_, '_, '_>,
) -> Ran {
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
pub(super) fn settle(
    plan: &Plan,
    b: &Backend,
    lease: Lease,
    ran: Ran,
    errors: &mut dyn Write,
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
            b.release((plan.pooled && reusable).then_some(lease.conn));
            return done(Ok(Body::Full(tail.into())));
        }
        _ => b.release(None),
    }
    if let Some(why) = bad_reply {
        return done(answer(
            resp,
            errors,
            LastError::Bad(format!("{}: {why}", b.addr)),
        ));
    }
    let t = match outcome {
        Err(t) => t,
        Ok((r, _)) => {
            let why = r.err().map(|e| e.to_string()).unwrap_or_default();
            return done(answer(
                resp,
                errors,
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
        b.failed(plan.bal.opts.eject_after, &t.what);
        let what = format!("{}: {} (reply cut)", b.addr, t.what);
        return done(Err(AppError::from(io::Error::other(what))));
    }
    Attempt::Failed {
        t,
        started,
        reused: lease.reused,
    }
}
