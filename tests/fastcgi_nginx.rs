//! End-to-end: the cgate FastCGI server behind a real nginx, configured with the shipped conf/ snippets.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::golden::HELLO_BODY as HELLO;
use support::http::Conn;
use support::{
    Backend, Nginx, Ready, Response, TempDir, cgate_bin, conf, data, demo_bin, request, sha256_hex,
    spawn_fcgi,
};

/// A FastCGI backend on a Unix socket and nginx in front of it (site conf from conf/nginx).
struct Site {
    nginx: Nginx,
    cgate: Backend,
    _dir: TempDir,
}

impl Site {
    /// Starts `bin fastcgi --listen unix:SOCK ARGS...` and nginx with the upstream and site
    /// snippets (`keep_conn` as in [`conf::nginx_site`]).
    fn start(bin: &Path, args: &[&str], keep_conn: bool) -> Site {
        let dir = TempDir::new("e2e-nginx");
        let sock = dir.join("cgate.sock");
        let mut cmd = Command::new(bin);
        cmd.env_remove("CGATE_APP")
            .arg("fastcgi")
            .arg("--validate")
            .arg("--listen")
            .arg(format!("unix:{}", sock.display()))
            .args(args);
        let cgate = Backend::spawn("cgate", cmd, &[Ready::Unix(sock.clone())]);
        let nginx = Nginx::start_with(&conf::nginx_upstream(&sock), &conf::nginx_site(keep_conn));
        Site {
            nginx,
            cgate,
            _dir: dir,
        }
    }

    fn port(&self) -> u16 {
        self.nginx.port()
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request("GET", self.port(), path, headers, b"")
    }

    /// Panics with the logs when the backend has exited.
    fn assert_backend_alive(&self) {
        assert!(
            !self.cgate.proc.has_exited(),
            "cgate exited:\n{}",
            self.cgate.output()
        );
    }
}

/// Parses echo's JSON answer, failing with the nginx error log when the status is not 200.
fn echo_json(r: &Response, nginx: &Nginx) -> Value {
    assert_eq!(r.status, 200, "{}\n{}", r.text(), nginx.error_log());
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("echo body is not JSON ({e}): {:?}", r.text()))
}

/// Sends `method path` with `body` written in 1 MiB slices after the head (one copy of the
/// body in memory), and reads the response.
fn send_streamed(port: u16, method: &str, path: &str, body: &[u8]) -> Response {
    let len = body.len().to_string();
    let mut c = Conn::open(port).expect("connect to nginx");
    c.send_request(
        method,
        path,
        &[
            ("Content-Length", len.as_str()),
            ("Content-Type", "application/octet-stream"),
            ("Connection", "close"),
        ],
        b"",
    )
    .expect("send head");
    for piece in body.chunks(1 << 20) {
        c.write_raw(piece).expect("send body");
    }
    c.read_response(method).expect("read response")
}

#[test]
fn echo_gets_bodies_of_0_1mib_and_64mib_exactly_with_get_and_post() {
    let site = Site::start(&cgate_bin(), &["--app", "echo"], true);
    for (i, len) in [0usize, 1 << 20, 64 << 20].into_iter().enumerate() {
        let body = data(len, i as u64 + 1);
        let sha = sha256_hex(&body);
        for method in ["GET", "POST"] {
            let r = send_streamed(site.port(), method, "/app/upload?n=1", &body);
            let j = echo_json(&r, &site.nginx);
            assert_eq!(j["input"]["length"], len as u64, "{method} {len}");
            assert_eq!(j["input"]["sha256"], sha.as_str(), "{method} {len}");
            let env = &j["environ"];
            assert_eq!(env["REQUEST_METHOD"], method);
            assert_eq!(env["CONTENT_LENGTH"], len.to_string().as_str());
            assert_eq!(env["CONTENT_TYPE"], "application/octet-stream");
            assert_eq!(env["PATH_INFO"], "/upload");
            // nginx also passes Content-Type/Length as HTTP_* params; PEP 3333 keeps those
            // copies out of the environ.
            assert_eq!(env.get("HTTP_CONTENT_TYPE"), None, "{env}");
            assert_eq!(env.get("HTTP_CONTENT_LENGTH"), None, "{env}");
        }
    }
    site.assert_backend_alive();
}

