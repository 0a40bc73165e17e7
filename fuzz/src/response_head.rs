//! The response head on the wire, from a CGI script's reply (the cgi:DIR path: reply parser,
//! header validation, response rules) or from an app's `start` call: no CR, LF or NUL inside
//! a line, at most one Content-Length and only `[0-9]+`, no more body than it declares, and
//! output bounded by the input.
//!
//! Library paths: `cgate::cgi::reply::{ReplyParser, Progress}`, `cgate::gateway::{Head,
//! Environ, Input, Request, Body, CgiSink, run_app, app_fn}`,
//! `cgate::gateway::input::parse_content_length`,
//! `cgate::fastcgi::server::responder::FASTCGI_FACTS`.

use std::io::Empty;

use cgate::cgi::reply::{Progress, ReplyParser};
use cgate::fastcgi::server::responder::FASTCGI_FACTS;
use cgate::gateway::{
    AppError, Body, CgiSink, Environ, Head, Input, Request, app_fn, parse_content_length, run_app,
};

/// Most bytes a response may add to its input besides 3 a line (`: ` and CR, for a line
/// without its own `:`): the `Status: ` line, an added Content-Length, or the whole 500.
const OVERHEAD: usize = 256;

/// First byte even: `rest` is a CGI script's output. Odd: `rest` is lines, the first the
/// status and each other `name:value` (split at the first `:`), then a NUL, then the body.
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let wire = if mode & 1 == 0 {
        respond(|req, resp| script_reply(rest, req, resp))
    } else {
        respond(|_, resp| app_start(rest, resp))
    };
    let lines = rest.iter().filter(|&&b| b == b'\n').count();
    assert!(
        wire.len() <= rest.len() + 3 * lines + OVERHEAD,
        "{} bytes out for {} in",
        wire.len(),
        rest.len()
    );
    check_wire(&wire);
}

type Answer<'a> = Result<Body<'a>, AppError>;

fn respond<F>(f: F) -> Vec<u8>
where
    F: Fn(&mut Request<'_>, &mut cgate::Response<'_>) -> Answer<'static> + Send + Sync,
{
    let app = app_fn(move |req: &mut Request<'_>, resp: &mut cgate::Response<'_>| f(req, resp));
    let mut none: Empty = std::io::empty();
    let mut errors = Vec::new();
    let mut req = Request::new(
        Environ::new(FASTCGI_FACTS),
        Input::empty(&mut none),
        &mut errors,
    );
    let mut sink = CgiSink::new(Vec::new());
    run_app(&app, &mut req, &mut sink);
    sink.into_inner()
}

/// What cgi:DIR does with a script's output: parse, validate, forward the body.
fn script_reply(
    out: &[u8],
    _: &mut Request<'_>,
    resp: &mut cgate::Response<'_>,
) -> Answer<'static> {
    let mut parser = ReplyParser::new(cgate::cgi::reply::DEFAULT_MAX_HEADER_BYTES);
    match parser.feed(out) {
        Progress::Head { head, body } => {
            let pairs = head.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
            let h = Head::new(&head.status, cgate::gateway::head::from_pairs(pairs))
                .map_err(AppError::from)?;
            resp.start_head(h)?;
            if head.body == cgate::cgi::reply::BodyRule::Forward {
                resp.write(&body)?;
            }
            Ok(Body::Empty)
        }
        _ => Err(AppError::msg("bad reply")),
    }
}

fn app_start(spec: &[u8], resp: &mut cgate::Response<'_>) -> Answer<'static> {
    let (head, body) = match spec.iter().position(|&b| b == 0) {
        Some(i) => (&spec[..i], &spec[i + 1..]),
        None => (spec, &[][..]),
    };
    // An app passes the status and names as `&str`: input that is not UTF-8 there is not an
    // app's (a lossy conversion would also grow it past the output bound).
    let text = |b: &[u8]| std::str::from_utf8(b).map(str::to_owned);
    let mut lines = head.split(|&b| b == b'\n');
    let Ok(status) = text(lines.next().unwrap_or_default()) else {
        return Err(AppError::msg("status not UTF-8"));
    };
    let mut headers = Vec::new();
    for l in lines {
        let i = l.iter().position(|&b| b == b':').unwrap_or(l.len());
        let Ok(name) = text(&l[..i]) else {
            return Err(AppError::msg("name not UTF-8"));
        };
        headers.push((name, l.get(i + 1..).unwrap_or_default().to_vec()));
    }
    resp.start(&status, headers)?;
    Ok(Body::from(body.to_vec()))
}

/// The CGI-format response: head lines, blank line, body.
pub fn check_wire(wire: &[u8]) {
    let end = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head ending in a blank line");
    let (head, body) = (&wire[..end], &wire[end + 4..]);
    let mut lengths = Vec::new();
    for (i, line) in head.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(!line.is_empty(), "empty line {i} inside the head");
        assert!(
            !line.iter().any(|&b| b == b'\r' || b == 0),
            "line {i}: {line:?}"
        );
        if i == 0 {
            assert!(line.starts_with(b"Status: "), "first line {line:?}");
            continue;
        }
        let colon = line.iter().position(|&b| b == b':').expect("a colon");
        if line[..colon].eq_ignore_ascii_case(b"content-length") {
            lengths.push(line[colon + 1..].trim_ascii().to_vec());
        }
    }
    assert!(lengths.len() <= 1, "Content-Length {} times", lengths.len());
    if let Some(v) = lengths.first() {
        let n = parse_content_length(Some(v))
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("Content-Length {:?}", String::from_utf8_lossy(v)));
        assert!(
            body.len() as u64 <= n,
            "{} body bytes for Content-Length {n}",
            body.len()
        );
    }
}
