//! hyper's service: it leaves each request in the connection's inbox, and its future waits for the answer the app's sink sets.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::{Request, Response};

use super::body::{ReplyBody, lock};

/// The response slot of one request, shared by hyper's service future and the app's sink.
#[derive(Clone, Default)]
pub struct Answer(Arc<Slot>);

#[derive(Default)]
struct Slot {
    response: Mutex<Option<Response<ReplyBody>>>,
    given: AtomicBool,
}

impl Answer {
    /// Gives hyper the response (once).
    pub fn set(&self, r: Response<ReplyBody>) {
        self.0.given.store(true, Relaxed);
        *lock(&self.0.response) = Some(r);
    }

    /// `true` once a response was given.
    pub fn is_set(&self) -> bool {
        self.0.given.load(Relaxed)
    }

    /// `true` once hyper has taken the response given.
    pub fn taken(&self) -> bool {
        self.is_set() && lock(&self.0.response).is_none()
    }
}

/// hyper's future for one request: ready once the app (or the gateway) answered. No waker
/// is kept: the answer is set by the connection's own task, which then turns the connection,
/// and hyper polls the request in flight on every turn.
pub struct Pending(Answer);

impl Future for Pending {
    type Output = Result<Response<ReplyBody>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        match lock(&self.0.0.response).take() {
            Some(r) => Poll::Ready(Ok(r)),
            None => Poll::Pending,
        }
    }
}

/// Where hyper's service leaves the request it was given, for the connection's task.
pub type Inbox = Arc<Mutex<Option<(Request<Incoming>, Answer)>>>;

/// The service hyper calls per request: it parks the request for the connection's loop.
pub struct Service {
    /// Where the request goes.
    pub inbox: Inbox,
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<ReplyBody>;
    type Error = std::convert::Infallible;
    type Future = Pending;

    fn call(&self, req: Request<Incoming>) -> Pending {
        let answer = Answer::default();
        *lock(&self.inbox) = Some((req, answer.clone()));
        Pending(answer)
    }
}
