//! One connection's event loop, driven from the app's own thread whenever the app needs I/O.
//!
//! Each connection has a thread and a single-threaded tokio runtime of its own. Between
//! requests the thread drives hyper's connection until the next request head arrives; then
//! it runs the app directly (no hand-off to another thread). When the app reads its body or
//! flushes a chunk, [`Driver::drive`] polls the connection again until that I/O is done. An
//! app that blocks (a CGI script, a slow query) therefore holds only its own connection.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use tokio::runtime::Runtime;
use tokio::sync::watch;

use super::conn::Service;
use super::io::Stream;

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
    write_blocked: Rc<Cell<bool>>,
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
            written: !self.write_blocked.get(),
        }
    }
}

/// The runtime and the connection it drives (the connection drops first, while its
/// runtime still runs).
pub struct Driver {
    link: Link,
    rt: Runtime,
}

impl Driver {
    /// A driver for `conn` on `rt`; `stop` turning true shuts the connection down gracefully
    /// (the request in flight finishes). `write_blocked` is the stream's flag for a write
    /// waiting on the socket.
    pub fn new(
        rt: Runtime,
        conn: Connection,
        stop: watch::Receiver<bool>,
        write_blocked: Rc<Cell<bool>>,
    ) -> Driver {
        Driver {
            link: Link {
                conn: Some(Box::pin(conn)),
                stop,
                stopping: false,
                write_blocked,
            },
            rt,
        }
    }

    /// `true` once the connection has ended.
    pub fn ended(&self) -> bool {
        self.link.conn.is_none()
    }

    /// Polls the connection, then `cond`, until `cond` is ready; `None` when `timeout`
    /// passes first. `cond` runs after every turn of the connection, so it may wait for
    /// what hyper does in a turn (take a chunk, finish a write); whatever else it waits
    /// for must wake the task itself.
    pub fn drive<T>(
        &mut self,
        timeout: Option<Duration>,
        mut cond: impl FnMut(&mut Context<'_>, State) -> Poll<T>,
    ) -> Option<T> {
        let link = &mut self.link;
        self.rt.block_on(async move {
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
    }

    /// Lets the runtime look at the socket once without waiting, then polls the connection,
    /// so what has arrived (an end of stream, a reset) is seen. Returns the state after.
    pub fn poll_now(&mut self) -> State {
        let link = &mut self.link;
        self.rt.block_on(async move {
            tokio::task::yield_now().await;
            let mut watcher = link.stop.clone();
            let mut stop = pin!(watcher.changed());
            poll_fn(|cx| Poll::Ready(link.turn(cx, stop.as_mut()))).await
        })
    }
}
