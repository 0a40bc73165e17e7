//! The response-transform hook: middleware that sees the head, each chunk and the end, streaming kept.

use std::io;

use crate::gateway::driver::drive;
use crate::gateway::{App, AppError, Body, Head, HeadError, Request, Response, Sink};

/// A per-request rewrite of the inner app's response.
///
/// [`head`](Transform::head) runs once, when the inner app's head is about to go out (at its
/// first body byte or its end), so it may change any header whenever the app called `start`
/// or `write`. Each body chunk then passes through [`chunk`](Transform::chunk); where the
/// app flushed (every [`Response::write`], every streamed chunk) [`flush`](Transform::flush)
/// is called and what the transform produced goes to the client at once; [`end`] runs after
/// the last chunk. The defaults pass everything through unchanged. Output produced for a
/// complete body (`Body::Full`) before anything was sent gets a fresh Content-Length.
///
/// [`end`]: Transform::end
///
/// Adding a header to every reply:
///
/// ```
/// use cgate::middleware::{Filter, Transform};
/// use cgate::{Head, HeadError};
///
/// struct NoSniff;
/// impl Transform for NoSniff {
///     fn head(&mut self, head: &mut Head) -> Result<(), HeadError> {
///         head.set("X-Content-Type-Options", "nosniff")
///     }
/// }
/// let hello = cgate::app_fn(|_, resp| {
///     resp.start(200, [("Content-Type", "text/plain")])?;
///     Ok("hi\n".into())
/// });
/// let app = Filter::new(hello, |_req| Some(NoSniff));
/// let r = cgate::testing::TestRequest::get("/").run(&app);
/// assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
/// ```
pub trait Transform {
    /// Sees (and may change) the status and headers before they are sent.
    fn head(&mut self, head: &mut Head) -> Result<(), HeadError> {
        let _ = head;
        Ok(())
    }

    /// Rewrites one body chunk, appending the result to `out`.
    fn chunk(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(chunk);
        Ok(())
    }

    /// The app flushed: append whatever must reach the client now.
    fn flush(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let _ = out;
        Ok(())
    }

    /// The body ended: append the rest.
    fn end(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let _ = out;
        Ok(())
    }
}

/// Wraps an app and runs the transform `make` returns for each request (`None`: the reply
/// passes untouched, at no cost).
pub struct Filter<A, F> {
    inner: A,
    make: F,
}

impl<A, F, T> Filter<A, F>
where
    A: App,
    F: Fn(&Request<'_>) -> Option<T> + Send + Sync,
    T: Transform,
{
    /// Wraps `inner`; `make` chooses the transform per request.
    pub fn new(inner: A, make: F) -> Self {
        Filter { inner, make }
    }
}

impl<A, F, T> App for Filter<A, F>
where
    A: App,
    F: Fn(&Request<'_>) -> Option<T> + Send + Sync,
    T: Transform,
{
    fn call<'a>(
        &'a self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        match (self.make)(req) {
            None => self.inner.call(req, resp),
            Some(t) => {
                run_through(&self.inner, t, req, resp)?;
                Ok(Body::Empty)
            }
        }
    }
}

/// Runs `app` with its whole response passed through `t` into `outer`. Nothing reaches
/// `outer` before the inner head is sent, so an error until then still gets a clean answer.
pub(crate) fn run_through(
    app: &dyn App,
    t: impl Transform,
    req: &mut Request<'_>,
    outer: &mut Response<'_>,
) -> Result<(), AppError> {
    let mut pipe = Pipe {
        outer,
        t,
        out: Vec::new(),
    };
    let mut inner = Response::new(&mut pipe);
    drive(app, req, &mut inner)
}

struct Pipe<'o, 's, T> {
    outer: &'o mut Response<'s>,
    t: T,
    out: Vec<u8>,
}

impl<T: Transform> Pipe<'_, '_, T> {
    fn pass(&mut self) -> io::Result<()> {
        let r = self.outer.write(&self.out);
        self.out.clear();
        r
    }
}

impl<T: Transform> Sink for Pipe<'_, '_, T> {
    fn send_head(&mut self, head: &Head) -> io::Result<()> {
        let mut head = head.clone();
        self.t.head(&mut head).map_err(io::Error::other)?;
        self.outer.start_head(head).map_err(io::Error::other)
    }

    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.t.chunk(chunk, &mut self.out)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.t.flush(&mut self.out)?;
        self.pass()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.t.end(&mut self.out)?;
        let r = self.outer.write_full(&self.out);
        self.out.clear();
        r
    }

    fn abort(&mut self) {}

    fn client_gone(&mut self) -> bool {
        self.outer.client_gone()
    }

    fn watch_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.outer.watch_fd()
    }
}

/// A transform that changes nothing.
struct Same;
impl Transform for Same {}

/// The error page a [`ErrorPage`] middleware renders: called with the error and the
/// response (nothing sent yet); it calls `start` and returns the body.
type PageFn = dyn Fn(&AppError, &mut Response<'_>) -> Result<Body<'static>, AppError> + Send + Sync;

/// Replaces the gateway's plain error answer (wsgiref's `error_output`): when the inner app
/// fails before its first body byte, `page` renders the answer instead. The error still goes
/// to the error stream; after the first byte the response is cut as usual.
///
/// ```
/// use cgate::{AppError, Body, middleware::ErrorPage};
/// let app = ErrorPage::new(cgate::app_fn(|_, _| Err(AppError::not_found())), |e, resp| {
///     resp.start(e.status(), [("Content-Type", "text/html")])?;
///     Ok(Body::from(format!("<h1>{}</h1>", e.status())))
/// });
/// let r = cgate::testing::TestRequest::get("/x").run(&app);
/// assert_eq!((r.status, r.text()), (404, "<h1>404 Not Found</h1>".to_owned()));
/// ```
pub struct ErrorPage<A> {
    inner: A,
    page: Box<PageFn>,
}

impl<A: App> ErrorPage<A> {
    /// Wraps `inner` with the error page `page`.
    pub fn new<F>(inner: A, page: F) -> Self
    where
        F: Fn(&AppError, &mut Response<'_>) -> Result<Body<'static>, AppError>
            + Send
            + Sync
            + 'static,
    {
        ErrorPage {
            inner,
            page: Box::new(page),
        }
    }
}

impl<A: App> App for ErrorPage<A> {
    fn call<'a>(
        &'a self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        match run_through(&self.inner, Same, req, resp) {
            Ok(()) => Ok(Body::Empty),
            Err(e) if resp.headers_sent() || e.is_disconnect() => Err(e),
            Err(e) => {
                req.log(&format!(
                    "cgate: app error (answered by the error page): {e}"
                ));
                (self.page)(&e, resp)
            }
        }
    }
}
