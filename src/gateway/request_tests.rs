//! Tests of the request helpers.

use super::*;
use crate::gateway::environ::GatewayFacts;
use crate::gateway::input::BodyLength;

fn with_req<T>(vars: &[(&str, &[u8])], body: &[u8], f: impl FnOnce(&mut Request<'_>) -> T) -> T {
    let mut env = Environ::new(GatewayFacts::local());
    for (n, v) in vars {
        env.set(n, v);
    }
    let mut src = body;
    let mut errors = Vec::new();
    let len = env.get_str("CONTENT_LENGTH").and_then(|v| v.parse().ok());
    let length = len.map_or(BodyLength::Exact(0), BodyLength::Exact);
    let mut req = Request::new(env, Input::new(&mut src, length), &mut errors);
    f(&mut req)
}

#[test]
fn form_decoding_is_bytes_safe() {
    assert_eq!(form_decode(b"a+b%20c%00%ff%zz%4"), b"a b c\0\xff%zz%4");
    let f = Form::parse(b"a=1&&b=x+y&a=2&c&=v&d=%E2%82%AC&e=%ff");
    let all: Vec<_> = f.iter().collect();
    assert_eq!(
        all,
        [
            (&b"a"[..], &b"1"[..]),
            (b"b", b"x y"),
            (b"a", b"2"),
            (b"c", b""),
            (b"", b"v"),
            (b"d", "\u{20ac}".as_bytes()),
            (b"e", b"\xff"),
        ]
    );
    assert_eq!(f.get("a"), Some("1"));
    assert_eq!(f.get_all("a").collect::<Vec<_>>(), [b"1", b"2"]);
    assert_eq!(f.get("e"), None);
    assert_eq!(f.get_bytes("e"), Some(&b"\xff"[..]));
}

#[test]
fn headers_by_http_name() {
    let vars: &[(&str, &[u8])] = &[
        ("HTTP_ACCEPT_ENCODING", b"gzip"),
        ("CONTENT_TYPE", b"text/plain"),
        ("QUERY_STRING", b"q=a%2Bb+c"),
    ];
    with_req(vars, b"", |r| {
        assert_eq!(r.header_str("accept-encoding"), Some("gzip"));
        assert_eq!(r.header("Content-Type"), Some(&b"text/plain"[..]));
        assert_eq!(r.header("X-Missing"), None);
        assert_eq!(r.query().get("q"), Some("a+b c"));
    });
}

#[test]
fn shift_path_info_moves_one_segment() {
    let vars: &[(&str, &[u8])] = &[("SCRIPT_NAME", b"/app"), ("PATH_INFO", b"//./users/7")];
    with_req(vars, b"", |r| {
        assert_eq!(r.shift_path_info(), Some(b"users".to_vec()));
        assert_eq!(r.environ.script_name(), b"/app/users");
        assert_eq!(r.environ.path_info(), b"/7");
        assert_eq!(r.shift_path_info(), Some(b"7".to_vec()));
        assert_eq!(r.environ.path_info(), b"");
        assert_eq!(r.shift_path_info(), None);
        assert_eq!(r.environ.script_name(), b"/app/users/7");
    });
}

#[test]
fn urls_are_rebuilt() {
    let vars: &[(&str, &[u8])] = &[
        ("SERVER_NAME", b"example.org"),
        ("SERVER_PORT", b"8080"),
        ("SCRIPT_NAME", b"/a b"),
        ("PATH_INFO", b"/\xc3\xa9"),
        ("QUERY_STRING", b"x=1"),
    ];
    with_req(vars, b"", |r| {
        assert_eq!(r.url(), "http://example.org:8080/a%20b/%C3%A9?x=1");
        assert_eq!(r.request_uri(), "/a%20b/%C3%A9?x=1");
        r.environ.set("HTTP_HOST", "h:1");
        r.environ.set("REQUEST_URI", "/orig?x=1");
        assert_eq!(r.url(), "http://h:1/a%20b/%C3%A9?x=1");
        assert_eq!(r.request_uri(), "/orig?x=1");
    });
}

#[test]
fn body_reads_are_capped() {
    let vars: &[(&str, &[u8])] = &[("CONTENT_LENGTH", b"5")];
    with_req(vars, b"hello world", |r| {
        assert_eq!(
            r.read_body(4).unwrap_err().status(),
            Status::CONTENT_TOO_LARGE
        );
        assert_eq!(r.input.consumed(), 0, "refused before reading");
    });
    with_req(vars, b"hello world", |r| {
        assert_eq!(r.read_body(5).unwrap(), b"hello")
    });
    let mut src: &[u8] = &[b'x'; 100];
    let mut errors = Vec::new();
    let input = Input::new(&mut src, BodyLength::ToEnd { max: 1000 });
    let mut r = Request::new(Environ::new(GatewayFacts::local()), input, &mut errors);
    assert_eq!(r.read_body(10).unwrap_err().status().code(), 413);
    assert_eq!(r.input.consumed(), 11);
}

#[test]
fn forms_need_their_type() {
    let vars: &[(&str, &[u8])] = &[
        ("CONTENT_LENGTH", b"7"),
        (
            "CONTENT_TYPE",
            b"application/x-www-form-urlencoded; charset=utf-8",
        ),
    ];
    with_req(vars, b"a=1&b=2", |r| {
        assert_eq!(r.read_form(100).unwrap().len(), 2)
    });
    let vars: &[(&str, &[u8])] = &[("CONTENT_LENGTH", b"7"), ("CONTENT_TYPE", b"text/plain")];
    with_req(vars, b"a=1&b=2", |r| {
        assert_eq!(r.read_form(100).unwrap_err().status().code(), 415)
    });
}
