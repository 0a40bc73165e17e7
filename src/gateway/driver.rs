//! The one driver every gateway uses: runs an app and enforces the response rules.

use std::any::Any;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::app::{App, Body};
use super::deferred::{self, Deferred, Step, Turn};
use super::error::AppError;
use super::request::Request;
use super::response::{Outcome, Response, Sink, Suspended};

/// Runs `app` for `req`, writing the response to `sink`.
///
/// App errors and panics before the first body byte become a clean 500; after it the response
/// is cut with [`Sink::abort`]. Errors go to the request's error stream. The body iterator is
/// dropped and the request's cleanup functions run on every path.
pub fn run_app(app: &dyn App, req: &mut Request<'_>, sink: &mut dyn Sink) -> Outcome {
    match run(app, req, sink, false) {
        Run::Done(outcome) => outcome,
        Run::Parked(_) => unreachable!("a body is parked only when the caller parks"),
    }
}

/// What [`run_app_parking`] and [`resume`] came to.
pub(crate) enum Run {
    /// The response is over.
    Done(Outcome),
    /// Its body waits on a descriptor: resume it when that is ready.
    Parked(Parked),
}

/// A request whose deferred body waits, off any thread: the body and its response.
pub(crate) struct Parked {
    body: Box<dyn Deferred>,
    resp: Suspended,
}

impl Parked {
    /// The body, for the gateway's wait.
    pub(crate) fn body(&self) -> &dyn Deferred {
        &*self.body
    }
}

/// Like [`run_app`], but a deferred body of a request without cleanup functions comes
/// back parked instead of being waited for here.
pub(crate) fn run_app_parking(app: &dyn App, req: &mut Request<'_>, sink: &mut dyn Sink) -> Run {
    run(app, req, sink, true)
}

fn run(app: &dyn App, req: &mut Request<'_>, sink: &mut dyn Sink, park: bool) -> Run {
    if let Some(name) = req.environ.ambiguous_header() {
        let _ = writeln!(
            req.errors,
            "cgate: 400 Bad Request: request header {} given twice (a repeated header, or \
             look-alike names such as X-Forwarded-For and X_Forwarded_For)",
            String::from_utf8_lossy(name)
        );
        let _ = super::sink::send_plain(sink, "400 Bad Request", "Bad Request\n");
        req.run_cleanups();
        let mut resp = Response::new(sink);
        resp.set_code(400);
        return Run::Done(resp.outcome(true));
    }
    let mut resp = Response::new(sink);
    let result = catch_unwind(AssertUnwindSafe(|| {
        if park {
            drive_parking(app, req, &mut resp)
        } else {
            drive(app, req, &mut resp).map(|()| None)
        }
    }));
    let result = match result {
        Ok(Ok(Some(body))) => {
            return Run::Parked(Parked {
                body,
                resp: resp.suspend(),
            });
        }
        Ok(Ok(None)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(payload) => Err(AppError::panic(panic_message(&*payload))),
    };
    let outcome = end(&mut resp, result, &mut *req.errors);
    req.run_cleanups();
    Run::Done(outcome)
}

/// Takes a parked request up again (its descriptor is ready, or its deadline passed):
/// one turn of its body over `sink`.
pub(crate) fn resume(p: Parked, sink: &mut dyn Sink, turn: &mut Turn<'_>) -> Run {
    let Parked { mut body, resp } = p;
    let mut resp = Response::resume(sink, resp);
    let step = catch_unwind(AssertUnwindSafe(|| body.resume(&mut resp, turn)));
    let errors = &mut *turn.errors;
    let result = match step {
        Ok(Step::Wait) => {
            return Run::Parked(Parked {
                body,
                resp: resp.suspend(),
            });
        }
        Ok(Step::Done(r)) => r.and_then(|()| finish(&mut resp, errors)),
        Err(payload) => Err(AppError::panic(panic_message(&*payload))),
    };
    drop(body);
    Run::Done(end(&mut resp, result, errors))
}

/// Ends a parked request whose client went away: the body stops, the response is cut.
pub(crate) fn abandon(p: Parked, sink: &mut dyn Sink) -> Outcome {
    let Parked { mut body, resp } = p;
    let _ = catch_unwind(AssertUnwindSafe(|| body.abort()));
    drop(body);
    let mut resp = Response::resume(sink, resp);
    resp.fail(&AppError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the client went away",
    )));
    resp.outcome(false)
}

