//! The response between the app (a blocking thread) and hyper: the gateway [`Sink`], hyper's body, the head's conversion.
//!
//! The sink queues the head and body bytes until the app flushes or finishes: a response
//! the app completes without flushing (a `Body::Full`) crosses to hyper in one message and
//! leaves with a Content-Length; otherwise the head and each flushed chunk cross as they
//! come, over a bounded channel (a slow client holds the app back instead of filling
//! memory), and hyper sends them chunked unless the app declared a Content-Length. A cut
//! response ends the connection without the final chunk, so the client sees it truncated.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::sync::{mpsc, oneshot};

use super::log::AccessLog;
use crate::gateway::{Head, Sink};

/// Flushed chunks queued between the app and hyper.
const IN_FLIGHT: usize = 4;

/// Body bytes the sink holds before it passes them on without being asked to.
const HOLD: usize = 64 * 1024;

/// What the app's side hands hyper first.
pub struct Start {
    head: Head,
    first: Bytes,
    rest: Option<mpsc::Receiver<Chunk>>,
}

enum Chunk {
    Data(Bytes),
    End,
    Cut,
}

/// Whether the client is gone, shared by the request's async side and the app's thread.
#[derive(Debug, Default)]
pub struct Gone {
    flag: AtomicBool,
    wake: Mutex<Option<OwnedFd>>,
}

impl Gone {
    /// Marks the client gone and closes the write end of the watch pipe, if one was made.
    fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let w = self.wake.lock().map(|mut w| w.take());
        drop(w);
    }
}

/// Held by the request's async side for as long as the client can still get the response;
/// dropping it (the response was sent, or hyper dropped the request because the
/// connection ended) marks the client gone.
pub struct GoneGuard(pub Arc<Gone>);

impl Drop for GoneGuard {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// The gateway sink of one HTTP request.
pub struct HttpSink {
    start: Option<oneshot::Sender<Start>>,
    head: Option<Head>,
    buf: Vec<u8>,
    tx: Option<mpsc::Sender<Chunk>>,
    head_only: bool,
    gone: Arc<Gone>,
    watch: OnceLock<Option<OwnedFd>>,
}

fn gone_error() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the client is gone")
}

impl HttpSink {
    /// A sink handing its response to `start`; `head_only` (a HEAD request) drops the body.
    pub fn new(start: oneshot::Sender<Start>, head_only: bool, gone: Arc<Gone>) -> HttpSink {
        HttpSink {
            start: Some(start),
            head: None,
            buf: Vec::new(),
            tx: None,
            head_only,
            gone,
            watch: OnceLock::new(),
        }
    }

    /// Passes the head (if still here) and the held bytes on; `last` ends the response.
    fn pass_on(&mut self, last: bool) -> io::Result<()> {
        let first = Bytes::from(std::mem::take(&mut self.buf));
        if let Some(start) = self.start.take() {
            let head = self
                .head
                .take()
                .ok_or_else(|| io::Error::other("body before head"))?;
            let rest = if last {
                None
            } else {
                let (tx, rx) = mpsc::channel(IN_FLIGHT);
                self.tx = Some(tx);
                Some(rx)
            };
            return start
                .send(Start { head, first, rest })
                .map_err(|_| gone_error());
        }
        let tx = self.tx.as_ref().ok_or_else(gone_error)?;
        if !first.is_empty() {
            tx.blocking_send(Chunk::Data(first))
                .map_err(|_| gone_error())?;
        }
        if last {
            tx.blocking_send(Chunk::End).map_err(|_| gone_error())?;
            self.tx = None;
        }
        Ok(())
    }
}

