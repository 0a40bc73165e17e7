//! Connections and requests: a task per connection drives hyper and runs each request's app inline.

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::Poll;
use std::time::{Duration, Instant};

use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper::{Method, Request, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

use super::body::{lock, plain};
use super::bridge::BodyReader;
use super::driver::Driver;
use super::environ::{self, PeerText, Peers, SERVE_FACTS};
use super::io::{Stream, Timer};
use super::log::AccessLog;
use super::reply::HttpSink;
use super::service::{Answer, Inbox, Service};
use crate::gateway::environ::VarIndex;
use crate::gateway::{App, BodyLength, Environ, Input, run_app};

/// What every connection shares.
pub struct Shared {
    /// The app.
    pub app: Arc<dyn App>,
    /// hyper's HTTP/1 settings.
    pub http: http1::Builder,
    /// Longest wait for one request-body read or one response write.
    pub io_timeout: Duration,
    /// Most body bytes of one request.
    pub max_body: u64,
}

impl Shared {
    /// Settings for `app`: request heads (and idle kept-alive connections) get `timeout`.
    pub fn new(app: Arc<dyn App>, timeout: Duration, max_body: u64) -> Shared {
        let mut http = http1::Builder::new();
        http.timer(Timer)
            .header_read_timeout(timeout)
            .keep_alive(true)
            .title_case_headers(true);
        Shared {
            app,
            http,
            io_timeout: timeout,
            max_body,
        }
    }
}

/// Serves one accepted connection as a task of the runtime until it ends, or until `stop`
/// turns true (then the request in flight finishes and the connection closes, an idle one
/// at once). `alive` and `slot` are held until the task ends.
pub fn spawn(
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
    slot: OwnedSemaphorePermit,
) {
    tokio::spawn(async move {
        let _held = (alive, slot);
        if let Err(e) = connection(tcp, remote, &shared, stop).await {
            eprintln!("cgate: connection from {remote}: {e}");
        }
    });
}

async fn connection(
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    shared: &Shared,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let peers = PeerText::from(Peers {
        local: tcp.local_addr()?,
        remote,
    });
    tcp.set_nodelay(true)?;
    let watch = duplicate(&tcp)?;
    let blocked = Arc::new(AtomicBool::new(false));
    let inbox = Inbox::default();
    let io = Stream::new(tcp, shared.io_timeout, blocked.clone());
    let service = Service {
        inbox: inbox.clone(),
    };
    let conn = shared.http.serve_connection(io, service);
    let mut driver = RefCell::new(Driver::new(conn, stop, blocked));
    let mut spare = Spare::default();
    loop {
        let next = driver
            .get_mut()
            .next(|state| match lock(&inbox).take() {
                Some(p) => Poll::Ready(Some(p)),
                None if state.ended => Poll::Ready(None),
                None => Poll::Pending,
            })
            .await;
        let Some((req, answer)) = next else {
            return Ok(());
        };
        let env = spare.environ();
        if let Some(used) = handle(req, &answer, &driver, shared, (&peers, env), watch.as_fd()) {
            spare.keep(used);
        }
    }
}

/// A second descriptor of the connection's socket, for the app to poll (a CGI script's
/// pump watches it to see the client leave).
fn duplicate(tcp: &tokio::net::TcpStream) -> io::Result<OwnedFd> {
    tcp.as_fd().try_clone_to_owned()
}

/// The environ memory of a connection's last request, reused by its next one.
#[derive(Default)]
struct Spare(Option<(Vec<u8>, VarIndex)>);

/// Environ bytes kept between requests at most (a huge head's buffer is let go).
const SPARE_MAX: usize = 16 * 1024;

impl Spare {
    /// An empty environ, on the memory kept if any.
    fn environ(&mut self) -> Environ {
        match self.0.take() {
            Some(parts) => Environ::reuse(parts, SERVE_FACTS),
            None => Environ::new(SERVE_FACTS),
        }
    }

    fn keep(&mut self, used: Environ) {
        let (buf, index) = used.into_parts();
        if buf.capacity() <= SPARE_MAX {
            self.0 = Some((buf, index));
        }
    }
}

/// The body's length as the app sees it, or the declared size refused.
fn body_length(body: &Incoming, has_length_header: bool, max: u64) -> Result<BodyLength, u64> {
    match body.size_hint().exact() {
        Some(n) if n > max => Err(n),
        Some(n) if has_length_header || n == 0 => Ok(BodyLength::Exact(n)),
        _ => Ok(BodyLength::ToEnd { max }),
    }
}

/// Answers one request: the gateway's own 400/413, or the app, run here and now. `env` is
/// the empty environ to fill; it comes back once the app is done with it.
fn handle(
    req: Request<Incoming>,
    answer: &Answer,
    driver: &RefCell<Driver>,
    shared: &Shared,
    (peers, env): (&PeerText, Environ),
    watch: BorrowedFd<'_>,
) -> Option<Environ> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let log = AccessLog::new(peers.remote_addr(), &parts.method, &parts.uri, started);
    let has_length = parts.headers.contains_key(hyper::header::CONTENT_LENGTH);
    let length = match body_length(&body, has_length, shared.max_body) {
        Ok(l) => l,
        Err(n) => {
            let why = format!(
                "request body of {n} bytes is over the {}-byte limit\n",
                shared.max_body
            );
            answer.set(plain(StatusCode::PAYLOAD_TOO_LARGE, &why, log));
            return None;
        }
    };
    let declared = match length {
        BodyLength::Exact(n) if has_length => Some(n),
        _ => None,
    };
    let env = match environ::build_into(env, &parts, peers, declared) {
        Ok(env) => env,
        Err(e) => {
            let text = format!("Bad Request: {e}\n");
            answer.set(plain(StatusCode::BAD_REQUEST, &text, log));
            return None;
        }
    };
    let reader = match length {
        BodyLength::Exact(0) => None,
        _ => Some(BodyReader::new(driver, body, shared.io_timeout)),
    };
    let head_only = parts.method == Method::HEAD;
    let mut sink = HttpSink::new(driver, answer.clone(), log, head_only, watch);
    let used = run(&*shared.app, env, reader, length, &mut sink);
    if let (false, Some(log)) = (answer.is_set(), sink.into_log()) {
        let text = "Internal Server Error\n";
        answer.set(plain(StatusCode::INTERNAL_SERVER_ERROR, text, log));
    }
    Some(used)
}

/// Runs the app for one request on this task's thread; gives back the environ.
fn run(
    app: &dyn App,
    env: Environ,
    reader: Option<BodyReader<'_>>,
    length: BodyLength,
    sink: &mut HttpSink<'_>,
) -> Environ {
    let mut empty = io::empty();
    let mut reader = reader;
    let source: &mut dyn Read = match reader.as_mut() {
        Some(r) => r,
        None => &mut empty,
    };
    let input = Input::new(source, length);
    let mut errors = io::stderr();
    let mut req = crate::gateway::Request::new(env, input, &mut errors);
    run_app(app, &mut req, sink);
    std::mem::replace(&mut req.environ, Environ::new(SERVE_FACTS))
}
