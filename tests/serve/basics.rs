//! Exact replies, HEAD, keep-alive, gateway answers (400, 404, 413), start-up and access log lines.

use crate::support::TIMEOUT;
use crate::support::http::{Conn, get, request};
use crate::{Serve, curl, environ_of};

const HELLO_HEAD: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n";

/// Splits the `Date` line out of a raw response head: the head without it, and its value.
fn without_date(raw: &[u8]) -> (String, String) {
    let text = String::from_utf8(raw.to_vec()).expect("head is ASCII");
    let mut date = String::new();
    let mut rest = String::new();
    for line in text.split_inclusive("\r\n") {
        match line.strip_prefix("Date: ") {
            Some(d) => date = d.trim_end().to_owned(),
            None => rest.push_str(line),
        }
    }
    (rest, date)
}

fn assert_http_date(d: &str) {
    // IMF-fixdate, e.g. "Tue, 01 Dec 2026 06:54:52 GMT".
    assert_eq!(d.len(), 29, "{d:?}");
    assert!(d.ends_with(" GMT") && d.as_bytes()[3] == b',', "{d:?}");
}

#[test]
fn hello_exact_bytes_std_client_and_curl() {
    let s = Serve::start(&["--app", "hello"]);
    // The std client asks for `Connection: close`: the server says it closes.
    let r = request("GET", s.port, "/", &[], b"");
    let (head, date) = without_date(&r.raw_head);
    assert_eq!(head, format!("{HELLO_HEAD}Connection: close\r\n\r\n"));
    assert_http_date(&date);
    assert_eq!(r.body, b"Hello, world!\n");

    let out = curl(&["-i", &s.url("/any/path?q=1")]);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end")
        + 4;
    let (head, date) = without_date(&out[..split]);
    assert_eq!(head, format!("{HELLO_HEAD}\r\n"));
    assert_http_date(&date);
    assert_eq!(&out[split..], b"Hello, world!\n");
}

#[test]
fn start_up_line_and_one_access_line_per_request() {
    let s = Serve::start(&["--app", "hello"]);
    let url = format!(
        "cgate: serving on http://127.0.0.1:{}/ (Ctrl-C stops)\n",
        s.port
    );
    s.wait_log(&url);
    assert_eq!(get(s.port, "/a?b=1").status, 200);
    assert_eq!(request("POST", s.port, "/p", &[], b"xyz").status, 200);
    s.wait_log("127.0.0.1 POST /p 200 14 ");
    let log = s.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("127.0.0.1 "))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].starts_with("127.0.0.1 GET /a?b=1 200 14 "),
        "{log}"
    );
    for l in lines {
        let ms = l.rsplit(' ').next().expect("last field");
        let n: f64 = ms
            .strip_suffix("ms")
            .expect("ms")
            .parse()
            .expect("a number");
        assert!(n >= 0.0, "{l}");
    }
}

#[test]
fn head_gives_the_get_head_without_a_body() {
    let s = Serve::start(&["--app", "hello"]);
    let mut c = Conn::open(s.port).expect("connect");
    let r = c.roundtrip("HEAD", "/", &[], b"");
    let (head, _) = without_date(&r.raw_head);
    assert_eq!(head, format!("{HELLO_HEAD}\r\n"));
    assert!(r.body.is_empty());
    // The connection stays usable: nothing of a body was sent after the head.
    let r = c.roundtrip("GET", "/", &[], b"");
    assert_eq!(r.body, b"Hello, world!\n");
    s.wait_log("127.0.0.1 HEAD / 200 0 ");

    let out = curl(&["-sI", &s.url("/")]);
    let (head, _) = without_date(&out);
    assert_eq!(head, format!("{HELLO_HEAD}\r\n"));

    // A streamed reply (gzip) to HEAD: the head only, and the log line says it ended well.
    let g = Serve::start(&["--app", "hello", "--gzip"]);
    let gz = [("Accept-Encoding", "gzip")];
    let get = request("GET", g.port, "/", &gz, b"");
    assert_eq!(get.header("content-encoding"), Some("gzip"));
    let head = request("HEAD", g.port, "/", &gz, b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    g.wait_log("127.0.0.1 HEAD / 200 0 ");
    let log = g.log();
    let line = log
        .lines()
        .find(|l| l.contains(" HEAD "))
        .expect("HEAD line");
    assert!(line.ends_with("ms"), "{line}");
}

#[test]
fn keep_alive_reuses_one_connection() {
    let s = Serve::start(&["--app", "echo"]);
    let mut c = Conn::open(s.port).expect("connect");
    let mut ports = Vec::new();
    for i in 0..3 {
        let r = c.roundtrip("GET", &format!("/k{i}"), &[], b"");
        assert_eq!(r.status, 200);
        let env = environ_of(&r.body);
        assert_eq!(env["PATH_INFO"], format!("/k{i}"));
        ports.push(env["REMOTE_PORT"].as_str().expect("port").to_owned());
    }
    let local = c
        .stream()
        .local_addr()
        .expect("local addr")
        .port()
        .to_string();
    assert_eq!(ports, vec![local.clone(), local.clone(), local]);
    assert!(!c.is_closed_by_peer(std::time::Duration::from_millis(50)));
    // HTTP/1.0 without keep-alive: the server closes after the reply.
    c.write_raw(b"GET /last HTTP/1.0\r\n\r\n").expect("send");
    let r = c.read_response("GET").expect("reply");
    assert_eq!(r.status, 200);
    assert_eq!(environ_of(&r.body)["SERVER_PROTOCOL"], "HTTP/1.0");
    assert!(c.is_closed_by_peer(TIMEOUT));
}

#[test]
fn gateway_answers_bad_paths_mounts_and_big_bodies() {
    let s = Serve::start(&["--mount", "/api=echo", "--max-body", "1000"]);
    let r = get(s.port, "/api/x");
    assert_eq!(environ_of(&r.body)["SCRIPT_NAME"], "/api");
    assert_eq!(get(s.port, "/elsewhere").status, 404);
    for bad in ["/a%00b", "/%zz", "/../etc/passwd"] {
        let r = get(s.port, bad);
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    }
    // A declared body over --max-body: 413 at once, and no 100 Continue invites it.
    let mut c = Conn::open(s.port).expect("connect");
    let head = "POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\
                Expect: 100-continue\r\n\r\n";
    c.write_raw(head.as_bytes()).expect("send head");
    let r = c.read_response("POST").expect("reply");
    assert_eq!(r.status, 413);
    assert!(
        r.raw_head
            .starts_with(b"HTTP/1.1 413 Payload Too Large\r\n")
    );
    assert_eq!(
        r.text(),
        "request body of 1001 bytes is over the 1000-byte limit\n"
    );
}
