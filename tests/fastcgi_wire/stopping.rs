//! Stopping with kept-alive connections: what the web server sent before the stop is served, and the connection then ends with a clean end of stream, never a reset.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use cgate::fastcgi::server::pool::Pool;
use cgate::{App, AppError, Body, Request, Response};

use crate::client::*;
use crate::lifecycle::refused;
use crate::server::eventually;
use crate::support::{TempDir, free_port};
use crate::watch::start_pool;

/// `/hold` waits until the test opens the gate; any other path answers `hi PATH` at once.
struct Held {
    in_app: AtomicBool,
    gate: Mutex<bool>,
    opened: Condvar,
}

impl Held {
    fn new() -> Arc<Held> {
        Arc::new(Held {
            in_app: AtomicBool::new(false),
            gate: Mutex::new(false),
            opened: Condvar::new(),
        })
    }

    fn open(&self) {
        *self.gate.lock().expect("gate") = true;
        self.opened.notify_all();
    }
}

impl App for Held {
    fn call<'a>(
        &self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        let uri = req.environ.get_str("REQUEST_URI").unwrap_or("").to_owned();
        if uri == "/hold" {
            self.in_app.store(true, Ordering::SeqCst);
            let mut open = self.gate.lock().expect("gate");
            while !*open {
                open = self
                    .opened
                    .wait_timeout(open, Duration::from_secs(60))
                    .expect("gate")
                    .0;
            }
        }
        resp.start("200 OK", [("Content-Type", "text/plain")])?;
        Ok(Body::from(format!("hi {uri}\n")))
    }
}

fn start(dir: &TempDir, t: Transport, app: Arc<dyn App>) -> (Pool, Addr) {
    let addr = match t {
        Transport::Unix => Addr::Unix(dir.join("stop.sock")),
        Transport::Tcp => Addr::Tcp(free_port()),
    };
    (start_pool(&addr, app), addr)
}

/// Reads until the server closes and asserts that it was an end of stream with nothing
/// before it (a reset means the server dropped bytes it had been sent).
fn assert_clean_end(c: &mut Conn, what: &str) {
    let mut buf = [0u8; 256];
    match c.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{what}: unexpected bytes {:?}", &buf[..n]),
        Err(e) => panic!("{what}: {e} instead of an end of stream"),
    }
}

/// The web server wrote its next request on a kept connection while cgate was stopping in
/// the middle of the one before (nginx does this the moment it has read END_REQUEST): that
/// request was delivered, so it is answered, and only then does the connection end.
#[test]
fn a_request_sent_before_the_stop_took_effect_is_answered_then_the_end_is_clean() {
    for t in BOTH {
        let dir = TempDir::new("stopping");
        let app = Held::new();
        let (pool, addr) = start(&dir, t, app.clone());
        let mut c = addr.connect();
        c.send(&get(1, KEEP_CONN, "/hold"));
        assert!(
            eventually(Duration::from_secs(20), || app
                .in_app
                .load(Ordering::SeqCst)),
            "{t:?}: the app never started"
        );
        c.send(&get(1, KEEP_CONN, "/next"));
        let stopper = std::thread::spawn(move || pool.shutdown(Duration::from_secs(20)));
        assert!(
            eventually(Duration::from_secs(20), || refused(&addr)),
            "{t:?}: still accepting after the stop"
        );
        app.open();
        for uri in ["/hold", "/next"] {
            let r = c.reply(1);
            assert_eq!(r.status(), 200, "{t:?} {uri}");
            assert_eq!(r.body(), format!("hi {uri}\n").as_bytes(), "{t:?}");
            assert_eq!(r.protocol_status, REQUEST_COMPLETE);
        }
        assert_clean_end(&mut c, &format!("{t:?}: after the last reply"));
        assert_eq!(stopper.join().expect("shutdown thread"), 0, "{t:?}");
    }
}

/// An idle kept connection at the stop ends with a clean end of stream, and the web
/// server's next write on it fails (EPIPE on a Unix socket).
#[test]
fn an_idle_kept_connection_ends_cleanly_and_refuses_later_writes() {
    for t in BOTH {
        let dir = TempDir::new("stopping");
        let (pool, addr) = start(&dir, t, Held::new());
        let mut c = addr.connect();
        let r = c.roundtrip(1, &get(1, KEEP_CONN, "/first"));
        assert_eq!(r.body(), b"hi /first\n", "{t:?}");
        assert_eq!(pool.shutdown(Duration::from_secs(20)), 0, "{t:?}");
        assert_clean_end(&mut c, &format!("{t:?}: idle connection at the stop"));
        if let (Conn::Unix(s), Transport::Unix) = (&mut c, t) {
            let e = std::io::Write::write(s, &get(1, KEEP_CONN, "/late")).expect_err("write");
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
        }
    }
}
