//! One forwarded request: pick a backend, lease a connection, run the exchange through the
//! bridge, and try again elsewhere only when the backend cannot have acted.

use std::io::{self, Read};

use super::Fcgi;
use super::balance;
use super::bridge::Bridge;
use crate::fastcgi::client::exchange::{Exchange, Failure, retry_safe};
use crate::fastcgi::client::request::{self, Call};
use crate::fastcgi::proto::ProtocolStatus;
use crate::gateway::{AppError, Body, Request, Response};

/// A body up to this size is read before the first try, so a safe retry can send it again;
/// a longer one is streamed and a retry is possible only before its first byte was read.
pub const REPLAY_LIMIT: u64 = 64 * 1024;

/// A failed try.
struct Tried {
    failure: Failure,
    output_seen: bool,
    client_side: bool,
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

/// Forwards `req` (see the module documentation of `fcgi:` for the rules).
pub(super) fn forward<'a>(
    app: &Fcgi,
    pooled: bool,
    req: &'a mut Request<'_>,
    resp: &mut Response<'_>,
) -> Result<Body<'a>, AppError> {
    let opts = &app.opts;
    let mut head = Vec::new();
    Exchange::new(1, pooled).begin(&mut head, req.environ.iter());
    let key = opts
        .hash
        .as_ref()
        .map(|p| balance::hash(req.environ.get(p).unwrap_or_default()));
    let len = req.input.content_length();
    let replay = read_replay(req, len)?;
    let mut tried = vec![false; app.backends.len()];
    let mut last = LastError::Bad("no backend tried".into());
    for _ in 0..opts.tries {
        if tried.iter().all(|&t| t) {
            tried.iter_mut().for_each(|t| *t = false);
        }
        let Some(i) = app.choose(&tried, key) else {
            break;
        };
        tried[i] = true;
        let b = &app.backends[i];
        let mut lease = match b.lease(pooled, opts.idle, opts.connect_timeout, opts.timeout) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                last = LastError::Busy(e.to_string());
                continue;
            }
            Err(e) => {
                b.failed(opts.eject_after, &format!("connect: {e}"));
                b.retried();
                last = LastError::Bad(format!("{}: connect: {e}", b.addr));
                continue;
            }
        };
        let streamed = replay.is_none() && len != Some(0);
        if streamed && req.input.consumed() > 0 {
            b.release(Some(lease.conn));
            break;
        }
        let mut bytes: &[u8] = replay.as_deref().unwrap_or_default();
        let body: Option<&mut dyn Read> = match (&replay, streamed) {
            (Some(_), _) => Some(&mut bytes),
            (None, true) => Some(&mut req.input),
            (None, false) => None,
        };
        b.started();
        let mut bridge = Bridge::new(resp, &mut *req.errors);
        let call = Call {
            head: &head,
            body,
            body_len: len,
            timeout: opts.timeout,
        };
        let result = request::run(&mut lease.conn, Exchange::new(1, pooled), call, &mut bridge);
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
                what: format!("END_REQUEST {:?}", end.status),
            }),
            Err(e) => Err(Tried {
                failure: e.failure,
                output_seen: e.output_seen,
                client_side: e.client_side,
                what: e.what,
            }),
        };
        let bad_reply = bridge.bad_reply.take();
        drop(bridge);
        if let Some(why) = bad_reply {
            b.release(None);
            return answer(resp, req, LastError::Bad(format!("{}: {why}", b.addr)));
        }
        let t = match outcome {
            Ok((Ok(tail), reusable)) => {
                b.succeeded();
                b.release((pooled && reusable).then_some(lease.conn));
                return Ok(Body::Full(tail.into()));
            }
            Ok((Err(e), _)) => {
                b.release(None);
                return answer(resp, req, LastError::Bad(format!("{}: {e}", b.addr)));
            }
            Err(t) => t,
        };
        b.release(None);
        if t.client_side {
            let kind = if t.what.starts_with("request body") {
                io::ErrorKind::Other
            } else {
                io::ErrorKind::BrokenPipe
            };
            return Err(AppError::Io(io::Error::new(kind, t.what)));
        }
        if !(lease.reused && t.failure == Failure::Dropped) {
            b.failed(opts.eject_after, &t.what);
        }
        let what = format!("{}: {}", b.addr, t.what);
        if started && resp.headers_sent() {
            return Err(AppError::Io(io::Error::other(what)));
        }
        let timed_out = t.what.contains("no progress");
        last = if timed_out {
            LastError::Timeout(what)
        } else {
            LastError::Bad(what)
        };
        if !retry_safe(t.failure, t.output_seen || started) {
            break;
        }
        b.retried();
    }
    answer(resp, req, last)
}
