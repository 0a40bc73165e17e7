//! The one driver every gateway uses: runs an app and enforces the response rules.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::app::{App, Body};
use super::error::AppError;
use super::request::Request;
use super::response::{Outcome, Response, Sink};

/// Runs `app` for `req`, writing the response to `sink`.
///
/// App errors and panics before the first body byte become a clean 500; after it the response
/// is cut with [`Sink::abort`]. Errors go to the request's error stream. The body iterator is
/// dropped and the request's cleanup functions run on every path.
pub fn run_app(app: &dyn App, req: &mut Request<'_>, sink: &mut dyn Sink) -> Outcome {
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
        return resp.outcome(true);
    }
    let mut resp = Response::new(sink);
    let result = catch_unwind(AssertUnwindSafe(|| drive(app, req, &mut resp)));
    let error = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(payload) => Some(AppError::panic(panic_message(&*payload))),
    };
    let outcome = match error {
        None => resp.outcome(true),
        Some(e) => {
            let sent = resp.headers_sent();
            if e.is_disconnect() {
                // The client is gone: nothing to tell it, nothing worth a log line.
            } else if sent {
                let _ = writeln!(
                    req.errors,
                    "cgate: app error after the response started (response cut): {e}"
                );
            } else if !e.status().is_client_error() {
                let _ = writeln!(req.errors, "cgate: app error: {e}");
            } else if e.has_detail() {
                // A client error the app chose: one line with its cause, none for a bare 404.
                let _ = writeln!(req.errors, "cgate: answered {}: {e}", e.status());
            }
            resp.fail(&e);
            resp.outcome(false)
        }
    };
    req.run_cleanups();
    outcome
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
    let body = app.call(req, resp)?;
    send_body(resp, body)?;
    if let Some(note) = resp.finish()? {
        let _ = writeln!(req.errors, "cgate: {note}");
    }
    Ok(())
}

fn send_body(resp: &mut Response<'_>, body: Body<'_>) -> Result<(), AppError> {
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
