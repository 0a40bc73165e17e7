//! In-process apps against the FastCGI server: the sink's `watch_fd` / `client_gone` contract (an app waiting on the socket as cgi:DIR's pump does), and a body read around an early answer.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use cgate::fastcgi::server::pool::{Pool, PoolConfig};
use cgate::fastcgi::server::responder::ConnConfig;
use cgate::fastcgi::{Limits, ManagementValues};
use cgate::net::ListenAddr;
use cgate::net::listener::{Listener, UnixOptions};
use cgate::{App, AppError, Body, Request, Response};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::client::*;
use crate::support::TempDir;

/// What the silent app saw: 0 still waiting, 1 no descriptor to watch, 2 client gone,
/// 3 timed out (nothing came within the bound).
static SEEN: AtomicU8 = AtomicU8::new(0);

/// Set by the app right before it waits on the watched descriptor: the test's gate.
static IN_WAIT: AtomicBool = AtomicBool::new(false);

/// Sends a first chunk, then stays silent: waits on `watch_fd` (at most 30 s) and stops
/// when `client_gone` says so.
struct Silent;

impl App for Silent {
    fn call<'a>(
        &self,
        _req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        resp.start("200 OK", [("Content-Type", "text/plain")])?;
        resp.write(b"started\n")?;
        for _ in 0..30 {
            let Some(fd) = resp.watch_fd() else {
                SEEN.store(1, Ordering::SeqCst);
                return Err(AppError::msg("nothing to watch"));
            };
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            IN_WAIT.store(true, Ordering::SeqCst);
            let ready = poll(&mut fds, PollTimeout::from(1000u16)).unwrap_or(0);
            if ready > 0 && resp.client_gone() {
                SEEN.store(2, Ordering::SeqCst);
                return Err(AppError::msg("client gone"));
            }
        }
        SEEN.store(3, Ordering::SeqCst);
        Ok(Body::from("never\n"))
    }
}

/// Waits until the app is about to poll the watched descriptor.
fn wait_for_the_wait() {
    assert!(
        crate::server::eventually(Duration::from_secs(20), || IN_WAIT.load(Ordering::SeqCst)),
        "the app never reached its wait"
    );
}

/// Reads 140,000 body bytes (past what the server read ahead, into the middle of a record),
/// answers 300 KiB at once (more than the server queues before it writes, so the rest of the
/// body is read ahead while that record is half read), then reads the rest and ends with the
/// body's length and SHA-256.
struct EarlyAnswer;

impl App for EarlyAnswer {
    fn call<'a>(
        &self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        use sha2::Digest;
        use std::io::Read;
        let mut hasher = sha2::Sha256::new();
        let mut first = vec![0u8; 140_000];
        req.input.read_exact(&mut first)?;
        hasher.update(&first);
        resp.start("200 OK", [("Content-Type", "text/plain")])?;
        resp.write(&vec![b'.'; 300 * 1024])?;
        let mut rest = Vec::new();
        req.input.read_to_end(&mut rest)?;
        hasher.update(&rest);
        let len = rest.len() + first.len();
        let line = format!("\n{len} {}\n", hex(&hasher.finalize()));
        Ok(Body::from(line))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A body half read when the app's answer must go out: the rest is read ahead into the
/// spool behind the part not yet read, and the app still gets every byte in order.
#[test]
fn body_read_around_an_early_answer_stays_whole() {
    let dir = TempDir::new("early");
    let (pool, addr) = start_app(&dir, Arc::new(EarlyAnswer));
    let body = crate::support::data(200_000, 11);
    let cl = body.len().to_string();
    let p = params("POST", "/", &[(b"CONTENT_LENGTH", cl.as_bytes())]);
    let mut c = addr.connect();
    let r = c.roundtrip(1, &request(1, 0, &p, &body));
    let tail = String::from_utf8_lossy(&r.body()[300 * 1024..]).into_owned();
    let want = format!("\n{} {}\n", body.len(), crate::support::sha256_hex(&body));
    assert_eq!(tail, want);
    assert_eq!(pool.shutdown(Duration::from_secs(5)), 0);
}

/// Leaves its large body unread and calls `client_gone` until `watch_fd` says there is
/// nothing to watch (the body read ahead fills the spool's memory), then reads the whole
/// body and checks that the socket is watchable again.
struct BodyWatcher;

impl App for BodyWatcher {
    fn call<'a>(
        &self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        use sha2::Digest;
        use std::io::Read;
        let mut blocked = false;
        for _ in 0..2000 {
            if resp.client_gone() {
                return Err(AppError::msg("client gone"));
            }
            let Some(fd) = resp.watch_fd() else {
                blocked = true;
                break;
            };
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(1000u16));
        }
        let mut body = Vec::new();
        req.input.read_to_end(&mut body)?;
        let watch = resp.watch_fd().is_some();
        resp.start("200 OK", [("Content-Type", "text/plain")])?;
        let sha = hex(&sha2::Sha256::digest(&body));
        let line = format!(
            "blocked {blocked} len {} sha {sha} watch {watch}\n",
            body.len()
        );
        Ok(Body::from(line))
    }
}

