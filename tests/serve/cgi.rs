//! `--app cgi:DIR` through serve: the script tests' scripts answer over HTTP with the runner's rules.

use crate::support::http::{Framing, get, request};
use crate::support::{TempDir, data};
use crate::{Serve, cgi_dir};

fn lines_of(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn cgi_scripts_through_serve() {
    let dir = TempDir::new("serve-cgi");
    let cgi = cgi_dir(&dir);
    let s = Serve::start(&["--app", &format!("cgi:{}", cgi.display())]);

    let r = get(s.port, "/hello.sh");
    assert_eq!((r.status, r.text()), (200, "Hello from CGI\n"));
    assert_eq!(r.header("content-type"), Some("text/plain"));

    let r = get(s.port, "/not-found.sh");
    assert_eq!(
        (r.status, r.reason.as_str(), r.text()),
        (404, "Not Found", "no such thing\n")
    );

    let r = get(s.port, "/redirect.sh");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://example.com/elsewhere?a=1")
    );
    assert!(r.body.is_empty());

    let r = get(s.port, "/binary.sh");
    assert_eq!(r.body, b"\x00\x01\x02\xff\xfe\r\n\n\x00end");

    for case in ["nohead", "notype", "cr", "hopbyhop"] {
        let r = get(s.port, &format!("/bad-reply.sh?{case}"));
        assert_eq!(r.status, 502, "{case}");
        assert_eq!(r.header("x-leak"), None, "{case}");
    }
    assert_eq!(get(s.port, "/no-such-script").status, 404);
    assert_eq!(get(s.port, "/hello.sh/../../x").status, 400);

    let r = get(s.port, "/big.sh");
    assert_eq!(r.body.len(), 10 << 20);
    assert!(r.body.iter().all(|&b| b == b'x'));

    let body = data(3 << 20, 9);
    let r = request("POST", s.port, "/echo-body.sh?first", &[], &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-content-length"), Some("3145728"));
    assert_eq!(r.body.len(), (1 << 20) + body.len());
    assert!(r.body[..1 << 20].iter().all(|&b| b == b'f'));
    assert!(r.body[1 << 20..] == body[..]);
}

#[test]
fn cgi_script_environment_comes_from_the_serve_environ() {
    let dir = TempDir::new("serve-cgi-env");
    let cgi = cgi_dir(&dir);
    let s = Serve::start(&["--app", &format!("cgi:{}", cgi.display())]);
    let headers = [("Proxy", "http://evil.example/"), ("X-Thing", "1")];
    let r = request("GET", s.port, "/env.sh/extra/path?a=1", &headers, b"");
    assert_eq!(r.status, 200);
    let lines = lines_of(&r.body);
    let has = |l: &str| lines.iter().any(|x| x == l);
    for want in [
        "GATEWAY_INTERFACE=CGI/1.1",
        "REQUEST_METHOD=GET",
        "SCRIPT_NAME=/env.sh",
        "PATH_INFO=/extra/path",
        "QUERY_STRING=a=1",
        "REQUEST_URI=/env.sh/extra/path?a=1",
        "SERVER_PROTOCOL=HTTP/1.1",
        "REMOTE_ADDR=127.0.0.1",
        "SERVER_NAME=127.0.0.1",
        &format!("SERVER_PORT={}", s.port),
        "HTTP_X_THING=1",
        "PATH=/usr/local/bin:/usr/bin:/bin",
    ] {
        assert!(has(want), "{want} missing from\n{}", lines.join("\n"));
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("HTTP_PROXY=")),
        "{lines:?}"
    );

    // Chunked uploads reach a script too (no CONTENT_LENGTH: the runner streams to EOF).
    let te = [("Transfer-Encoding", "chunked")];
    let chunked = crate::support::http::chunked(&[b"abc", b"defg"]);
    let r = request("POST", s.port, "/echo-body.sh", &te, &chunked);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abcdefg"[..]));
    let mut c = crate::support::http::Conn::open(s.port).expect("connect");
    c.send_request("GET", "/big.sh", &[], b"").expect("send");
    let head = c.read_head("GET").expect("head");
    assert_eq!(head.framing, Framing::Chunked);
}
