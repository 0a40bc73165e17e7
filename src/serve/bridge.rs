//! The request body as the app reads it: each read drives the connection until hyper has the next chunk.
//!
//! Nothing is read ahead: hyper pulls body bytes from the socket only while the app asks
//! for them, so a fast client waits for a slow app (TCP backpressure) and memory stays
//! flat; hyper sends `100 Continue` only on the first read, so an app that answers without
//! reading (a 401, a 413) never makes the client upload.

use std::cell::RefCell;
use std::io::{self, Read};
use std::pin::Pin;
use std::time::Duration;

use hyper::body::{Body as _, Bytes, Incoming};

use super::driver::Driver;

/// The app's side of a request body.
pub struct BodyReader<'d> {
    driver: &'d RefCell<Driver>,
    body: Incoming,
    timeout: Duration,
    current: Bytes,
    ended: bool,
}

impl<'d> BodyReader<'d> {
    /// A reader of `body`; one wait for the next chunk longer than `timeout` fails it.
    pub fn new(driver: &'d RefCell<Driver>, body: Incoming, timeout: Duration) -> Self {
        BodyReader {
            driver,
            body,
            timeout,
            current: Bytes::new(),
            ended: false,
        }
    }

    /// Waits for the next data chunk; `None` at the end of the body.
    fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        let body = &mut self.body;
        let next = self
            .driver
            .borrow_mut()
            .drive(Some(self.timeout), |cx, state| {
                match Pin::new(&mut *body).poll_frame(cx) {
                    // The body's end only counts while the connection lives: hyper may drop
                    // its side of a cut body without an error.
                    std::task::Poll::Ready(None) if state.ended => {
                        std::task::Poll::Ready(Some(Err(aborted())))
                    }
                    std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
                    std::task::Poll::Ready(Some(frame)) => {
                        std::task::Poll::Ready(Some(frame.map_err(|e| body_error(&e))))
                    }
                    std::task::Poll::Pending => std::task::Poll::Pending,
                }
            });
        match next {
            None => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no request body data for {}s", self.timeout.as_secs()),
            )),
            Some(None) => Ok(None),
            Some(Some(Err(e))) => Err(e),
            Some(Some(Ok(frame))) => Ok(Some(frame.into_data().unwrap_or_default())),
        }
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "request body: the connection is gone",
    )
}

fn body_error(e: &hyper::Error) -> io::Error {
    let kind = if e.is_incomplete_message() {
        io::ErrorKind::UnexpectedEof
    } else {
        io::ErrorKind::ConnectionAborted
    };
    io::Error::new(kind, format!("request body: {e}"))
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.next_chunk()? {
                Some(d) => self.current = d,
                None => self.ended = true,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
