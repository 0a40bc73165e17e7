//! The application trait, the request an app receives, the body it returns and its errors.

use std::borrow::Cow;
use std::io::{self, Write};

use super::environ::Environ;
use super::head::HeadError;
use super::input::Input;
use super::response::Response;

/// An application: called once per request, from any thread (PEP 3333's application object).
///
/// It reads `req`, calls [`Response::start`] and returns the body; it may also push chunks
/// with [`Response::write`] (the escape hatch) before returning. Apps compose: middleware is
/// an app holding apps.
pub trait App: Send + Sync {
    /// Handles one request.
    fn call<'a>(
        &self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError>;
}

impl<T: App + ?Sized> App for Box<T> {
    fn call<'a>(
        &self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        (**self).call(req, resp)
    }
}

impl<T: App + ?Sized> App for std::sync::Arc<T> {
    fn call<'a>(
        &self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        (**self).call(req, resp)
    }
}

/// An app made from a closure (see [`app_fn`]).
pub struct FnApp<F>(F);

/// Wraps a closure as an [`App`]; the closure's body may not borrow the request.
pub fn app_fn<F>(f: F) -> FnApp<F>
where
    F: Fn(&mut Request<'_>, &mut Response<'_>) -> Result<Body<'static>, AppError> + Send + Sync,
{
    FnApp(f)
}

impl<F> App for FnApp<F>
where
    F: Fn(&mut Request<'_>, &mut Response<'_>) -> Result<Body<'static>, AppError> + Send + Sync,
{
    fn call<'a>(
        &self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        (self.0)(req, resp)
    }
}

/// One request as an app sees it.
pub struct Request<'r> {
    /// CGI meta-variables and gateway facts.
    pub environ: Environ,
    /// The request body, ending at CONTENT_LENGTH.
    pub input: Input<'r>,
    /// The error stream (stderr for CGI, FCGI_STDERR for FastCGI): for log lines.
    pub errors: &'r mut dyn Write,
    cleanups: Vec<Box<dyn FnOnce() + 'r>>,
}

impl<'r> Request<'r> {
    /// A request from its parts.
    pub fn new(environ: Environ, input: Input<'r>, errors: &'r mut dyn Write) -> Self {
        Request {
            environ,
            input,
            errors,
            cleanups: Vec::new(),
        }
    }

    /// Registers cleanup that runs when the request ends, whatever happens: normal end,
    /// app error, panic or client abort (PEP 3333's `close()`). Runs in reverse order.
    pub fn on_close(&mut self, f: impl FnOnce() + 'r) {
        self.cleanups.push(Box::new(f));
    }

    /// Writes one line to the error stream, ignoring failures.
    pub fn log(&mut self, line: &str) {
        let _ = writeln!(self.errors, "{line}");
    }

    pub(crate) fn run_cleanups(&mut self) {
        while let Some(f) = self.cleanups.pop() {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
                let _ = writeln!(self.errors, "cgate: a cleanup function panicked");
            }
        }
    }
}

/// A chunk iterator used as a streamed body.
pub type Chunks<'a> = Box<dyn Iterator<Item = io::Result<Vec<u8>>> + 'a>;

/// What an app returns after `start` (PEP 3333's returned iterable).
pub enum Body<'a> {
    /// No more body than what was passed to [`Response::write`].
    Empty,
    /// A complete body of known length: sent with Content-Length, in as few writes as possible.
    Full(Cow<'a, [u8]>),
    /// A streamed body: each chunk goes to the client as it is produced. Dropping the
    /// iterator is its cleanup, and it is dropped on every path.
    Stream(Chunks<'a>),
}

impl<'a> Body<'a> {
    /// A streamed body from any iterator of chunks.
    pub fn stream(it: impl Iterator<Item = io::Result<Vec<u8>>> + 'a) -> Self {
        Body::Stream(Box::new(it))
    }
}

impl From<&'static str> for Body<'_> {
    fn from(s: &'static str) -> Self {
        Body::Full(Cow::Borrowed(s.as_bytes()))
    }
}

impl From<&'static [u8]> for Body<'_> {
    fn from(s: &'static [u8]) -> Self {
        Body::Full(Cow::Borrowed(s))
    }
}

impl From<String> for Body<'_> {
    fn from(s: String) -> Self {
        Body::Full(Cow::Owned(s.into_bytes()))
    }
}

impl From<Vec<u8>> for Body<'_> {
    fn from(v: Vec<u8>) -> Self {
        Body::Full(Cow::Owned(v))
    }
}

/// An application error. Before the first body byte it becomes a clean 500; after it, the
/// response is cut.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// `start` was given an invalid status or header.
    #[error("invalid response head: {0}")]
    Head(#[from] HeadError),
    /// `start` was called after the head had been sent.
    #[error("start() called after the response head was sent")]
    HeadersSent,
    /// The app returned without calling `start`.
    #[error("the app returned without calling start()")]
    NotStarted,
    /// An I/O error (reading the body, writing the response).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The app panicked; the payload's message.
    #[error("the app panicked: {0}")]
    Panic(String),
    /// Any other failure, described.
    #[error("{0}")]
    Other(String),
}

impl AppError {
    /// An error with a message.
    pub fn msg(m: impl Into<String>) -> Self {
        AppError::Other(m.into())
    }
}
