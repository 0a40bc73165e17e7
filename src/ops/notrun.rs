//! Dead requests dropped: a request whose web-server connection closed while it waited is answered by nobody and its app is not run.
//!
//! The pool puts [`NotRun`] around the app for the requests that may have waited: the first
//! ones on a freshly accepted connection (it waited in the listen queue) and those read in
//! an event that reported the peer's hang-up. It looks once, without waiting, whether the
//! connection is still there (what has arrived is read, so a close is seen), and when it is
//! not, counts the request (status `not_run`, access log outcome `client-gone`) instead of
//! running it. Other requests pay nothing.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::accounting::{Done, finish};
use super::clock::Utc;
use super::metrics::{COUNTERS, Outcome};
use super::observe::{request_id, request_uri};
use crate::gateway::{App, AppError, Body, Request, Response};

/// The app, run only if the web server's connection is still there.
pub struct NotRun<'x>(pub &'x dyn App);

/// Second (since the epoch) of the last "not run" line: at most one a second.
static LAST_LINE: AtomicU64 = AtomicU64::new(0);

impl App for NotRun<'_> {
    fn call<'a>(
        &'a self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        if !resp.client_gone() {
            return self.0.call(req, resp);
        }
        let id = request_id(&req.environ, super::request_id_param());
        req.environ.set(super::REQUEST_ID, &id);
        let uri = request_uri(&req.environ);
        COUNTERS.request_started();
        COUNTERS.not_run();
        let done = Done {
            status: 0,
            bytes: 0,
            outcome: Outcome::ClientGone,
        };
        finish(
            Some(&req.environ),
            &id,
            &uri,
            Utc::now(),
            Instant::now(),
            done,
        );
        let sec = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if LAST_LINE.swap(sec, Relaxed) != sec {
            super::event(&format!(
                "not run (the web server's connection closed while it waited): id={id} {} {uri}; {} so far",
                req.environ.method(),
                COUNTERS.snapshot().not_run
            ));
        }
        Err(AppError::from(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the web server's connection closed before the request ran",
        )))
    }
}