/// `watch_fd` is None while reading on would spill an unread body out of the spool's memory
/// (so a poller never spins on a socket it must not drain), and Some again once the app has
/// read its body; the body arrives whole and in order.
#[test]
fn watch_fd_pauses_while_an_unread_body_fills_the_spool() {
    let dir = TempDir::new("watch-body");
    let (pool, addr) = start_app(&dir, Arc::new(BodyWatcher));
    let body = crate::support::data(3 << 20, 5);
    let cl = body.len().to_string();
    let p = params("POST", "/", &[(b"CONTENT_LENGTH", cl.as_bytes())]);
    let mut c = addr.connect();
    let req = request(1, 0, &p, &body);
    let mut w = c.try_clone();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut w, &req).is_ok());
    let r = c.reply(1);
    assert!(writer.join().expect("writer"));
    let want = format!(
        "blocked true len {} sha {} watch true\n",
        body.len(),
        crate::support::sha256_hex(&body)
    );
    assert_eq!(String::from_utf8_lossy(r.body()), want);
    assert_eq!(pool.shutdown(Duration::from_secs(5)), 0);
}

fn start(dir: &TempDir) -> (Pool, Addr) {
    start_app(dir, Arc::new(Silent))
}

fn start_app(dir: &TempDir, app: Arc<dyn App>) -> (Pool, Addr) {
    let addr = Addr::Unix(dir.join("watch.sock"));
    (start_pool(&addr, app), addr)
}

/// An in-process pool of one loop thread serving `app` on `addr`.
pub fn start_pool(addr: &Addr, app: Arc<dyn App>) -> Pool {
    let listen: ListenAddr = addr.listen_arg().parse().expect("address");
    let listener = Listener::open(&listen, &UnixOptions::default()).expect("listen");
    let cfg = PoolConfig {
        workers: 1,
        max_conns: 16,
        allowed: None,
        conn: ConnConfig {
            limits: Limits::default(),
            values: ManagementValues {
                max_conns: 16,
                max_reqs: 16,
                mpxs_conns: false,
            },
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            max_body: 64 << 20,
            max_spool: 64 << 20,
        },
    };
    Pool::start(listener, app, cfg).expect("pool")
}

/// ABORT_REQUEST while the app waits silently on the watched socket: the descriptor turns
/// readable, `client_gone` reads and acts on the record, the app stops and END_REQUEST
/// follows at once; then the end of the stream is seen the same way.
#[test]
fn abort_reaches_an_app_waiting_on_watch_fd() {
    let dir = TempDir::new("watch");
    let (pool, addr) = start(&dir);
    let mut c = addr.connect();
    c.send(&get(1, KEEP_CONN, "/"));
    // Gate: the first chunk is out, so the app is in its wait.
    let (first, _) = c.record();
    assert_eq!((first.record_type, first.id), (STDOUT, 1));
    assert!(find(&first.content, b"started\n").is_some());
    wait_for_the_wait();
    c.send(&rec(ABORT, 1, b"", 0));
    let r = c.reply(1);
    let mut want = server_rec(STDOUT, 1, b"");
    want.extend(end_request(1, 0, REQUEST_COMPLETE));
    assert_eq!(r.raw, want);
    assert_eq!(
        SEEN.load(Ordering::SeqCst),
        2,
        "the app saw the client gone"
    );
    // The end of the stream: gone too (the connection closes without END_REQUEST).
    SEEN.store(0, Ordering::SeqCst);
    IN_WAIT.store(false, Ordering::SeqCst);
    c.send(&get(1, KEEP_CONN, "/"));
    let (first, _) = c.record();
    assert_eq!((first.record_type, first.id), (STDOUT, 1));
    wait_for_the_wait();
    match &c {
        Conn::Unix(s) => s.shutdown(std::net::Shutdown::Write).expect("shutdown"),
        Conn::Tcp(_) => unreachable!("a Unix connection"),
    }
    c.drain_to_close();
    assert!(
        crate::server::eventually(Duration::from_secs(20), || SEEN.load(Ordering::SeqCst) == 2),
        "the app did not see the end of the stream: {}",
        SEEN.load(Ordering::SeqCst)
    );
    assert_eq!(pool.shutdown(Duration::from_secs(5)), 0);
}
