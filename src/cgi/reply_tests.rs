//! Tests of the CGI reply parser: good and hostile replies, fed whole, split and byte by byte.

use super::*;

const MAX: usize = 256;
const F: BodyRule = BodyRule::Forward;
const D: BodyRule = BodyRule::Discard;
const E: BodyRule = BodyRule::MustBeEmpty;

fn whole(input: &[u8]) -> Progress {
    let mut p = ReplyParser::new(MAX);
    match p.feed(input) {
        Progress::NeedMore => p.finish(),
        other => other,
    }
}

/// Feeds one byte at a time; the body is what came after the head, fed back in.
fn bytewise(input: &[u8]) -> Progress {
    let mut p = ReplyParser::new(MAX);
    for (i, b) in input.iter().enumerate() {
        match p.feed(std::slice::from_ref(b)) {
            Progress::NeedMore => {}
            Progress::Head { head, body } => {
                assert!(body.is_empty());
                return Progress::Head {
                    head,
                    body: input[i + 1..].to_vec(),
                };
            }
            e => return e,
        }
    }
    p.finish()
}

fn head(status: &str, headers: &[(&str, &str)], body: BodyRule) -> ReplyHead {
    ReplyHead {
        status: status.to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect(),
        body,
    }
}

fn ok(h: ReplyHead, body: &[u8]) -> Progress {
    Progress::Head {
        head: h,
        body: body.to_vec(),
    }
}

fn err(e: ReplyError) -> Progress {
    Progress::Error(e)
}

