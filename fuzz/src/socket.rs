//! The responder over a real socket: an in-process server (the library's pool on a Unix
//! socket in a temporary directory) gets each input on a fresh connection, half-closed after
//! the last byte. It must close the connection, write only whole records, and then answer a
//! clean request with the exact expected bytes (nothing leaked from the bad connection).
//!
//! Library paths: `cgate::fastcgi::server::pool::{Pool, PoolConfig}`,
//! `cgate::fastcgi::server::responder::ConnConfig`, `cgate::net::listener::{Listener,
//! UnixOptions}`, `cgate::net::ListenAddr`, `cgate::fastcgi::proto::{Limits,
//! ManagementValues, record}`, `cgate::{app_fn, Body}`.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cgate::fastcgi::proto::record::{self, parse_record};
use cgate::fastcgi::proto::{Limits, ManagementValues, RecordType, Role};
use cgate::fastcgi::server::pool::{Pool, PoolConfig};
use cgate::fastcgi::server::responder::ConnConfig;
use cgate::net::ListenAddr;
use cgate::net::listener::{Listener, UnixOptions};
use cgate::{Body, app_fn};

/// Longest the server may take to close a half-closed connection.
const DEADLINE: Duration = Duration::from_secs(10);

struct Server {
    path: PathBuf,
    _pool: Pool,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        ignore_sigpipe();
        let dir = std::env::temp_dir().join(format!("cgate-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("fcgi.sock");
        let _ = std::fs::remove_file(&path);
        let listener = Listener::open(&ListenAddr::Unix(path.clone()), &UnixOptions::default())
            .expect("listen");
        let app = app_fn(|req, resp| {
            let mut body = Vec::new();
            req.input.read_to_end(&mut body)?;
            resp.start("200 OK", [("Content-Type", "application/octet-stream")])?;
            Ok(Body::from(body))
        });
        let cfg = PoolConfig {
            workers: 2,
            max_conns: 64,
            allowed: None,
            conn: ConnConfig {
                limits: Limits::default(),
                values: ManagementValues {
                    max_conns: 64,
                    max_reqs: 64,
                    mpxs_conns: false,
                },
                idle_timeout: Duration::from_secs(3),
                request_timeout: Duration::from_secs(3),
                max_body: 1 << 20,
                max_spool: 1 << 20,
            },
        };
        let pool = Pool::start(listener, Arc::new(app), cfg).expect("pool starts");
        Server { path, _pool: pool }
    })
}

fn ignore_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_IGN installs no handler code; it is set once, before any socket exists, as
    // the Rust runtime does for a normal binary (libFuzzer's main does not).
    #[allow(unsafe_code)]
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// Sends `input` on a new connection, half-closes it, and returns all the server wrote.
pub fn exchange(input: &[u8]) -> Vec<u8> {
    talk(input, true)
}

/// Sends `input` and returns all the server wrote until it closed; with `half_close` the
/// sending side is shut after the input (the end of the stream is an abort for a request
/// not yet run: FastCGI's web server aborts by closing, so a clean request keeps it open).
fn talk(input: &[u8], half_close: bool) -> Vec<u8> {
    let srv = server();
    let mut conn = UnixStream::connect(&srv.path).expect("connect");
    conn.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut writer = conn.try_clone().expect("clone");
    let mut out = Vec::new();
    std::thread::scope(|s| {
        s.spawn(move || {
            // The server may close before reading everything: that is allowed.
            let _ = writer.write_all(input);
            if half_close {
                let _ = writer.shutdown(Shutdown::Write);
            }
        });
        let mut buf = [0u8; 16 * 1024];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                // libFuzzer's timers interrupt a blocked read: not the server's doing.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("server kept a half-closed connection open: {e}"),
            }
        }
    });
    out
}

/// A clean request with body `ping` and the exact reply the app gives it.
pub fn clean_request() -> (Vec<u8>, Vec<u8>) {
    let mut req = Vec::new();
    record::encode_begin_request(&mut req, 1, Role::Responder, 0);
    let mut params = Vec::new();
    cgate::fastcgi::proto::pairs::encode_pair(&mut params, b"REQUEST_METHOD", b"POST");
    cgate::fastcgi::proto::pairs::encode_pair(&mut params, b"CONTENT_LENGTH", b"4");
    record::encode_record(&mut req, RecordType::Params, 1, &params);
    record::encode_record(&mut req, RecordType::Params, 1, &[]);
    record::encode_record(&mut req, RecordType::Stdin, 1, b"ping");
    record::encode_record(&mut req, RecordType::Stdin, 1, &[]);
    let head = "Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\
                Content-Length: 4\r\n\r\nping";
    let mut reply = Vec::new();
    record::encode_record(&mut reply, RecordType::Stdout, 1, head.as_bytes());
    record::encode_record(&mut reply, RecordType::Stdout, 1, &[]);
    record::encode_end_request(&mut reply, 1, 0, record::ProtocolStatus::RequestComplete);
    (req, reply)
}

/// Every output is whole version-1 records; the server then still answers correctly.
pub fn check(data: &[u8]) {
    let out = exchange(data);
    let mut rest = &out[..];
    while !rest.is_empty() {
        match parse_record(rest) {
            Ok(Some((_, used))) => rest = &rest[used..],
            other => panic!("server wrote a partial or bad record: {other:?}"),
        }
    }
    let (req, reply) = clean_request();
    assert_eq!(talk(&req, false), reply, "clean request after the input");
}
