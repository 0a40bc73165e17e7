//! One connection's turns: awaited by its task between requests, driven from the app's own call when the app needs I/O.
//!
//! Connections are tasks on a few event-loop threads (a multi-threaded tokio runtime). Between
//! requests a connection's task awaits hyper's connection until the next request head
//! arrives; then the task runs the app directly, inline (no hand-off to another thread).
//! When the app reads its body or flushes a chunk, [`Driver::drive`] first turns the
//! connection once without waiting; only when the I/O cannot be done at once does the thread
//! block on it, and it first hands its event loop to another thread (tokio's
//! `block_in_place`), so the other connections go on. An app that answers from what has
//! arrived (a hello, a small echo) therefore costs no thread switch at all.

use std::future::{Future, pending, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hyper::server::conn::http1;
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::io::Stream;
use super::service::Service;

/// hyper's connection with our service.
pub type Connection = http1::Connection<Stream, Service>;

/// What a waiting condition may look at after each turn of the connection.
#[derive(Debug, Clone, Copy)]
pub struct State {
    /// The connection has ended (closed, failed or shut down).
    pub ended: bool,
    /// hyper's writes are done: none waits for room on the socket.
    pub written: bool,
}

struct Link {
    conn: Option<Pin<Box<Connection>>>,
    stop: watch::Receiver<bool>,
    stopping: bool,
    write_blocked: Arc<AtomicBool>,
}

impl Link {
    /// One poll of the connection; `stop` is the pending wait for the stop signal (polled
    /// only until it fires: then the connection shuts down gracefully).
    fn turn<F: Future>(&mut self, cx: &mut Context<'_>, stop: Pin<&mut F>) -> State {
        if let Some(conn) = self.conn.as_mut() {
            if !self.stopping && (*self.stop.borrow() || stop.poll(cx).is_ready()) {
                self.stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            if conn.as_mut().poll(cx).is_ready() {
                self.conn = None;
            }
        }
        State {
            ended: self.conn.is_none(),
            written: !self.write_blocked.load(Relaxed),
        }
    }

    /// One turn that registers no waker (whatever it left pending is polled again, with a
    /// waker, before anything waits on it).
    fn turn_now(&mut self) -> (State, Context<'static>) {
        let mut cx = Context::from_waker(Waker::noop());
        let state = self.turn(&mut cx, pin!(pending::<()>()));
        (state, cx)
    }
}

/// The connection and the runtime it lives on.
pub struct Driver {
    link: Link,
    rt: Handle,
}

impl Driver {
    /// A driver for `conn`, created inside its runtime; `stop` turning true shuts the
    /// connection down gracefully (the request in flight finishes). `write_blocked` is the
    /// stream's flag for a write waiting on the socket.
    pub fn new(
        conn: Connection,
        stop: watch::Receiver<bool>,
        write_blocked: Arc<AtomicBool>,
    ) -> Driver {
        Driver {
            link: Link {
                conn: Some(Box::pin(conn)),
                stop,
                stopping: false,
                write_blocked,
            },
            rt: Handle::current(),
        }
    }

    /// `true` once the connection has ended.
    pub fn ended(&self) -> bool {
        self.link.conn.is_none()
    }

    /// Awaits turns of the connection until `cond` is ready (the task's wait between
    /// requests).
    pub async fn next<T>(&mut self, mut cond: impl FnMut(State) -> Poll<T>) -> T {
        let link = &mut self.link;
        let mut watcher = link.stop.clone();
        let mut stop = pin!(watcher.changed());
        poll_fn(|cx| cond(link.turn(cx, stop.as_mut()))).await
    }

    /// Turns the connection, then polls `cond`, until `cond` is ready; `None` when `timeout`
    /// passes first. Called from inside the app: when one turn without waiting does not
    /// make `cond` ready, the thread hands its event loop to another thread and blocks.
    /// `cond` runs after every turn, so it may wait for what hyper does in a turn (take a
    /// chunk, finish a write); whatever else it waits for must wake the task itself.
    pub fn drive<T>(
        &mut self,
        timeout: Option<Duration>,
        mut cond: impl FnMut(&mut Context<'_>, State) -> Poll<T>,
    ) -> Option<T> {
        let (state, mut cx) = self.link.turn_now();
        if let Poll::Ready(v) = cond(&mut cx, state) {
            return Some(v);
        }
        let (link, rt) = (&mut self.link, &self.rt);
        tokio::task::block_in_place(move || {
            rt.block_on(async move {
                let mut watcher = link.stop.clone();
                let mut stop = pin!(watcher.changed());
                let mut sleep = timeout.map(|d| Box::pin(tokio::time::sleep(d)));
                poll_fn(|cx| {
                    let state = link.turn(cx, stop.as_mut());
                    if let Poll::Ready(v) = cond(cx, state) {
                        return Poll::Ready(Some(v));
                    }
                    if let Some(s) = sleep.as_mut() {
                        if s.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(None);
                        }
                    }
                    Poll::Pending
                })
                .await
            })
        })
    }

    /// One turn of the connection without waiting, so what hyper has been told about (an
    /// end of stream, a reset) is seen. Returns the state after.
    pub fn poll_now(&mut self) -> State {
        self.link.turn_now().0
    }
}
