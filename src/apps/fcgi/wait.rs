//! A forwarded request as a deferred body: the same tries as in place, each waiting for a free connection or for the backend's reply without holding a thread.

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use super::backend::{Backend, Lease, Queued};
use super::bridge::{Bridge, BridgeState};
use super::tries::{Attempt, Plan, Ran, lease_failed, ran, settle};
use crate::fastcgi::client::exchange::Exchange;
use crate::fastcgi::client::request::{self, Call, Pending};
use crate::gateway::deferred::{Deferred, Interest, Step, Turn, Wake};
use crate::gateway::driver::send_body;
use crate::gateway::{AppError, Body, Response};

/// Where a forwarded request is between turns.
enum Phase {
    /// Choosing a backend and leasing a connection (again after a failed try, or when the
    /// pool was busy: the waker is registered with backend `i`).
    Lease(Option<(usize, Waker)>),
    /// The request is out on backend `i`; the reply comes in.
    Reply {
        i: usize,
        lease: Lease,
        pending: Pending,
        bridge: BridgeState,
    },
    /// Over.
    Done,
}

/// The parked forwarded request (see the module documentation).
pub(super) struct FwdWait {
    plan: Plan,
    phase: Phase,
    deadline: Instant,
}

impl FwdWait {
    pub(super) fn new(plan: Plan) -> Self {
        let deadline = Instant::now() + plan.bal.opts.timeout;
        FwdWait {
            plan,
            phase: Phase::Lease(None),
            deadline,
        }
    }

    fn backend(&self, i: usize) -> Arc<Backend> {
        Arc::clone(&self.plan.bal.backends[i])
    }

    /// Makes tries until one waits (Ok(None)) or the request is answered.
    fn try_next(
        &mut self,
        resp: &mut Response<'_>,
        turn: &mut Turn<'_>,
    ) -> Option<Result<Body<'static>, AppError>> {
        loop {
            let (i, woken) = match self.phase {
                Phase::Lease(Some((i, ref w))) => {
                    // Woken (or timed out) while waiting for a connection of backend i.
                    if turn.wake == Wake::TimedOut {
                        self.plan.bal.backends[i].forget_waker(w);
                        let busy = std::io::Error::new(
                            std::io::ErrorKind::ResourceBusy,
                            format!("all connections to {} busy", self.plan.bal.backends[i].addr),
                        );
                        self.plan.failed(i, lease_failed(&busy), false, false);
                        return Some(self.plan.give_up(resp, turn.errors));
                    }
                    (i, true)
                }
                _ => match self.plan.next_backend() {
                    Some(i) => (i, false),
                    None => return Some(self.plan.give_up(resp, turn.errors)),
                },
            };
            let b = self.backend(i);
            let opts = &self.plan.bal.opts;
            let lease = b.lease(
                true,
                opts.idle,
                opts.connect_timeout,
                opts.timeout,
                Some(Queued {
                    waker: turn.waker,
                    woken,
                }),
            );
            let lease = match lease {
                Ok(l) => l,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.phase = Phase::Lease(Some((i, turn.waker.clone())));
                    return None;
                }
                Err(e) => {
                    self.phase = Phase::Lease(None);
                    if self.plan.failed(i, lease_failed(&e), false, false) {
                        continue;
                    }
                    return Some(self.plan.give_up(resp, turn.errors));
                }
            };
            if let Some(r) = self.send(i, lease, resp, turn) {
                return Some(r);
            }
            if matches!(self.phase, Phase::Reply { .. }) {
                self.deadline = Instant::now() + self.plan.bal.opts.timeout;
                return None;
            }
        }
    }

    /// Sends the request on `lease`; the reply then comes in turns (Phase::Reply), unless
    /// the try already ended: answered (Some), or failed (the phase is Lease again).
    fn send(
        &mut self,
        i: usize,
        mut lease: Lease,
        resp: &mut Response<'_>,
        turn: &mut Turn<'_>,
    ) -> Option<Result<Body<'static>, AppError>> {
        let b = self.backend(i);
        let mut bytes: &[u8] = self.plan.replay.as_deref().unwrap_or_default();
        let body: Option<&mut dyn std::io::Read> = match &self.plan.replay {
            Some(_) => Some(&mut bytes),
            None => None,
        };
        b.started();
        let call = Call {
            head: &self.plan.head.0,
            body,
            body_len: self.plan.len,
            timeout: self.plan.bal.opts.timeout,
        };
        let mut bridge = Bridge::new(resp, &mut *turn.errors);
        let x = Exchange::new(1, self.plan.pooled);
        match request::start(&mut lease.conn, x, call, &mut bridge) {
            Ok(pending) if !pending.ended() => {
                self.phase = Phase::Reply {
                    i,
                    lease,
                    pending,
                    bridge: bridge.into_state(),
                };
                None
            }
            Ok(mut pending) => {
                let end = pending.step(&mut lease.conn, &mut bridge);
                let end = end
                    .and_then(|e| e.ok_or_else(|| pending.timed_out(self.plan.bal.opts.timeout)));
                self.end_try(i, lease, ran(end, bridge), resp, turn)
            }
            Err(e) => self.end_try(i, lease, ran(Err(e), bridge), resp, turn),
        }
    }

    /// A try on backend `i` ended: answered (Some), or failed (the phase is Lease again
    /// when another try may follow).
    fn end_try(
        &mut self,
        i: usize,
        lease: Lease,
        ran: Ran,
        resp: &mut Response<'_>,
        turn: &mut Turn<'_>,
    ) -> Option<Result<Body<'static>, AppError>> {
        let b = self.backend(i);
        b.stopped();
        self.phase = Phase::Lease(None);
        match settle(&self.plan, &b, lease, ran, turn.errors, resp) {
            Attempt::Done(r) => Some(r),
            Attempt::Failed { t, started, reused } => {
                if self.plan.failed(i, t, started, reused) {
                    None
                } else {
                    Some(self.plan.give_up(resp, turn.errors))
                }
            }
        }
    }

    /// A turn of the reply phase: reads what came; Some when the try ended in an answer.
    fn read_reply(
        &mut self,
        resp: &mut Response<'_>,
        turn: &mut Turn<'_>,
    ) -> Option<Result<Body<'static>, AppError>> {
        let Phase::Reply {
            i,
            mut lease,
            mut pending,
            bridge,
        } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return None;
        };
        let mut bridge = Bridge::with_state(resp, &mut *turn.errors, bridge);
        let r = match turn.wake {
            Wake::TimedOut => Err(pending.timed_out(self.plan.bal.opts.timeout)),
            Wake::Ready => pending.step(&mut lease.conn, &mut bridge),
        };
        match r {
            Ok(None) => {
                self.deadline = Instant::now() + self.plan.bal.opts.timeout;
                self.phase = Phase::Reply {
                    i,
                    lease,
                    pending,
                    bridge: bridge.into_state(),
                };
                None
            }
            Ok(Some(end)) => self.end_try(i, lease, ran(Ok(end), bridge), resp, turn),
            Err(e) => self.end_try(i, lease, ran(Err(e), bridge), resp, turn),
        }
    }
}

