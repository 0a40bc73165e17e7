//! The application trait and the body an app returns.

use std::borrow::Cow;
use std::io;

use super::error::AppError;
use super::request::Request;
use super::response::Response;

/// An application: called once per request, from any thread (PEP 3333's application object).
///
/// It reads `req`, calls [`Response::start`] and returns the body; it may also push chunks
/// with [`Response::write`] (the escape hatch) before returning. Apps compose: middleware is
/// an app holding apps.
pub trait App: Send + Sync {
    /// Handles one request. The body may borrow from the app (`&'a self`) and from the
    /// request (its input stream), as the lifetimes say.
    fn call<'a>(
        &'a self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError>;
}

/// Smart pointers and references to an app are apps.
macro_rules! forward_app {
    ($($ptr:ty),*) => {$(
        impl<T: App + ?Sized> App for $ptr {
            fn call<'a>(
                &'a self,
                req: &'a mut Request<'_>,
                resp: &mut Response<'_>,
            ) -> Result<Body<'a>, AppError> {
                (**self).call(req, resp)
            }
        }
    )*};
}

forward_app!(Box<T>, &T, std::sync::Arc<T>);

/// An app made from a closure (see [`app_fn`]).
struct FnApp<F>(F);

/// Wraps a closure as an [`App`]; the closure's body may not borrow the request (an app
/// whose body borrows from itself or from the request implements [`App`] on a type).
///
/// ```
/// let app = cgate::app_fn(|req, resp| {
///     let n = req.query().get("n").unwrap_or("0").to_owned();
///     resp.start(200, [("Content-Type", "text/plain")])?;
///     Ok(format!("n={n}\n").into())
/// });
/// assert_eq!(cgate::testing::TestRequest::get("/?n=4").run(&app).text(), "n=4\n");
/// ```
pub fn app_fn<F>(f: F) -> impl App
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

/// A chunk iterator used as a streamed body.
pub type Chunks<'a> = Box<dyn Iterator<Item = io::Result<Vec<u8>>> + 'a>;

/// What an app returns after `start` (PEP 3333's returned iterable).
#[must_use = "a body does nothing until it is returned from App::call"]
#[non_exhaustive]
pub enum Body<'a> {
    /// No more body than what was passed to [`Response::write`].
    Empty,
    /// A complete body of known length: sent with Content-Length, in as few writes as possible.
    Full(Cow<'a, [u8]>),
    /// A streamed body: each chunk goes to the client as it is produced. Dropping the
    /// iterator is its cleanup, and it is dropped on every path.
    Stream(Chunks<'a>),
    /// `len` bytes of a file from its current offset (PEP 3333's `wsgi.file_wrapper`): sent
    /// with sendfile on CGI stdout, read in blocks elsewhere, with Content-Length from `len`.
    File {
        /// The open file.
        file: std::fs::File,
        /// How many bytes to send.
        len: u64,
    },
    /// A body that waits on a descriptor (a backend's socket): see [`super::deferred`]. The
    /// FastCGI server parks it without a thread while it waits.
    Deferred(Box<dyn super::deferred::Deferred>),
}

impl<'a> Body<'a> {
    /// The rest of `file` (from its offset to its end) as the body.
    pub fn file(mut file: std::fs::File) -> io::Result<Self> {
        use std::io::Seek;
        let len = file.metadata()?.len();
        let pos = file.stream_position()?;
        Ok(Body::File {
            file,
            len: len.saturating_sub(pos),
        })
    }

    /// A streamed body from any iterator of chunks.
    pub fn stream(it: impl Iterator<Item = io::Result<Vec<u8>>> + 'a) -> Self {
        Body::Stream(Box::new(it))
    }
}

impl<'a> From<&'a str> for Body<'a> {
    fn from(s: &'a str) -> Self {
        Body::Full(Cow::Borrowed(s.as_bytes()))
    }
}

impl<'a> From<&'a [u8]> for Body<'a> {
    fn from(s: &'a [u8]) -> Self {
        Body::Full(Cow::Borrowed(s))
    }
}

impl<'a> From<&'a String> for Body<'a> {
    fn from(s: &'a String) -> Self {
        Body::from(s.as_str())
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