#[test]
fn split_path_info_gives_script_name_path_info_and_query_string() {
    let site = Site::start(&cgate_bin(), &["--app", "echo"], true);
    let r = site.get(
        "/app/x/y%20z?q=1",
        &[("Proxy", "evil"), ("X-Custom", "v 1")],
    );
    let j = echo_json(&r, &site.nginx);
    let env = &j["environ"];
    assert_eq!(env["SCRIPT_NAME"], "/app");
    assert_eq!(env["PATH_INFO"], "/x/y z");
    assert_eq!(env["QUERY_STRING"], "q=1");
    assert_eq!(env["REQUEST_URI"], "/app/x/y%20z?q=1");
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["SERVER_PORT"], site.port().to_string().as_str());
    assert_eq!(env["HTTP_X_CUSTOM"], "v 1");
    // nginx passes every request header as HTTP_*; the Proxy header must not become
    // HTTP_PROXY (httpoxy).
    assert_eq!(env.get("HTTP_PROXY"), None, "{env}");
    assert_eq!(j["gateway"]["kind"], "fastcgi");
    assert_eq!(j["gateway"]["multithread"], true);
    assert_eq!(j["input"]["length"], 0);

    let j = echo_json(&site.get("/", &[]), &site.nginx);
    assert_eq!(
        (
            j["environ"]["SCRIPT_NAME"].as_str(),
            j["environ"]["PATH_INFO"].as_str()
        ),
        (Some(""), Some("/"))
    );
}