impl Deferred for FwdWait {
    fn wait_for(&self) -> Option<(BorrowedFd<'_>, Interest)> {
        match &self.phase {
            Phase::Reply { lease, .. } => Some((lease.conn.fd(), Interest::Read)),
            _ => None,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        Some(self.deadline)
    }

    fn resume(&mut self, resp: &mut Response<'_>, turn: &mut Turn<'_>) -> Step {
        loop {
            let answered = match self.phase {
                Phase::Reply { .. } => self.read_reply(resp, turn),
                Phase::Lease(_) => self.try_next(resp, turn),
                Phase::Done => return Step::Done(Ok(())),
            };
            if let Some(r) = answered {
                self.phase = Phase::Done;
                // The reply's tail or an error page, sent as the driver sends a body.
                return Step::Done(r.and_then(|body| send_body(resp, body)));
            }
            match self.phase {
                // A failed try: the next one starts now.
                Phase::Lease(None) => turn.wake = Wake::Ready,
                _ => return Step::Wait,
            }
        }
    }

    fn abort(&mut self) {
        if let Phase::Reply { lease, pending, .. } = &mut self.phase {
            pending.abort(&mut lease.conn);
        }
        self.release();
    }
}

impl FwdWait {
    /// Gives back what the request holds: its connection (closed: its request did not
    /// end cleanly) or its place in a backend's queue.
    fn release(&mut self) {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Reply { i, .. } => {
                let b = self.backend(i);
                b.stopped();
                b.release(None);
            }
            Phase::Lease(Some((i, w))) => self.plan.bal.backends[i].forget_waker(&w),
            Phase::Lease(None) | Phase::Done => {}
        }
    }
}

impl Drop for FwdWait {
    /// A parked request dropped before its end (its connection closed, the server stopped)
    /// gives back what it holds, as an aborted one does.
    fn drop(&mut self) {
        self.release();
    }
}