impl Sink for HttpSink {
    fn send_head(&mut self, head: &Head) -> io::Result<()> {
        self.head = Some(head.clone());
        Ok(())
    }

    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.gone.flag.load(Ordering::Relaxed) {
            return Err(gone_error());
        }
        if self.head_only {
            return Ok(());
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= HOLD {
            self.pass_on(false)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() && self.start.is_none() {
            return Ok(());
        }
        self.pass_on(false)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.pass_on(true)
    }

    fn abort(&mut self) {
        if self.start.is_some() {
            if self.head.is_none() {
                return; // nothing was started: dropping the sender makes hyper answer 500
            }
            if self.pass_on(false).is_err() {
                return;
            }
        }
        if let Some(tx) = self.tx.take() {
            let _ = tx.blocking_send(Chunk::Cut);
        }
    }

    fn client_gone(&mut self) -> bool {
        self.gone.flag.load(Ordering::SeqCst)
    }

    fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        let read = self.watch.get_or_init(|| {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
            let mut slot = self.gone.wake.lock().ok()?;
            if !self.gone.flag.load(Ordering::SeqCst) {
                *slot = Some(w); // closed by Gone::set: the read end then reports EOF
            }
            Some(r)
        });
        read.as_ref().map(AsFd::as_fd)
    }
}

/// hyper's view of a response body: the first bytes, then the app's chunks.
pub struct ReplyBody {
    first: Bytes,
    rest: Option<mpsc::Receiver<Chunk>>,
    cut: bool,
    log: AccessLog,
    _guard: Option<GoneGuard>,
}

impl Drop for ReplyBody {
    fn drop(&mut self) {
        self.log.complete = !self.cut && self.first.is_empty() && self.rest.is_none();
    }
}

impl ReplyBody {
    /// A complete body (answers the gateway gives itself, e.g. a 400).
    pub fn full(bytes: impl Into<Bytes>, log: AccessLog) -> ReplyBody {
        ReplyBody {
            first: bytes.into(),
            rest: None,
            cut: false,
            log,
            _guard: None,
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        let data = if !this.first.is_empty() {
            std::mem::take(&mut this.first)
        } else {
            let Some(rx) = this.rest.as_mut() else {
                return Poll::Ready(None);
            };
            match rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Chunk::Data(d))) => d,
                Poll::Ready(Some(Chunk::End)) => {
                    this.rest = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Chunk::Cut) | None) => {
                    this.rest = None;
                    this.cut = true;
                    let cut = io::Error::other("the app's response was cut");
                    return Poll::Ready(Some(Err(cut)));
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

/// The hyper response for what the app started.
pub fn response(start: Start, guard: GoneGuard, mut log: AccessLog) -> Response<ReplyBody> {
    let Start {
        mut head,
        first,
        rest,
    } = start;
    if head.get("content-length").is_some() && head.content_length().is_none() {
        eprintln!("cgate: the app's Content-Length is malformed or repeated: dropped");
        head.remove("content-length");
    }
    let status = match StatusCode::from_u16(head.code()) {
        Ok(s) if !s.is_informational() => s,
        _ => {
            eprintln!(
                "cgate: the app answered with status {}: sent 502",
                head.code()
            );
            StatusCode::BAD_GATEWAY
        }
    };
    log.status = status.as_u16();
    let body = ReplyBody {
        first,
        rest,
        cut: false,
        log,
        _guard: Some(guard),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let reason = head.status().get(4..).unwrap_or("");
    if status.as_u16() == head.code() && status.canonical_reason() != Some(reason) {
        if let Ok(r) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes().to_vec()) {
            resp.extensions_mut().insert(r);
        }
    }
    let headers = resp.headers_mut();
    for h in &head.headers {
        match (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(&h.value),
        ) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => eprintln!(
                "cgate: header {:?} cannot be sent over HTTP: dropped",
                h.name
            ),
        }
    }
    resp
}

/// A small plain-text answer the gateway gives itself.
pub fn plain(status: StatusCode, text: &str, mut log: AccessLog) -> Response<ReplyBody> {
    log.status = status.as_u16();
    let len = text.len();
    let mut resp = Response::new(ReplyBody::full(text.to_owned(), log));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}
