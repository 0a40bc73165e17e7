//! hyper's side of a response body: the first bytes, then the chunks the app's sink queues, and the gateway's own small answers.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame};
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};

use super::log::AccessLog;

/// Locks `m` (only the connection's own task ever holds these locks, one at a time; a
/// poisoned one is still consistent: every critical section is a single move).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the sink queues after the first bytes.
pub enum Chunk {
    /// Body bytes.
    Data(Bytes),
    /// The body's clean end.
    End,
    /// The app's response was cut: the connection ends without the final chunk.
    Cut,
}

/// Chunks on their way from the sink to hyper (the connection's own task, both sides).
pub type Queue = Arc<Mutex<VecDeque<Chunk>>>;

/// hyper's view of a response body: the first bytes, then the app's chunks.
pub struct ReplyBody {
    first: Bytes,
    rest: Option<Queue>,
    cut: bool,
    /// A HEAD reply: hyper drops the body unread, which is its clean end.
    head_only: bool,
    log: AccessLog,
}

impl Drop for ReplyBody {
    fn drop(&mut self) {
        let sent = self.first.is_empty() && self.rest.is_none();
        self.log.complete = !self.cut && (sent || self.head_only);
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        // No waker is needed: the queue is filled by the connection's own task, which then
        // turns the connection, and hyper polls its body on every turn.
        let this = &mut *self;
        let data = if !this.first.is_empty() {
            std::mem::take(&mut this.first)
        } else {
            let Some(q) = this.rest.as_ref() else {
                return Poll::Ready(None);
            };
            let next = lock(q).pop_front();
            match next {
                None => return Poll::Pending,
                Some(Chunk::Data(d)) => d,
                Some(Chunk::End) => {
                    this.rest = None;
                    return Poll::Ready(None);
                }
                Some(Chunk::Cut) => {
                    this.rest = None;
                    this.cut = true;
                    return Poll::Ready(Some(Err(io::Error::other("the app's response was cut"))));
                }
            }
        };
        this.log.bytes += data.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_empty() && self.rest.is_none()
    }
}

impl ReplyBody {
    /// A body of `first`, then (unless `rest` is `None`) what the sink queues on `rest`;
    /// `head_only` for a HEAD reply; `log` is the request's access-log line.
    pub fn new(first: Bytes, rest: Option<Queue>, head_only: bool, log: AccessLog) -> ReplyBody {
        ReplyBody {
            first,
            rest,
            cut: false,
            head_only,
            log,
        }
    }
}

/// The response with its body; the access log learns the status.
pub fn with_body(head: Response<()>, mut body: ReplyBody) -> Response<ReplyBody> {
    body.log.status = head.status().as_u16();
    head.map(|()| body)
}

/// A small plain-text answer the gateway gives itself.
pub fn plain(status: StatusCode, text: &str, mut log: AccessLog) -> Response<ReplyBody> {
    log.status = status.as_u16();
    let len = text.len();
    let body = ReplyBody::new(Bytes::from(text.to_owned()), None, false, log);
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}
