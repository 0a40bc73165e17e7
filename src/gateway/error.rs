//! The application error: an HTTP status to answer with, a message and the error that caused it.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use super::head::HeadError;
use super::status::Status;

type Source = Box<dyn StdError + Send + Sync + 'static>;

/// Why a request failed, and the status to answer with while nothing has been sent yet.
///
/// `?` converts any `std::error::Error + Send + Sync` into an `AppError` with status 500,
/// keeping the error as its source. A client error is one expression:
///
/// ```
/// use cgate::{AppError, Status};
/// # fn f(body: &[u8]) -> Result<(), AppError> {
/// let v: serde_json::Value = serde_json::from_slice(body).map_err(AppError::bad_request)?;
/// # let _ = v; Ok(()) }
/// let e = AppError::method_not_allowed("GET, POST");
/// assert_eq!(e.status(), Status::METHOD_NOT_ALLOWED);
/// assert_eq!(AppError::from(std::io::Error::other("disk")).status().code(), 500);
/// ```
///
/// Before the first body byte the gateway answers with the status, a short plain-text body
/// (the reason phrase) and the error's extra headers (`Allow` for a 405); the message and the
/// source chain go to the error stream only. After the first byte the response is cut. The
/// page can be replaced with [`ErrorPage`](crate::middleware::ErrorPage).
///
/// `AppError` is not itself a `std::error::Error` (that is what lets `?` take any error);
/// `Box::<dyn Error + Send + Sync>::from(e)` turns it into one.
pub struct AppError(Box<Inner>);

struct Inner {
    status: Status,
    kind: Kind,
    message: Option<String>,
    source: Option<Source>,
    headers: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    App,
    Head,
    Io,
    HeadersSent,
    NotStarted,
    Panic,
}

impl AppError {
    fn build(status: Status, kind: Kind, message: Option<String>, source: Option<Source>) -> Self {
        AppError(Box::new(Inner {
            status,
            kind,
            message,
            source,
            headers: Vec::new(),
        }))
    }

    /// An error answered with `status`, caused by `cause` (an error or a message).
    pub fn new(status: Status, cause: impl Into<Source>) -> Self {
        AppError::from_source(cause.into()).with_status(status)
    }

    /// A 500 with a message (logged, not shown to the client).
    pub fn msg(m: impl Into<String>) -> Self {
        AppError::build(
            Status::INTERNAL_SERVER_ERROR,
            Kind::App,
            Some(m.into()),
            None,
        )
    }

    /// A 400 Bad Request caused by `cause` (a parse error, a message).
    pub fn bad_request(cause: impl Into<Source>) -> Self {
        AppError::new(Status::BAD_REQUEST, cause)
    }

    /// A 404 Not Found.
    pub fn not_found() -> Self {
        AppError::build(Status::NOT_FOUND, Kind::App, None, None)
    }

    /// A 405 Method Not Allowed with the `Allow` header the status requires
    /// (`"GET, HEAD"`).
    pub fn method_not_allowed(allow: &str) -> Self {
        AppError::build(Status::METHOD_NOT_ALLOWED, Kind::App, None, None)
            .with_header("Allow", allow)
    }

    /// A 413 Content Too Large: the request body is over `limit` bytes.
    pub fn payload_too_large(limit: u64) -> Self {
        let m = format!("request body larger than the {limit}-byte limit");
        AppError::build(Status::CONTENT_TOO_LARGE, Kind::App, Some(m), None)
    }

    /// The same error answered with `status` instead.
    #[must_use]
    pub fn with_status(mut self, status: Status) -> Self {
        self.0.status = status;
        self
    }

    /// The same error with a message in front of its cause (for the log).
    #[must_use]
    pub fn context(mut self, message: impl Into<String>) -> Self {
        let m = message.into();
        self.0.message = Some(match self.0.message.take() {
            Some(old) => format!("{m}: {old}"),
            None => m,
        });
        self
    }

