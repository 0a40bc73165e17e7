//! The response: the gateway [`Sink`] the app writes to, and the head's conversion.
//!
//! The sink holds the head and body bytes until the app flushes or finishes. A response
//! the app completes without flushing (a `Body::Full`) goes to hyper whole and leaves with
//! its Content-Length; otherwise each flush hands hyper the bytes and drives the connection
//! until they are written (a slow client holds the app back instead of filling memory),
//! and hyper sends them chunked unless the app declared a Content-Length. A cut response
//! ends the connection without the final chunk, so the client sees it truncated.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::task::Poll;

use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv};

use super::body::{Chunk, Queue, ReplyBody, lock, with_body};
use super::driver::Driver;
use super::log::AccessLog;
use super::service::Answer;
use crate::gateway::{Head, Sink};

/// Body bytes the sink holds before it passes them on without being asked to.
const HOLD: usize = 64 * 1024;

/// The gateway sink of one HTTP request.
pub struct HttpSink<'d> {
    driver: &'d RefCell<Driver>,
    answer: Answer,
    log: Option<AccessLog>,
    head: Option<Response<()>>,
    buf: Vec<u8>,
    queue: Option<Queue>,
    head_only: bool,
    watch: BorrowedFd<'d>,
    watching: bool,
}

fn gone_error() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the client is gone")
}

impl<'d> HttpSink<'d> {
    /// A sink answering through `answer`; `head_only` (a HEAD request) drops the body;
    /// `watch` is the connection's socket (readable when the client may have gone).
    pub fn new(
        driver: &'d RefCell<Driver>,
        answer: Answer,
        log: AccessLog,
        head_only: bool,
        watch: BorrowedFd<'d>,
    ) -> HttpSink<'d> {
        HttpSink {
            driver,
            answer,
            log: Some(log),
            head: None,
            buf: Vec::new(),
            queue: None,
            head_only,
            watch,
            watching: true,
        }
    }

    /// Hands the head (if still here) and the held bytes to hyper; `last` ends the response.
    /// Unless `last`, drives the connection until hyper has written them.
    fn pass_on(&mut self, last: bool) -> io::Result<()> {
        if self.driver.borrow().ended() {
            return Err(gone_error());
        }
        let bytes = Bytes::from(std::mem::take(&mut self.buf));
        match (&self.queue, self.head.take()) {
            (None, Some(head)) => {
                let queue = (!last).then(Queue::default);
                let log = self
                    .log
                    .take()
                    .ok_or_else(|| io::Error::other("answered twice"))?;
                let body = ReplyBody::new(bytes, queue.clone(), self.head_only, log);
                self.answer.set(with_body(head, body));
                self.queue = queue;
            }
            (Some(q), _) => {
                let mut q = lock(q);
                if !bytes.is_empty() {
                    q.push_back(Chunk::Data(bytes));
                }
                if last {
                    q.push_back(Chunk::End);
                }
            }
            (None, None) => return Err(io::Error::other("body before head")),
        }
        if last {
            return Ok(()); // the connection loop writes it after the app returns
        }
        let (queue, answer) = (&self.queue, &self.answer);
        let done = self.driver.borrow_mut().drive(None, |_, state| {
            // Drained when hyper took every chunk, or dropped the body (a HEAD reply, or
            // the declared length reached): nothing more of it goes out.
            let drained = queue
                .as_ref()
                .is_none_or(|q| lock(q).is_empty() || Arc::strong_count(q) == 1);
            if state.ended {
                Poll::Ready(false)
            } else if drained && answer.taken() && state.written {
                Poll::Ready(true)
            } else {
                Poll::Pending
            }
        });
        if done == Some(true) {
            Ok(())
        } else {
            Err(gone_error())
        }
    }
}

