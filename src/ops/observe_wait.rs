//! An observed request whose app's body is parked: the inner body resumed through the same counting, error prefix and accounting as a request served in one go.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::accounting::{Accounting, Forward, Prefixed};
use super::waiting::Waiting;
use crate::gateway::deferred::{Deferred, Interest, Step, Turn};
use crate::gateway::driver::{finish, panic_message};
use crate::gateway::response::Suspended;
use crate::gateway::{AppError, Environ, Response};

/// The inner app's deferred body, parked with its response and error-stream state.
pub(super) struct InnerParked {
    pub(super) body: Box<dyn crate::gateway::Deferred>,
    pub(super) resp: crate::gateway::response::Suspended,
    pub(super) line_start: bool,
}

/// The parked state of an observed request (see the module documentation).
pub(super) struct ObserveWait {
    inner: Box<dyn Deferred>,
    resp: Option<Suspended>,
    line_start: bool,
    acct: Accounting,
    /// The environ, kept for the access log line (only when that log is on).
    env: Option<Environ>,
    buf: Vec<u8>,
    status: u16,
    bytes: u64,
}

impl ObserveWait {
    pub(super) fn new(
        parked: InnerParked,
        acct: Accounting,
        env: Option<Environ>,
        buf: Vec<u8>,
        status: u16,
        bytes: u64,
    ) -> Self {
        acct.waiting.store(Waiting::Parked as u8, Relaxed);
        ObserveWait {
            inner: parked.body,
            resp: Some(parked.resp),
            line_start: parked.line_start,
            acct,
            env,
            buf,
            status,
            bytes,
        }
    }
}

impl Deferred for ObserveWait {
    fn wait_for(&self) -> Option<(BorrowedFd<'_>, Interest)> {
        self.inner.wait_for()
    }

    fn deadline(&self) -> Option<Instant> {
        self.inner.deadline()
    }

    fn resume(&mut self, outer: &mut Response<'_>, turn: &mut Turn<'_>) -> Step {
        let Some(state) = self.resp.take() else {
            return Step::Done(Err(AppError::msg("observed body resumed after its end")));
        };
        self.acct.waiting.store(Waiting::App as u8, Relaxed);
        let _current = super::waiting::Current::enter(&self.acct.waiting);
        let mut fwd = Forward {
            outer,
            buf: std::mem::take(&mut self.buf),
            status: self.status,
            bytes: self.bytes,
            waiting: &self.acct.waiting,
        };
        let mut prefixed = Prefixed {
            inner: &mut *turn.errors,
            id: &self.acct.id,
            line_start: self.line_start,
        };
        let inner = &mut self.inner;
        let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut resp = Response::resume(&mut fwd, state);
            let mut inner_turn = Turn {
                wake: turn.wake,
                errors: &mut prefixed,
                waker: turn.waker,
            };
            match inner.resume(&mut resp, &mut inner_turn) {
                Step::Wait => Ok(Some(resp.suspend())),
                Step::Done(r) => r
                    .and_then(|()| finish(&mut resp, &mut prefixed))
                    .map(|()| None),
            }
        }))
        .unwrap_or_else(|p| Err(AppError::panic(panic_message(&*p))));
        self.line_start = prefixed.line_start;
        let r = match turn {
            Ok(Some(state)) => {
                self.resp = Some(state);
                (self.buf, self.status, self.bytes) = (fwd.buf, fwd.status, fwd.bytes);
                self.acct.waiting.store(Waiting::Parked as u8, Relaxed);
                return Step::Wait;
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        let head_sent = fwd.outer.headers_sent();
        let env = self.env.take();
        self.acct
            .close(&r, head_sent, fwd.status, fwd.bytes, env.as_ref());
        Step::Done(r)
    }

    fn abort(&mut self) {
        self.inner.abort();
        self.gone();
    }
}

impl ObserveWait {
    /// The request ended without its body (the client left, or it was dropped): it is
    /// accounted for as aborted, once.
    fn gone(&mut self) {
        if self.resp.take().is_some() {
            let gone = io::Error::new(io::ErrorKind::ConnectionAborted, "the client went away");
            let head_sent = self.status != 0;
            let env = self.env.take();
            self.acct.close(
                &Err(gone.into()),
                head_sent,
                self.status,
                self.bytes,
                env.as_ref(),
            );
        }
    }
}

impl Drop for ObserveWait {
    fn drop(&mut self) {
        self.gone();
    }
}
