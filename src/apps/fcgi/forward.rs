//! One forwarded request: pick a backend, lease a connection, run the exchange through the
//! bridge, and try again elsewhere only when the backend cannot have acted.
//!
//! The tries share a [`Plan`]. Where the gateway parks deferred bodies, a request whose body
//! is held whole (or empty) is forwarded by a parked body ([`super::wait`]) that makes the
//! same tries without holding a thread; elsewhere the tries run here, waiting in place.

use std::io::Read;
use std::sync::Arc;

use super::Balancer;
use super::backend::{Backend, Lease};
use super::bridge::Bridge;
use super::tries::{Attempt, Plan, Ran, ReqIo, lease_failed, ran, settle};
use crate::fastcgi::client::exchange::Exchange;
use crate::fastcgi::client::request::{self, Call};
use crate::gateway::{AppError, Body, Request, Response};

/// Forwards `req` (see the module documentation of `fcgi:` for the rules).
pub(super) fn forward<'a>(
    bal: &Arc<Balancer>,
    pooled: bool,
    req: &'a mut Request<'_>,
    resp: &mut Response<'_>,
) -> Result<Body<'a>, AppError> {
    let mut plan = Plan::new(bal, pooled, req)?;
    if pooled && !plan.streamed() && crate::gateway::deferred::parking() {
        return Ok(Body::Deferred(Box::new(super::wait::FwdWait::new(plan))));
    }
    let mut rio = ReqIo {
        input: Some(&mut req.input),
        errors: &mut *req.errors,
    };
    while let Some(i) = plan.next_backend() {
        let b = Arc::clone(&plan.bal.backends[i]);
        let (t, started, reused) = match attempt(&plan, &b, &mut rio, resp) {
            None => break,
            Some(Attempt::Done(result)) => return result,
            Some(Attempt::Failed { t, started, reused }) => (t, started, reused),
        };
        if !plan.failed(i, t, started, reused) {
            break;
        }
    }
    plan.give_up(resp, rio.errors)
}

/// One try on backend `b`; `None` when it cannot be made (a streamed body already began).
fn attempt(
    plan: &Plan,
    b: &Backend,
    rio: &mut ReqIo<'_, '_>,
    resp: &mut Response<'_>,
) -> Option<Attempt> {
    let opts = &plan.bal.opts;
    let read_ahead = plan.prefix.len() as u64;
    if plan.streamed()
        && rio
            .input
            .as_ref()
            .is_some_and(|i| i.consumed() > read_ahead)
    {
        return None;
    }
    let mut lease = match b.lease(
        plan.pooled,
        opts.idle,
        opts.connect_timeout,
        opts.timeout,
        None,
    ) {
        Ok(l) => l,
        Err(e) => {
            return Some(Attempt::Failed {
                t: lease_failed(&e),
                started: false,
                reused: false,
            });
        }
    };
    let ran = exchange(plan, b, &mut lease, rio, resp);
    Some(settle(plan, b, lease, ran, rio.errors, resp))
}

/// Runs the request on the leased connection through a bridge to `resp`.
fn exchange(
    plan: &Plan,
    b: &Backend,
    lease: &mut Lease,
    rio: &mut ReqIo<'_, '_>,
    resp: &mut Response<'_>,
) -> Ran {
    let mut bytes: &[u8] = plan.replay.as_deref().unwrap_or_default();
    let mut streamed = rio
        .input
        .as_mut()
        .map(|i| (&plan.prefix[..]).chain(&mut **i));
    let body: Option<&mut dyn Read> = match (&plan.replay, plan.streamed(), streamed.as_mut()) {
        (Some(_), _, _) => Some(&mut bytes),
        (None, true, Some(input)) => Some(input),
        _ => None,
    };
    b.started();
    let mut bridge = Bridge::new(resp, &mut *rio.errors);
    let call = Call {
        head: &plan.head.0,
        body,
        body_len: plan.len,
        timeout: plan.bal.opts.timeout,
    };
    let result = request::run(
        &mut lease.conn,
        Exchange::new(1, plan.pooled),
        call,
        &mut bridge,
    );
    b.stopped();
    ran(result, bridge)
}
