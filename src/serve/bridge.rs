//! The request body between hyper (async) and the app (a blocking thread): chunks over a bounded channel.
//!
//! The pump task starts pulling the body only when the app first reads it, so hyper sends
//! `100 Continue` only to a client whose body is wanted, and an app that answers without
//! reading (a 401, a 413) never makes the client upload. Two chunks at most are in flight:
//! a fast client waits for a slow app (TCP backpressure), memory stays flat.

use std::io::{self, Read};
use std::pin::Pin;
use std::time::Duration;

use hyper::body::{Body as _, Bytes, Incoming};
use tokio::sync::{mpsc, oneshot};

/// Chunks queued between the pump and the app.
const IN_FLIGHT: usize = 2;

/// What the pump hands the app.
enum Piece {
    Data(Bytes),
    End,
    Failed(io::Error),
}

/// The app's side: a blocking `Read` over the chunks the pump sends.
pub struct BodyReader {
    rx: mpsc::Receiver<Piece>,
    start: Option<oneshot::Sender<()>>,
    current: Bytes,
    ended: bool,
}

/// Starts the pump for `body` on the current runtime and returns the app's reader. A
/// single wait for the next chunk longer than `timeout` fails the body.
pub fn spawn(body: Incoming, timeout: Duration) -> BodyReader {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let (start_tx, start_rx) = oneshot::channel();
    tokio::spawn(pump(body, tx, start_rx, timeout));
    BodyReader {
        rx,
        start: Some(start_tx),
        current: Bytes::new(),
        ended: false,
    }
}

async fn pump(
    mut body: Incoming,
    tx: mpsc::Sender<Piece>,
    start: oneshot::Receiver<()>,
    timeout: Duration,
) {
    if start.await.is_err() {
        return; // the app ended without reading: hyper drains a little or closes
    }
    loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        let piece = tokio::select! {
            () = tx.closed() => return,
            r = tokio::time::timeout(timeout, next) => match r {
                Err(_) => Piece::Failed(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no request body data for {}s", timeout.as_secs()),
                )),
                Ok(None) => Piece::End,
                Ok(Some(Err(e))) => Piece::Failed(body_error(&e)),
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(d) if d.is_empty() => continue,
                    Ok(d) => Piece::Data(d),
                    Err(_trailers) => continue,
                },
            },
        };
        let last = !matches!(piece, Piece::Data(_));
        if tx.send(piece).await.is_err() || last {
            return;
        }
    }
}

fn body_error(e: &hyper::Error) -> io::Error {
    let kind = if e.is_incomplete_message() {
        io::ErrorKind::UnexpectedEof
    } else {
        io::ErrorKind::ConnectionAborted
    };
    io::Error::new(kind, format!("request body: {e}"))
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            if let Some(start) = self.start.take() {
                let _ = start.send(());
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(d)) => self.current = d,
                Some(Piece::End) => self.ended = true,
                Some(Piece::Failed(e)) => return Err(e),
                None => {
                    let why = "request body: the connection is gone";
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, why));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
