//! The CGI reply parser fed whole and in pieces: the same head (or the same error) and the
//! same body bytes; a head it accepts is clean (a valid status, token names, values without
//! control bytes, bounded by the limit).
//!
//! Library paths: `cgate::cgi::reply::{ReplyParser, Progress, ReplyHead}`,
//! `cgate::gateway::head::{is_token, is_field_value, parse_status}`.

use cgate::cgi::reply::{Progress, ReplyHead, ReplyParser};
use cgate::gateway::head::{is_field_value, is_token, parse_status};

use crate::split::{chunks, cuts_and_stream};

/// Limit used by the check: small, so that the limit is reached too.
pub const MAX_HEAD: usize = 1024;

/// The parser's verdict after all of `pieces` and the end of output: the head and the body
/// that followed it, or the error text.
pub fn parse(pieces: &[&[u8]]) -> Result<(ReplyHead, Vec<u8>), String> {
    let mut parser = ReplyParser::new(MAX_HEAD);
    let mut found: Option<(ReplyHead, Vec<u8>)> = None;
    for piece in pieces {
        if let Some((_, body)) = found.as_mut() {
            body.extend_from_slice(piece);
            continue;
        }
        match parser.feed(piece) {
            Progress::NeedMore => {}
            Progress::Head { head, body } => found = Some((head, body)),
            Progress::Error(e) => return Err(e.to_string()),
        }
    }
    match found {
        Some(done) => Ok(done),
        None => match parser.finish() {
            Progress::Error(e) => Err(e.to_string()),
            other => panic!("finish without a head answered {other:?}"),
        },
    }
}

/// Whole and split agree; an accepted head is clean.
pub fn check(data: &[u8]) {
    let (cuts, stream) = cuts_and_stream(data);
    let whole = parse(&[stream]);
    assert_eq!(whole, parse(&chunks(stream, &cuts)), "cuts {cuts:?}");
    let Ok((head, body)) = whole else { return };
    let code = parse_status(&head.status).expect("accepted status parses");
    assert!((200..=599).contains(&code), "status {code}");
    for (name, value) in &head.headers {
        assert!(is_token(name.as_bytes()), "name {name:?}");
        assert!(is_field_value(value), "value of {name}: {value:?}");
        assert!(
            !name.eq_ignore_ascii_case("status"),
            "Status passed as a header"
        );
    }
    let head_len = stream.len() - body.len();
    assert!(head_len <= MAX_HEAD, "head of {head_len} bytes accepted");
    assert!(stream.ends_with(&body), "body is the tail of the output");
}