fn table() -> Vec<(&'static [u8], Progress)> {
    let text = [("Content-Type", "text/plain")];
    vec![
        (
            b"Content-Type: text/plain\n\nhi\n",
            ok(head("200 OK", &text, F), b"hi\n"),
        ),
        (
            b"Content-Type: text/plain\r\n\r\n",
            ok(head("200 OK", &text, F), b""),
        ),
        (
            b"Content-Type:text/plain  \r\n\nx",
            ok(head("200 OK", &text, F), b"x"),
        ),
        (
            b"Status: 404 Not Found\nContent-Type: text/plain\n\nno",
            ok(head("404 Not Found", &text, F), b"no"),
        ),
        (
            b"status: 404\ncontent-type: a/b\n\n",
            ok(head("404 Not Found", &[("content-type", "a/b")], F), b""),
        ),
        (
            b"Status: 299\nContent-Type: a/b\n\n",
            ok(head("299 ", &[("Content-Type", "a/b")], F), b""),
        ),
        (
            b"Status:  201   Made it \nContent-Type: a/b\n\n",
            ok(head("201 Made it", &[("Content-Type", "a/b")], F), b""),
        ),
        (
            b"Location: https://example.com/x\n\nignored",
            ok(
                head("302 Found", &[("Location", "https://example.com/x")], D),
                b"ignored",
            ),
        ),
        (
            b"Location: /local?q=1\nContent-Length: 7\n\n",
            ok(head("302 Found", &[("Location", "/local?q=1")], D), b""),
        ),
        (
            b"Status: 301 Moved\nLocation: /new\nContent-Type: text/html\n\n<a>",
            ok(
                head(
                    "301 Moved",
                    &[("Location", "/new"), ("Content-Type", "text/html")],
                    F,
                ),
                b"<a>",
            ),
        ),
        (
            b"Status: 204\nX-A: 1\n\n",
            ok(head("204 No Content", &[("X-A", "1")], D), b""),
        ),
        (
            b"Status: 304 Not Modified\n\n",
            ok(head("304 Not Modified", &[], D), b""),
        ),
        (
            b"Content-Type: a/b\nX-Multi: 1\nX-Multi: 2\nX-Empty:\n\n\n\n",
            ok(
                head(
                    "200 OK",
                    &[
                        ("Content-Type", "a/b"),
                        ("X-Multi", "1"),
                        ("X-Multi", "2"),
                        ("X-Empty", ""),
                    ],
                    F,
                ),
                b"\n\n",
            ),
        ),
        (
            b"Content-Type: a/b\nX: \xe9t\xe9\n\n",
            ok(
                ReplyHead {
                    status: "200 OK".into(),
                    headers: vec![
                        ("Content-Type".into(), b"a/b".to_vec()),
                        ("X".into(), b"\xe9t\xe9".to_vec()),
                    ],
                    body: F,
                },
                b"",
            ),
        ),
        // hostile or broken replies
        (b"", err(ReplyError::Incomplete)),
        (b"Content-Type: text/plain\n", err(ReplyError::Incomplete)),
        (
            b"Content-Type: text/plain\r\nbody without blank line",
            err(ReplyError::Incomplete),
        ),
        (b"\n\nhello", err(ReplyError::NoContentType)),
        (b"X-Only: 1\n\nhello", err(ReplyError::NoContentType)),
        (b"Status: 200 OK\n\n", ok(head("200 OK", &[], E), b"")),
        (
            b"Status: 404 Not Found\r\nExpires: Fri, 01 Jan 1980 00:00:00 GMT\r\n\r\n",
            ok(
                head(
                    "404 Not Found",
                    &[("Expires", "Fri, 01 Jan 1980 00:00:00 GMT")],
                    E,
                ),
                b"",
            ),
        ),
        (
            b"Status: 403\nContent-Length: 0\n\n",
            ok(head("403 Forbidden", &[], E), b""),
        ),
        (
            b"Status: 304\nContent-Type: a/b\nContent-Length: 10\n\nbody",
            ok(
                head(
                    "304 Not Modified",
                    &[("Content-Type", "a/b"), ("Content-Length", "10")],
                    D,
                ),
                b"body",
            ),
        ),
        (
            b"Status: 204\nContent-Type: a/b\nContent-Length: 3\n\n",
            ok(head("204 No Content", &[("Content-Type", "a/b")], D), b""),
        ),
        (
            b"Content-Type: a/b\nContent-Length: 4\ncontent-length: 4\n\nbody",
            ok(
                head(
                    "200 OK",
                    &[("Content-Type", "a/b"), ("Content-Length", "4")],
                    F,
                ),
                b"body",
            ),
        ),
        (
            b"Content-Type: a/b\nContent-Length: 1\nContent-Length: 100\n\nbody",
            err(ReplyError::Duplicate("Content-Length")),
        ),
        (
            b"Content-Type: a/b\nContent-Length: abc\n\n",
            err(ReplyError::BadLength("abc".into())),
        ),
        (
            b"Content-Type: a/b\nContent-Length: +4\n\n",
            err(ReplyError::BadLength("+4".into())),
        ),
        (
            b"Content-Type: a/b\nContent-Length: 5G\n\n",
            err(ReplyError::BadLength("5G".into())),
        ),
        (
            b"Content-Type: a/b\nContent-Length: 1, 1\n\n",
            err(ReplyError::BadLength("1, 1".into())),
        ),
        (
            b"Content-Type: a/b\nContent-Length: 18446744073709551616\n\n",
            err(ReplyError::BadLength("18446744073709551616".into())),
        ),
        (
            b"Content-Type: a/b\nContent-Length:\n\n",
            err(ReplyError::BadLength(String::new())),
        ),
        (b"<html>\n\n", err(ReplyError::NoColon)),
        (b"Content-Type: a/b\n folded\n\n", err(ReplyError::Folded)),
        (
            b"Bad Name: 1\nContent-Type: a/b\n\n",
            err(ReplyError::BadName("Bad Name".into())),
        ),
        (
            b"Content-Type : a/b\n\n",
            err(ReplyError::BadName("Content-Type ".into())),
        ),
        (
            b": v\nContent-Type: a/b\n\n",
            err(ReplyError::BadName(String::new())),
        ),
        (
            b"Content-Type: a/b\nX: a\rInjected: 1\n\n",
            err(ReplyError::BadValue("X".into())),
        ),
        (
            b"Content-Type: a/b\nX: nul\0\n\n",
            err(ReplyError::BadValue("X".into())),
        ),
        (
            b"Content-Type: a/b\r\r\n\r\n",
            err(ReplyError::BadValue("Content-Type".into())),
        ),
        (
            b"Status: 20\nContent-Type: a/b\n\n",
            err(ReplyError::BadStatus("20".into())),
        ),
        (
            b"Status: 2000 OK\nContent-Type: a/b\n\n",
            err(ReplyError::BadStatus("2000 OK".into())),
        ),
        (
            b"Status: 100 Continue\nContent-Type: a/b\n\n",
            err(ReplyError::BadStatus("100 Continue".into())),
        ),
        (
            b"Status: 600 X\nContent-Type: a/b\n\n",
            err(ReplyError::BadStatus("600 X".into())),
        ),
        (
            b"Status: abc\nContent-Type: a/b\n\n",
            err(ReplyError::BadStatus("abc".into())),
        ),
        (
            b"Status: \nContent-Type: a/b\n\n",
            err(ReplyError::BadStatus(String::new())),
        ),
        (
            b"Status: 200 \xff\nContent-Type: a/b\n\n",
            err(ReplyError::BadStatus("200 \u{fffd}".into())),
        ),
        (
            b"Status: 200\nStatus: 404\nContent-Type: a/b\n\n",
            err(ReplyError::Duplicate("Status")),
        ),
        (
            b"Content-Type: a/b\ncontent-type: c/d\n\n",
            err(ReplyError::Duplicate("Content-Type")),
        ),
        (
            b"Location: /a\nLocation: /b\n\n",
            err(ReplyError::Duplicate("Location")),
        ),
        (b"Location: \n\n", err(ReplyError::Empty("Location"))),
        (b"Content-Type:\n\n", err(ReplyError::Empty("Content-Type"))),
    ]
}

