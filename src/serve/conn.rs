//! Connections and requests: hyper serves each connection; each request's app runs on a blocking thread.

use std::convert::Infallible;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};

use super::environ::{self, Peers};
use super::io::{Stream, Timer};
use super::log::AccessLog;
use super::reply::{self, Gone, GoneGuard, HttpSink, ReplyBody};
use super::{bridge, environ::BadRequest};
use crate::gateway::{App, BodyLength, Input, run_app};

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

/// Serves one connection until it ends, or until `stop` turns true: then the request in
/// flight finishes and the connection closes (an idle one at once). `_alive` and `_slot`
/// are held for the connection's lifetime (shutdown waits for the first; the second counts
/// against `--max-conns`).
pub async fn serve(
    tcp: TcpStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
    _slot: OwnedSemaphorePermit,
) {
    let Ok(local) = tcp.local_addr() else { return };
    let _ = tcp.set_nodelay(true);
    let peers = Peers { local, remote };
    let io = Stream::new(tcp, shared.io_timeout);
    let svc_shared = shared.clone();
    let service = hyper::service::service_fn(move |req| handle(req, svc_shared.clone(), peers));
    let conn = shared.http.serve_connection(io, service);
    tokio::pin!(conn);
    let stopping = *stop.borrow_and_update();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.changed(), if !stopping => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// The body's length as the app sees it, or the answer to give instead of running the app.
fn body_length(body: &Incoming, has_length_header: bool, max: u64) -> Result<BodyLength, u64> {
    match body.size_hint().exact() {
        Some(n) if n > max => Err(n),
        Some(n) if has_length_header || n == 0 => Ok(BodyLength::Exact(n)),
        _ => Ok(BodyLength::ToEnd { max }),
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    peers: Peers,
) -> Result<Response<ReplyBody>, Infallible> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let log = AccessLog::new(peers.remote.ip(), parts.method.as_str(), target, started);
    let has_length = parts.headers.contains_key(hyper::header::CONTENT_LENGTH);
    let length = match body_length(&body, has_length, shared.max_body) {
        Ok(l) => l,
        Err(n) => {
            let why = format!(
                "request body of {n} bytes is over the {}-byte limit\n",
                shared.max_body
            );
            return Ok(reply::plain(StatusCode::PAYLOAD_TOO_LARGE, &why, log));
        }
    };
    let declared = match length {
        BodyLength::Exact(n) if has_length => Some(n),
        _ => None,
    };
    let env = match environ::build(&parts, peers, declared) {
        Ok(env) => env,
        Err(e) => return Ok(bad_request(&e, log)),
    };
    let reader = match length {
        BodyLength::Exact(0) => None,
        _ => Some(bridge::spawn(body, shared.io_timeout)),
    };
    let gone = Arc::new(Gone::default());
    let (start_tx, start_rx) = oneshot::channel();
    let sink = HttpSink::new(start_tx, parts.method == Method::HEAD, gone.clone());
    let app = shared.app.clone();
    tokio::task::spawn_blocking(move || run(&*app, env, reader, length, sink));
    let guard = GoneGuard(gone);
    Ok(match start_rx.await {
        Ok(start) => reply::response(start, guard, log),
        Err(_) => {
            let text = "Internal Server Error\n";
            reply::plain(StatusCode::INTERNAL_SERVER_ERROR, text, log)
        }
    })
}

fn bad_request(e: &BadRequest, log: AccessLog) -> Response<ReplyBody> {
    reply::plain(StatusCode::BAD_REQUEST, &format!("Bad Request: {e}\n"), log)
}

/// Runs the app for one request on the current (blocking) thread.
fn run(
    app: &dyn App,
    env: crate::gateway::Environ,
    reader: Option<bridge::BodyReader>,
    length: BodyLength,
    mut sink: HttpSink,
) {
    let mut empty = io::empty();
    let mut reader = reader;
    let source: &mut dyn Read = match reader.as_mut() {
        Some(r) => r,
        None => &mut empty,
    };
    let input = Input::new(source, length);
    let mut errors = io::stderr();
    let mut req = crate::gateway::Request::new(env, input, &mut errors);
    run_app(app, &mut req, &mut sink);
}