impl Sink for HttpSink<'_> {
    fn send_head(&mut self, head: &Head) -> io::Result<()> {
        self.head = Some(response(head));
        Ok(())
    }

    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()> {
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
        if self.buf.is_empty() && self.head.is_none() {
            return Ok(());
        }
        self.pass_on(false)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.pass_on(true)
    }

    fn abort(&mut self) {
        if self.queue.is_none() && self.head.is_some() && self.pass_on(false).is_err() {
            return;
        }
        if let Some(q) = &self.queue {
            lock(q).push_back(Chunk::Cut);
        }
    }

    fn client_gone(&mut self) -> bool {
        let state = self.driver.borrow_mut().poll_now();
        if state.ended {
            return true;
        }
        // hyper may not have heard of the socket's news yet (another thread runs the event
        // loop): look at it directly, as nginx does. An end of stream or an error: gone.
        // Bytes waiting: the next pipelined request, which hyper will not take now; stop
        // offering the socket, or a poller would spin.
        let mut byte = [0u8; 1];
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        match recv(self.watch.as_raw_fd(), &mut byte, flags) {
            Ok(0) => true,
            Ok(_) => {
                self.watching = false;
                false
            }
            Err(Errno::EAGAIN | Errno::EINTR) => false,
            Err(_) => true,
        }
    }

    fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        self.watching.then(|| self.watch.as_fd())
    }
}

impl HttpSink<'_> {
    /// The access-log line, unless a response took it (the app never started one).
    pub fn into_log(mut self) -> Option<AccessLog> {
        self.log.take()
    }
}

/// The hyper response head for what the app started (its body comes when the app passes
/// bytes on).
fn response(head: &Head) -> Response<()> {
    let bad_length = head.get("content-length").is_some() && head.content_length().is_none();
    if bad_length {
        eprintln!("cgate: the app's Content-Length is malformed or repeated: dropped");
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
    let mut resp = Response::new(());
    *resp.status_mut() = status;
    let reason = head.status().get(4..).unwrap_or("");
    if status.as_u16() == head.code() && status.canonical_reason() != Some(reason) {
        if let Ok(r) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes().to_vec()) {
            resp.extensions_mut().insert(r);
        }
    }
    let headers = resp.headers_mut();
    for h in head.headers() {
        if bad_length && h.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Converts a head and hands the response to `check`; the response is then leaked, so
    /// its access-log line is not printed in the middle of the test output.
    fn convert(status: &str, headers: &[(&str, &str)], check: impl FnOnce(&Response<ReplyBody>)) {
        let head = Head::new(status, headers).expect("valid head");
        let head = response(&head);
        let uri = hyper::Uri::from_static("/");
        let remote = "127.0.0.1".into();
        let log = AccessLog::new(
            &remote,
            &hyper::Method::GET,
            &uri,
            std::time::Instant::now(),
        );
        let body = ReplyBody::new(Bytes::from_static(b"hi"), None, false, log);
        let r = with_body(head, body);
        check(&r);
        std::mem::forget(r);
    }

    #[test]
    fn status_reason_and_headers_cross_over() {
        let h = [("Content-Type", "text/plain"), ("X-A", "1"), ("X-A", "2")];
        convert("200 OK", &h, |r| {
            assert_eq!(r.status(), StatusCode::OK);
            assert!(r.extensions().get::<hyper::ext::ReasonPhrase>().is_none());
            let xa: Vec<_> = r.headers().get_all("x-a").iter().collect();
            assert_eq!(xa, ["1", "2"]);
        });
        convert("404 No Such Thing", &[], |r| {
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
            let reason = r.extensions().get::<hyper::ext::ReasonPhrase>();
            assert_eq!(reason.map(|p| p.as_bytes()), Some(&b"No Such Thing"[..]));
        });
    }

    #[test]
    fn unsendable_heads_are_made_safe() {
        // A bad or doubled Content-Length never reaches this conversion: the one head
        // validation refuses it.
        for bad in [
            &[("Content-Length", "12abc")][..],
            &[("Content-Length", "2"), ("Content-Length", "3")],
        ] {
            assert!(Head::new("200 OK", bad).is_err());
        }
        convert("100 Continue", &[], |r| {
            assert_eq!(r.status(), StatusCode::BAD_GATEWAY)
        });
    }
}