/// 200 GETs of `/n/<i>` from 32 client threads at once; returns the failures.
fn hammer(port: u16) -> Vec<String> {
    const TOTAL: usize = 200;
    let next = AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= TOTAL {
                        break;
                    }
                    let path = format!("/n/{i}");
                    let r = support::http::try_request("GET", port, &path, &[], b"");
                    let ok = matches!(&r, Ok(r) if r.status == 200
                        && r.body == HELLO
                        && r.header("content-type") == Some("text/plain; charset=utf-8"));
                    if !ok {
                        let mut f = failures.lock().unwrap();
                        f.push(format!("{path}: {:?}", r.map(|r| (r.status, r.body))));
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

fn concurrent_requests(keep_conn: bool) {
    let site = Site::start(&cgate_bin(), &["--app", "hello"], keep_conn);
    let failures = hammer(site.port());
    assert!(
        failures.is_empty(),
        "{} of 200 failed: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        site.nginx.error_log()
    );
    site.assert_backend_alive();
    let r = site.get("/after", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
}

#[test]
fn concurrent_requests_with_kept_alive_upstream_connections() {
    concurrent_requests(true);
}

#[test]
fn concurrent_requests_with_a_connection_per_request() {
    concurrent_requests(false);
}

#[test]
fn streamed_response_arrives_chunk_by_chunk_without_buffering() {
    let site = Site::start(&demo_bin(), &[], true);
    let mut c = Conn::open(site.port()).expect("connect");
    c.send_request("GET", "/stream?n=3&ms=700", &[("Connection", "close")], b"")
        .expect("send");
    let head = c.read_head("GET").expect("head");
    assert_eq!(head.status, 200, "{}", site.nginx.error_log());
    let mut body = c.body(&head);
    let all = body.read_to_end().expect("body");
    assert_eq!(all, b"chunk 1\nchunk 2\nchunk 3\n");
    let arrivals = body.arrivals();
    // The piece holding "chunk 1" arrived before "chunk 3" existed: the app sleeps 2 x 700 ms
    // between producing them, so the two arrivals are at least that far apart (minus slack)
    // whenever nothing on the way buffers the response.
    let first = arrivals.first().expect("some body arrived");
    let last = arrivals.last().expect("some body arrived");
    assert!(
        first.offset + first.len < all.len(),
        "the whole body arrived at once: {arrivals:?}"
    );
    let gap = last.at.duration_since(first.at);
    assert!(
        gap >= Duration::from_secs(1),
        "first and last chunk arrived {gap:?} apart: {arrivals:?}"
    );
}

#[test]
fn bad_header_and_panic_become_clean_500s_and_the_server_goes_on() {
    let site = Site::start(&demo_bin(), &[], true);
    let r = site.get("/bad-header", &[]);
    assert_eq!(r.status, 500, "{}", site.nginx.error_log());
    assert_eq!(r.header("injected"), None);
    assert_eq!(r.header("x-bad"), None);
    assert!(
        !support::http::contains(&r.raw_head, b"Injected"),
        "{:?}",
        String::from_utf8_lossy(&r.raw_head)
    );
    assert!(!support::http::contains(&r.body, b"never sent"));
    let r = site.get("/panic", &[]);
    assert_eq!(r.status, 500, "{}", site.nginx.error_log());
    site.assert_backend_alive();
    let r = site.get("/", &[]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, support::golden::DEMO_HELLO_BODY)
    );
}

#[test]
fn gzip_compresses_for_clients_that_accept_it() {
    let site = Site::start(&cgate_bin(), &["--gzip", "--app", "echo"], true);
    let r = site.get("/app/z?k=v", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.status, 200, "{}", site.nginx.error_log());
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(r.body.as_slice())
        .read_to_end(&mut plain)
        .expect("body gunzips");
    let j: Value = serde_json::from_slice(&plain).expect("gunzipped body is JSON");
    assert_eq!(j["environ"]["PATH_INFO"], "/z");
    assert_eq!(j["environ"]["QUERY_STRING"], "k=v");
    assert_eq!(j["environ"]["HTTP_ACCEPT_ENCODING"], "gzip");
    // Without Accept-Encoding the same app answers plain JSON.
    let r = site.get("/app/z", &[]);
    assert_eq!(r.header("content-encoding"), None);
    let j = echo_json(&r, &site.nginx);
    assert_eq!(j["environ"]["PATH_INFO"], "/z");
}

#[test]
fn mounts_route_by_prefix_and_move_it_to_script_name() {
    let site = Site::start(
        &cgate_bin(),
        &["--mount", "/api=echo", "--mount", "/=hello"],
        true,
    );
    let j = echo_json(&site.get("/api/x?y=2", &[]), &site.nginx);
    assert_eq!(j["environ"]["SCRIPT_NAME"], "/api");
    assert_eq!(j["environ"]["PATH_INFO"], "/x");
    assert_eq!(j["environ"]["QUERY_STRING"], "y=2");
    // Through the /app/ location the mount prefix is appended to nginx's SCRIPT_NAME.
    let j = echo_json(&site.get("/app/api/x", &[]), &site.nginx);
    assert_eq!(j["environ"]["SCRIPT_NAME"], "/app/api");
    assert_eq!(j["environ"]["PATH_INFO"], "/x");
    for path in ["/other", "/apix", "/"] {
        let r = site.get(path, &[]);
        assert_eq!((r.status, r.body.as_slice()), (200, HELLO), "{path}");
    }
}

#[test]
fn spawn_fcgi_starts_cgate_without_a_subcommand() {
    let dir = TempDir::new("e2e-spawn-fcgi");
    let sock = dir.join("cgate.sock");
    let mut app = Command::new(cgate_bin());
    app.env("CGATE_APP", "echo");
    let cgate = spawn_fcgi(&sock, &app);
    let nginx = Nginx::start_with(&conf::nginx_upstream(&sock), &conf::nginx_site(true));
    let r = request("POST", nginx.port(), "/app/a?b=1", &[], b"abc");
    let j = echo_json(&r, &nginx);
    assert_eq!(j["gateway"]["kind"], "fastcgi");
    assert_eq!(j["environ"]["SCRIPT_NAME"], "/app");
    assert_eq!(j["environ"]["PATH_INFO"], "/a");
    assert_eq!(j["environ"]["QUERY_STRING"], "b=1");
    assert_eq!(j["input"]["sha256"], sha256_hex(b"abc").as_str());
    assert!(!cgate.proc.has_exited(), "{}", cgate.output());
}

/// The value of the first `key=` line of a systemd unit.
fn unit_value(unit: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    unit.lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .trim()
        .to_string()
}

fn read_conf(rel: &str) -> String {
    let p: PathBuf = support::manifest_dir().join("conf").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn systemd_units_serve_through_socket_activation() {
    let socket_unit = read_conf("systemd/cgate.socket");
    let service = read_conf("systemd/cgate.service");
    let listen = unit_value(&socket_unit, "ListenStream");
    assert!(listen.starts_with('/'), "ListenStream={listen}");
    let exec = unit_value(&service, "ExecStart");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(
        argv.get(1..4),
        Some(&["fastcgi", "--listen", "systemd"][..]),
        "{exec}"
    );
    // What systemd does for the pair: own the socket, start the service's command on the
    // first connection with LISTEN_FDS=1 / LISTEN_PID (fd 3). The unit's socket path and
    // binary are swapped for test ones.
    let dir = TempDir::new("e2e-systemd");
    let sock = dir.join("cgate.sock");
    let mut cmd = Command::new(support::find_program("systemd-socket-activate"));
    cmd.env_remove("CGATE_APP")
        .arg("--listen")
        .arg(&sock)
        .arg(cgate_bin())
        .args(&argv[1..]);
    let cgate = Backend::spawn("systemd-socket-activate", cmd, &[Ready::Path(sock.clone())]);
    let nginx = Nginx::start_with(&conf::nginx_upstream(&sock), &conf::nginx_site(true));
    for path in ["/", "/app/again"] {
        let r = request("GET", nginx.port(), path, &[], b"");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, HELLO),
            "{path} {}\n{}",
            nginx.error_log(),
            cgate.output()
        );
    }
    assert!(!cgate.proc.has_exited(), "{}", cgate.output());
}

#[test]
fn a_64mib_response_arrives_whole() {
    let len = 64usize << 20;
    let site = Site::start(&cgate_bin(), &["--app", &format!("bytes:{len}")], true);
    let r = site.get("/big", &[]);
    assert_eq!(r.status, 200, "{}", site.nginx.error_log());
    assert_eq!(r.body.len(), len);
    assert!(r.body.iter().all(|&b| b == b'x'));
    site.assert_backend_alive();
}

#[test]
fn client_leaving_mid_stream_does_not_disturb_the_server() {
    let site = Site::start(&demo_bin(), &[], true);
    for _ in 0..3 {
        let mut c = Conn::open(site.port()).expect("connect");
        c.send_request(
            "GET",
            "/stream?n=50&ms=100",
            &[("Connection", "close")],
            b"",
        )
        .expect("send");
        let head = c.read_head("GET").expect("head");
        assert_eq!(head.status, 200, "{}", site.nginx.error_log());
        let got = c
            .body(&head)
            .read_until(b"chunk 2\n")
            .expect("first chunks");
        assert!(got.starts_with(b"chunk 1\nchunk 2\n"), "{got:?}");
        drop(c);
    }
    site.assert_backend_alive();
    let r = site.get("/stream?n=2&ms=10", &[]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"chunk 1\nchunk 2\n"[..])
    );
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits_0() {
    let mut site = Site::start(&demo_bin(), &[], true);
    let mut c = Conn::open(site.port()).expect("connect");
    c.send_request("GET", "/stream?n=4&ms=400", &[("Connection", "close")], b"")
        .expect("send");
    let head = c.read_head("GET").expect("head");
    assert_eq!(head.status, 200, "{}", site.nginx.error_log());
    let mut body = c.body(&head);
    // The first chunk is here, so the app is inside the request when the signal comes.
    body.read_until(b"chunk 1\n").expect("first chunk");
    site.cgate.proc.signal(nix::sys::signal::Signal::SIGTERM);
    let all = body.read_to_end().expect("rest of the body");
    assert_eq!(all, b"chunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    let start = std::time::Instant::now();
    while !site.cgate.proc.has_exited() && start.elapsed() < support::TIMEOUT {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(site.cgate.proc.has_exited(), "{}", site.cgate.output());
    let status = site.cgate.stop().expect("cgate reaped");
    assert_eq!(status.code(), Some(0), "{}", site.cgate.output());
}
