//! The start-response handle: validated, deferred headers, streamed body, Content-Length rules.

use std::fs::File;
use std::io;

use super::error::AppError;
use super::head::{Head, HeadError, HeaderValue, IntoHeaders};
pub use super::sink::Sink;
use super::sink::send_error;
use super::status::IntoStatus;

#[derive(Debug)]
enum State {
    /// `start` not called yet.
    Pending,
    /// Status and headers accepted, not sent.
    Started(Head),
    /// The last `start` was refused; nothing of it may be sent.
    Invalid(HeadError),
    /// Head sent; `remaining` is what the app's Content-Length still allows.
    Sent { remaining: Option<u64> },
    /// The transport failed or the response was cut.
    Failed,
}

/// The app's handle on its response (PEP 3333's `start_response` and `write`).
///
/// `start` validates and stores the status and headers; they go out only with the first
/// non-empty body chunk, so until then `start` may be called again to replace them (as PEP
/// 3333's `exc_info` allows) and an app error still becomes a clean 500. `write` passes a
/// chunk to the client at once.
pub struct Response<'s> {
    sink: &'s mut dyn Sink,
    state: State,
    code: u16,
    sent: u64,
    truncated: bool,
}

/// A response between two turns of a parked [`Deferred`](super::Deferred) body: everything
/// but the sink, which the gateway lends again on each turn.
#[derive(Debug)]
pub(crate) struct Suspended {
    state: State,
    code: u16,
    sent: u64,
    truncated: bool,
}

/// What happened to a response, for logs and for the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// The status code sent (0 if nothing was sent).
    pub status: u16,
    /// Body bytes sent.
    pub body_bytes: u64,
    /// The response ended cleanly.
    pub complete: bool,
}

impl<'s> Response<'s> {
    /// A response writing to `sink`.
    pub(crate) fn new(sink: &'s mut dyn Sink) -> Self {
        Response {
            sink,
            state: State::Pending,
            code: 0,
            sent: 0,
            truncated: false,
        }
    }

    /// Parks this response: its state without the sink.
    pub(crate) fn suspend(self) -> Suspended {
        Suspended {
            state: self.state,
            code: self.code,
            sent: self.sent,
            truncated: self.truncated,
        }
    }

    /// Takes a parked response up again over `sink`.
    pub(crate) fn resume(sink: &'s mut dyn Sink, s: Suspended) -> Self {
        Response {
            sink,
            state: s.state,
            code: s.code,
            sent: s.sent,
            truncated: s.truncated,
        }
    }

    /// Sets the status and headers (PEP 3333's `start_response`).
    ///
    /// The status is a [`Status`](crate::Status) (`Status::OK`), a code (`200`) or a
    /// `"200 OK"` string; the headers an array, slice or `Vec` of `(name, value)` pairs, `()`
    /// for none, or a tuple of pairs of mixed types. Values may be text, bytes or numbers.
    /// Refused headers are an app error and none of them will be sent. May be called again
    /// until the first body byte has gone out.
    ///
    /// ```
    /// # use cgate::{Status, testing::TestRequest};
    /// let app = cgate::app_fn(|req, resp| {
    ///     let n = req.query().len();
    ///     match req.environ.path_info() {
    ///         b"/none" => resp.start(Status::NO_CONTENT, ())?,
    ///         b"/mixed" => resp.start(200, (("Content-Type", "text/plain"), ("X-Count", n)))?,
    ///         _ => resp.start("404 Not Found", [("Content-Type", "text/plain")])?,
    ///     }
    ///     resp.header("X-Later", n.to_string())?;
    ///     Ok(cgate::Body::Empty)
    /// });
    /// let r = TestRequest::get("/mixed?a&b").run(&app);
    /// assert_eq!(r.header_names(), ["Content-Type", "X-Count", "X-Later", "Content-Length"]);
    /// assert_eq!(r.header("x-count"), Some("2"));
    /// assert_eq!(TestRequest::get("/none").run(&app).header_names(), ["X-Later"]);
    /// ```
    ///
    /// An array's elements share one type, so headers of mixed value types go in a tuple (as
    /// above) or through [`Response::header`]; an empty array literal `[]` has no element
    /// type to infer: write `()`.
    pub fn start(
        &mut self,
        status: impl IntoStatus,
        headers: impl IntoHeaders,
    ) -> Result<(), AppError> {
        if matches!(self.state, State::Sent { .. } | State::Failed) {
            return Err(AppError::headers_sent());
        }
        match Head::new(status, headers) {
            Ok(head) => {
                self.state = State::Started(head);
                Ok(())
            }
            Err(e) => {
                self.state = State::Invalid(e.clone());
                Err(AppError::from(e))
            }
        }
    }

    /// Adds one header to the head set by `start` (before the first body byte).
    pub fn header(&mut self, name: &str, value: impl HeaderValue) -> Result<(), AppError> {
        match &mut self.state {
            State::Started(head) => head.push(name, value).map_err(|e| {
                self.state = State::Invalid(e.clone());
                AppError::from(e)
            }),
            State::Pending => Err(AppError::msg("header() called before start()")),
            State::Invalid(e) => Err(AppError::from(e.clone())),
            State::Sent { .. } | State::Failed => Err(AppError::headers_sent()),
        }
    }

    /// Sets an already validated head (used by middleware that rewrites headers).
    pub fn start_head(&mut self, head: Head) -> Result<(), AppError> {
        if matches!(self.state, State::Sent { .. } | State::Failed) {
            return Err(AppError::headers_sent());
        }
        self.state = State::Started(head);
        Ok(())
    }

    /// The head set by `start` and not yet sent, if any.
    pub fn pending_head(&self) -> Option<&Head> {
        match &self.state {
            State::Started(h) => Some(h),
            _ => None,
        }
    }

