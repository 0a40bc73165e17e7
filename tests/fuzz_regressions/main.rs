//! Inputs the fuzz targets (fuzz/) found breaking an invariant, kept as exact-byte tests.
//!
//! Each test names its target and the saved input; the expected bytes are the rule the
//! target checks (see fuzz/src/), not what the code happened to do.

#[path = "../support/mod.rs"]
mod support;

use std::io::Read;

use cgate::cgi::reply::{DEFAULT_MAX_HEADER_BYTES, Progress, ReplyParser};
use cgate::gateway::{AppError, Body, Head, Request, Response};
use cgate::local::LocalRequest;
use support::golden::ERROR_500;

/// Bytes as text, so a failing comparison reads as the response it is.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `app` once through the local gateway (as `cgate request /` would) and returns stdout.
fn local(
    app: impl Fn(&mut Request<'_>, &mut Response<'_>) -> Result<Body<'static>, AppError>
    + Send
    + Sync
    + 'static,
) -> Vec<u8> {
    let req = LocalRequest {
        target: "/".into(),
        ..Default::default()
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    req.run(&cgate::app_fn(app), &mut out, &mut err)
        .expect("local request runs");
    out
}

/// What cgi:DIR does with a script's output: reply parser, header validation, body.
fn script_reply(output: &'static [u8]) -> Vec<u8> {
    local(move |req, resp| {
        let _ = req.input.read_to_end(&mut Vec::new());
        match ReplyParser::new(DEFAULT_MAX_HEADER_BYTES).feed(output) {
            Progress::Head { head, body } => {
                let pairs = head.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
                resp.start_head(
                    Head::new(&head.status, cgate::gateway::head::from_pairs(pairs))
                        .map_err(AppError::from)?,
                )?;
                if head.body == cgate::cgi::reply::BodyRule::Forward {
                    resp.write(&body)?;
                }
                Ok(Body::Empty)
            }
            other => Err(AppError::msg(format!("bad reply: {other:?}"))),
        }
    })
}

/// response_head, crash-b31c2e26 (`\x01200 OK\nContent-Length: 5G\0hello`): an app's
/// non-numeric Content-Length reached the wire and the body was not held to it.
#[test]
fn app_content_length_not_a_number_is_a_500() {
    for bad in ["5G", "+4", "abc", " 5", "18446744073709551616"] {
        let out = local(move |_, resp| {
            resp.start("200 OK", [("Content-Length", bad)])?;
            Ok(Body::from("hello"))
        });
        assert_eq!(text(&out), text(ERROR_500), "Content-Length {bad:?}");
    }
}

/// response_head, seed app-length-twice: two Content-Length headers from an app.
#[test]
fn app_content_length_twice_is_a_500() {
    let out = local(|_, resp| {
        resp.start("200 OK", [("Content-Length", "1"), ("Content-Length", "5")])?;
        Ok(Body::from("hello"))
    });
    assert_eq!(text(&out), text(ERROR_500));
}

/// response_head, seed reply-content-length-twice: a script's `Content-Length: 1` and
/// `Content-Length: 100` with a 4-byte body were both forwarded (issue finding 4).
#[test]
fn script_content_length_twice_is_refused() {
    let out =
        script_reply(b"Content-Type: text/plain\nContent-Length: 1\nContent-Length: 100\n\nbody");
    assert_eq!(text(&out), text(ERROR_500));
}

/// The rule's positive side: one numeric Content-Length passes, and the body is held to it.
#[test]
fn one_numeric_content_length_passes() {
    let out = script_reply(b"Content-Type: text/plain\nContent-Length: 2\n\nbody");
    let want = "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nbo";
    assert_eq!(text(&out), want);
}