    /// The same error with a header to send with its answer (dropped when invalid).
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.0.headers.push((name, value.into()));
        self
    }

    /// The status answered while nothing has been sent.
    pub fn status(&self) -> Status {
        self.0.status
    }

    /// The headers sent with the answer.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.headers.iter().map(|(n, v)| (*n, v.as_str()))
    }

    /// The error that caused this one.
    pub fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }

    /// The cause as a concrete type, if it is one.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.0.source.as_deref()?.downcast_ref()
    }

    /// `true` when the response head was refused by validation.
    pub fn is_head_error(&self) -> bool {
        self.0.kind == Kind::Head
    }

    fn from_source(source: Source) -> Self {
        let kind = if source.is::<HeadError>() {
            Kind::Head
        } else if source.is::<io::Error>() {
            Kind::Io
        } else {
            Kind::App
        };
        AppError::build(Status::INTERNAL_SERVER_ERROR, kind, None, Some(source))
    }

    pub(crate) fn headers_sent() -> Self {
        let m = "start() called after the response head was sent";
        AppError::build(
            Status::INTERNAL_SERVER_ERROR,
            Kind::HeadersSent,
            Some(m.into()),
            None,
        )
    }

    pub(crate) fn not_started() -> Self {
        let m = "the app returned without calling start()";
        AppError::build(
            Status::INTERNAL_SERVER_ERROR,
            Kind::NotStarted,
            Some(m.into()),
            None,
        )
    }

    pub(crate) fn panic(payload: String) -> Self {
        let m = format!("the app panicked: {payload}");
        AppError::build(Status::INTERNAL_SERVER_ERROR, Kind::Panic, Some(m), None)
    }

    /// `true` when there is a message or a source to log.
    pub(crate) fn has_detail(&self) -> bool {
        self.0.message.is_some() || self.0.source.is_some()
    }

    /// `true` when the cause is the client going away (broken pipe, reset): not logged.
    pub(crate) fn is_disconnect(&self) -> bool {
        use io::ErrorKind::*;
        self.0.kind == Kind::Io
            && self.downcast_ref::<io::Error>().is_some_and(|e| {
                matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted)
            })
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for AppError {
    fn from(e: E) -> Self {
        AppError::from_source(Box::new(e))
    }
}

impl From<AppError> for Box<dyn StdError + Send + Sync + 'static> {
    fn from(e: AppError) -> Self {
        let text = e.to_string();
        match e.0.source {
            Some(s) if e.0.message.is_none() => s,
            _ => text.into(),
        }
    }
}

/// `message: source: source's source ...`, or the status when there is neither.
impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(m) = &self.0.message {
            f.write_str(m)?;
            sep = ": ";
        }
        let mut cause = self.source();
        if cause.is_none() && sep.is_empty() {
            return write!(f, "{}", self.0.status);
        }
        while let Some(c) = cause {
            write!(f, "{sep}{c}")?;
            sep = ": ";
            cause = c.source();
        }
        Ok(())
    }
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppError")
            .field("status", &self.0.status.code())
            .field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .field("source", &self.0.source)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] io::Error);

    #[test]
    fn question_mark_keeps_the_chain() {
        fn f() -> Result<(), AppError> {
            Err(Outer(io::Error::other("inner")))?
        }
        let e = f().unwrap_err();
        assert_eq!(e.status(), Status::INTERNAL_SERVER_ERROR);
        assert_eq!(e.to_string(), "outer: inner");
        assert!(e.downcast_ref::<Outer>().is_some());
        assert_eq!(e.context("saving").to_string(), "saving: outer: inner");
    }

    #[test]
    fn client_errors_in_one_expression() {
        let e = serde_json::from_slice::<serde_json::Value>(b"{").map_err(AppError::bad_request);
        let e = e.unwrap_err();
        assert_eq!(e.status(), Status::BAD_REQUEST);
        assert!(e.downcast_ref::<serde_json::Error>().is_some());
        assert_eq!(AppError::bad_request("no name").to_string(), "no name");
        assert_eq!(AppError::not_found().to_string(), "404 Not Found");
        let allow: Vec<_> = AppError::method_not_allowed("GET")
            .headers()
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        assert_eq!(allow, ["Allow: GET"]);
        assert_eq!(AppError::payload_too_large(9).status().code(), 413);
    }

    #[test]
    fn disconnects_are_recognised() {
        let gone = AppError::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(gone.is_disconnect());
        assert!(!AppError::from(io::Error::other("x")).is_disconnect());
        assert!(AppError::from(HeadError::StatusHeader).is_head_error());
    }
}