    /// `true` once status and headers have gone to the transport.
    pub fn headers_sent(&self) -> bool {
        matches!(self.state, State::Sent { .. })
    }

    /// `true` when the client is known to be gone; long-running apps may stop early.
    pub fn client_gone(&mut self) -> bool {
        matches!(self.state, State::Failed) || self.sink.client_gone()
    }

    /// The transport's descriptor to poll beside an app's own waits (see [`Sink::watch_fd`]).
    pub fn watch_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.sink.watch_fd()
    }

    /// Sends a body chunk now (headers first if needed). Empty chunks send nothing.
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.send(chunk)?;
        self.sink
            .flush()
            .inspect_err(|_| self.state = State::Failed)
    }

    /// Sends a whole, final body: adds Content-Length when the app set none and nothing was
    /// sent yet, and leaves the flush to the end of the response (one write for small replies).
    pub fn write_full(&mut self, body: &[u8]) -> io::Result<()> {
        if let State::Started(head) = &mut self.state {
            if head.get("content-length").is_none() && allows_body(head.code()) {
                head.push_length(body.len() as u64);
            }
        }
        if body.is_empty() {
            return Ok(());
        }
        self.send(body)
    }

    /// Sends `len` bytes of `file` from its offset as the rest of the body (sendfile where
    /// the transport allows it); adds Content-Length when nothing was sent and none was set.
    pub(crate) fn write_file(&mut self, file: &mut File, len: u64) -> io::Result<()> {
        if let State::Started(head) = &mut self.state {
            if head.get("content-length").is_none() && allows_body(head.code()) {
                head.push_length(len);
            }
        }
        let mut remaining = self.send_head_once()?;
        let allowed = remaining.map_or(len, |left| left.min(len));
        self.truncated |= allowed < len;
        if let Some(left) = remaining.as_mut() {
            *left -= allowed;
        }
        if allowed > 0 {
            self.sink.send_file(file, allowed)?;
            self.sent += allowed;
        }
        self.state = State::Sent { remaining };
        Ok(())
    }

    /// Sends the head if it has not gone yet; returns what Content-Length still allows. The
    /// state is `Failed` until the caller sets it back.
    fn send_head_once(&mut self) -> io::Result<Option<u64>> {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Sent { remaining } => Ok(remaining),
            State::Started(head) => {
                self.code = head.code();
                let remaining = head.content_length();
                self.sink.send_head(&head)?;
                Ok(remaining)
            }
            State::Pending => {
                self.state = State::Pending;
                Err(io::Error::other("body written without calling start()"))
            }
            State::Invalid(e) => {
                self.state = State::Invalid(e.clone());
                Err(io::Error::other(e))
            }
            State::Failed => Err(io::Error::other("response already failed")),
        }
    }

    fn send(&mut self, chunk: &[u8]) -> io::Result<()> {
        let mut remaining = self.send_head_once()?;
        let mut chunk = chunk;
        if let Some(left) = remaining.as_mut() {
            let allowed = usize::try_from(*left)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            if allowed < chunk.len() {
                self.truncated = true;
            }
            chunk = &chunk[..allowed];
            *left -= allowed as u64;
        }
        if !chunk.is_empty() {
            self.sink.send_body(chunk)?;
            self.sent += chunk.len() as u64;
        }
        self.state = State::Sent { remaining };
        Ok(())
    }

    /// Ends the response normally. Returns a message to log when the app broke a rule that
    /// could still be handled (body shorter or longer than its Content-Length).
    pub(crate) fn finish(&mut self) -> Result<Option<String>, AppError> {
        let mut note = None;
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Pending => {
                self.state = State::Pending;
                return Err(AppError::not_started());
            }
            State::Invalid(e) => {
                self.state = State::Invalid(e.clone());
                return Err(AppError::from(e));
            }
            State::Started(mut head) => {
                if head.get("content-length").is_none() && allows_body(head.code()) {
                    head.push_length(0);
                }
                self.code = head.code();
                self.sink.send_head(&head)?;
            }
            State::Sent { remaining } => {
                if let Some(left) = remaining.filter(|&l| l > 0) {
                    note = Some(format!(
                        "response shorter than its Content-Length: {left} bytes missing"
                    ));
                }
            }
            State::Failed => return Err(AppError::from(io::Error::other("response failed"))),
        }
        if self.truncated {
            note = Some("response longer than its Content-Length: truncated".to_owned());
        }
        self.sink.finish()?;
        self.state = State::Sent { remaining: None };
        Ok(note)
    }

    /// Ends the response after an app error: the error's status with a short plain page if
    /// nothing was sent (the reason phrase; never the message), else a cut.
    pub(crate) fn fail(&mut self, error: &AppError) -> bool {
        match self.state {
            State::Sent { .. } | State::Failed => {
                self.sink.abort();
                self.state = State::Failed;
                false
            }
            _ => {
                let status = error.status();
                self.code = status.code();
                let body = format!("{}\n", status.reason());
                let ok = send_error(&mut *self.sink, error, &body).is_ok();
                self.sent = body.len() as u64;
                self.state = if ok {
                    State::Sent { remaining: None }
                } else {
                    State::Failed
                };
                ok
            }
        }
    }

    /// Records the status of an answer sent around this response (the gateway's 400).
    pub(crate) fn set_code(&mut self, code: u16) {
        self.code = code;
    }

    /// What was sent so far.
    pub(crate) fn outcome(&self, complete: bool) -> Outcome {
        Outcome {
            status: self.code,
            body_bytes: self.sent,
            complete,
        }
    }
}

/// Statuses that carry no body and get no Content-Length: 1xx, 204, 304.
fn allows_body(code: u16) -> bool {
    code >= 200 && code != 204 && code != 304
}