/// The outermost driver's end of a response: an error becomes a clean answer or a cut,
/// with one log line where it is worth one.
fn end(resp: &mut Response<'_>, result: Result<(), AppError>, errors: &mut dyn Write) -> Outcome {
    let Err(e) = result else {
        return resp.outcome(true);
    };
    let sent = resp.headers_sent();
    if e.is_disconnect() {
        // The client is gone: nothing to tell it, nothing worth a log line.
    } else if sent {
        let _ = writeln!(
            errors,
            "cgate: app error after the response started (response cut): {e}"
        );
    } else if !e.status().is_client_error() {
        let _ = writeln!(errors, "cgate: app error: {e}");
    } else if e.has_detail() {
        // A client error the app chose: one line with its cause, none for a bare 404.
        let _ = writeln!(errors, "cgate: answered {}: {e}", e.status());
    }
    resp.fail(&e);
    resp.outcome(false)
}

/// Calls `app`, sends the body it returns and ends `resp` normally; a rule broken in a way
/// that can still be handled (a body shorter or longer than its Content-Length) is logged to
/// the error stream. Middleware that runs an inner app over its own [`Response`] uses this;
/// errors are returned for the caller to handle (the outermost driver is [`run_app`]).
pub(crate) fn drive(
    app: &dyn App,
    req: &mut Request<'_>,
    resp: &mut Response<'_>,
) -> Result<(), AppError> {
    if let Some(d) = call_and_send(app, req, resp)? {
        deferred::complete(d, resp, &mut *req.errors)?;
    }
    finish(resp, &mut *req.errors)
}

/// Like [`drive`], but a deferred body is returned instead of waited for (when the gateway
/// parks and the request has no cleanup functions, which must run after the body).
pub(crate) fn drive_parking(
    app: &dyn App,
    req: &mut Request<'_>,
    resp: &mut Response<'_>,
) -> Result<Option<Box<dyn Deferred>>, AppError> {
    if let Some(d) = call_and_send(app, req, resp)? {
        if deferred::parking() && !req.has_cleanups() {
            return Ok(Some(d));
        }
        deferred::complete(d, resp, &mut *req.errors)?;
    }
    finish(resp, &mut *req.errors).map(|()| None)
}

/// Calls `app` and sends the body it returns, except a deferred one, which is returned
/// (it borrows nothing of the request).
fn call_and_send(
    app: &dyn App,
    req: &mut Request<'_>,
    resp: &mut Response<'_>,
) -> Result<Option<Box<dyn Deferred>>, AppError> {
    match app.call(req, resp)? {
        Body::Deferred(d) => Ok(Some(d)),
        body => send_body(resp, body).map(|()| None),
    }
}

/// Ends `resp` normally, logging a rule it broke that could still be handled.
pub(crate) fn finish(resp: &mut Response<'_>, errors: &mut dyn Write) -> Result<(), AppError> {
    if let Some(note) = resp.finish()? {
        let _ = writeln!(errors, "cgate: {note}");
    }
    Ok(())
}

/// Sends a body the app returned (a deferred one is completed by the caller, not here).
pub(crate) fn send_body(resp: &mut Response<'_>, body: Body<'_>) -> Result<(), AppError> {
    match body {
        Body::Empty => Ok(()),
        Body::Full(bytes) => {
            if resp.headers_sent() {
                resp.write(&bytes)?;
            } else {
                resp.write_full(&bytes)?;
            }
            Ok(())
        }
        Body::Stream(chunks) => {
            for chunk in chunks {
                resp.write(&chunk?)?;
            }
            Ok(())
        }
        Body::File { mut file, len } => Ok(resp.write_file(&mut file, len)?),
        // Completed by the caller (`call_and_send` hands it back); never sent as a whole.
        Body::Deferred(_) => Err(AppError::msg("a deferred body sent as a plain one")),
    }
}
/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