#[test]
fn good_and_hostile_replies_whole_and_bytewise() {
    for (input, want) in table() {
        assert_eq!(
            whole(input),
            want,
            "whole: {:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(
            bytewise(input),
            want,
            "bytewise: {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn head_size_is_bounded() {
    let mut long = b"Content-Type: a/b\nX: ".to_vec();
    long.resize(MAX - 1, b'a');
    long.push(b'\n');
    // exactly MAX bytes with the blank line: accepted
    let mut exact = long[..MAX - 2].to_vec();
    exact.extend_from_slice(b"\n\n");
    assert_eq!(exact.len(), MAX);
    assert!(matches!(whole(&exact), Progress::Head { .. }));
    assert!(matches!(bytewise(&exact), Progress::Head { .. }));
    let mut over = exact[..MAX - 2].to_vec();
    over.extend_from_slice(b"a\n\n");
    assert_eq!(whole(&over), err(ReplyError::TooLarge(MAX)));
    assert_eq!(bytewise(&over), err(ReplyError::TooLarge(MAX)));
    // one endless line never buffers past the limit
    let mut p = ReplyParser::new(MAX);
    assert_eq!(p.feed(&[b'a'; 100]), Progress::NeedMore);
    assert_eq!(p.feed(&[b'a'; 1000]), err(ReplyError::TooLarge(MAX)));
    assert!(p.buf.capacity() <= MAX);
    assert_eq!(p.feed(b"\n\n"), err(ReplyError::Done));
    assert_eq!(p.finish(), err(ReplyError::Done));
}

#[test]
fn header_line_count_is_capped() {
    let mut reply = b"Content-Type: a/b\n".to_vec();
    for i in 1..MAX_HEADER_LINES {
        reply.extend_from_slice(format!("X-{i}: v\n").as_bytes());
    }
    reply.push(b'\n');
    let mut p = ReplyParser::new(usize::MAX);
    match p.feed(&reply) {
        Progress::Head { head, .. } => assert_eq!(head.headers.len(), MAX_HEADER_LINES),
        other => panic!("{other:?}"),
    }
    reply.pop();
    reply.extend_from_slice(b"X-Last: v\n\n");
    let mut p = ReplyParser::new(usize::MAX);
    assert_eq!(
        p.feed(&reply),
        err(ReplyError::TooManyLines(MAX_HEADER_LINES))
    );
}

#[test]
fn split_anywhere_gives_the_same_answer() {
    let input: &[u8] = b"Status: 404\r\nContent-Type: text/plain\r\nX-A: b\r\n\r\nbody\r\n";
    let want = whole(input);
    for cut in 0..=input.len() {
        let mut p = ReplyParser::new(MAX);
        let got = match p.feed(&input[..cut]) {
            Progress::NeedMore => match p.feed(&input[cut..]) {
                Progress::NeedMore => p.finish(),
                other => other,
            },
            Progress::Head { head, mut body } => {
                body.extend_from_slice(&input[cut..]);
                Progress::Head { head, body }
            }
            e => e,
        };
        assert_eq!(got, want, "cut at {cut}");
    }
}

proptest::proptest! {
    #[test]
    fn never_panics_and_stays_bounded(input in proptest::collection::vec(proptest::num::u8::ANY, 0..600), cut in 0usize..600) {
        let cut = cut.min(input.len());
        let mut p = ReplyParser::new(MAX);
        let first = p.feed(&input[..cut]);
        if first == Progress::NeedMore {
            let _ = p.feed(&input[cut..]);
            let _ = p.finish();
        }
        proptest::prop_assert!(p.buf.len() <= MAX);
        if let Progress::Head { head, .. } = whole(&input) {
            proptest::prop_assert!(crate::gateway::head::parse_status(&head.status).is_ok());
        }
    }
}
