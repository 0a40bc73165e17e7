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

/// The FastCGI state machine (fuzz target connection_split) with a kept connection whose
/// first reply was written only in part (a slow peer socket): what it offers next.
mod connection {
    use cgate::fastcgi::{Connection, Event, Limits, ManagementValues, Progress};

    /// BEGIN_REQUEST(responder, FCGI_KEEP_CONN) then the empty PARAMS record, for `id`.
    fn begin_keep(id: u8) -> Vec<u8> {
        vec![
            1, 1, 0, id, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, // BEGIN_REQUEST
            1, 4, 0, id, 0, 0, 0, 0, // empty PARAMS
        ]
    }

    /// The empty STDOUT record and END_REQUEST(REQUEST_COMPLETE, 0) of request 1.
    const REPLY_ID1: [u8; 24] = [
        1, 6, 0, 1, 0, 0, 0, 0, // empty STDOUT
        1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // END_REQUEST
    ];

    /// Request 1 complete and answered, its reply written up to byte 2.
    fn first_reply_half_written() -> Connection {
        let mut conn = first_reply_queued();
        assert_eq!(conn.transmit(), REPLY_ID1);
        conn.transmitted(2);
        conn
    }

    /// Request 1 complete and answered, nothing of its reply written yet.
    fn first_reply_queued() -> Connection {
        let values = ManagementValues {
            max_conns: 4,
            max_reqs: 4,
            mpxs_conns: false,
        };
        let mut conn = Connection::new(Limits::default(), values);
        let mut input = begin_keep(1);
        input.extend_from_slice(&[1, 5, 0, 1, 0, 0, 0, 0]); // empty STDIN
        let (used, progress) = conn.process(&input).expect("valid records");
        assert!(matches!(progress, Progress::Event(Event::Request { .. })));
        let (more, progress) = conn.process(&input[used..]).expect("valid records");
        assert_eq!(
            (used + more, progress),
            (input.len(), Progress::Event(Event::StdinEnd))
        );
        conn.end_request(0);
        conn
    }

    /// Everything the connection offers, written as fast as it is offered.
    fn drain(conn: &mut Connection) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let n = conn.transmit().len();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(conn.transmit());
            conn.transmitted(n);
        }
    }

    /// connection_split, crash-a3ed1d32: request 1 answered but not yet written, then the
    /// peer starts request 1 again and aborts it before its PARAMS end. The END_REQUEST for
    /// that abort went into the management queue, which is written first, so it overtook
    /// the earlier request's END_REQUEST of the same id (and whole and split runs differed).
    #[test]
    fn an_abort_during_params_ends_after_the_previous_reply() {
        let mut conn = first_reply_queued();
        let mut input = vec![1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]; // BEGIN(1, keep)
        input.extend_from_slice(&[1, 2, 0, 1, 0, 0, 0, 0]); // ABORT_REQUEST(1)
        let mut used = 0;
        while used < input.len() {
            let (n, _) = conn.process(&input[used..]).expect("valid records");
            assert!(n > 0, "stalled at byte {used}");
            used += n;
        }
        let abort_end = [1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut want = REPLY_ID1.to_vec();
        want.extend_from_slice(&abort_end);
        assert_eq!(drain(&mut conn), want);
    }

    /// connection_split, crash-be9411f7 (minimised): request 1's reply partly written, then
    /// BEGIN_REQUEST and PARAMS of request 2 arrive: request 1's rest must still go out. The
    /// hold that makes request 2's response wait for its STDIN also held back request 1's
    /// tail, so a peer that closes (or waits for END_REQUEST) sees a record cut in two.
    #[test]
    fn next_request_does_not_hold_back_the_previous_reply() {
        let mut conn = first_reply_half_written();
        let (_, progress) = conn.process(&begin_keep(2)).expect("valid records");
        assert!(matches!(
            progress,
            Progress::Event(Event::Request { request_id: 2, .. })
        ));
        assert_eq!(conn.transmit(), &REPLY_ID1[2..]);
    }

    /// connection_split (same shape): a management record arriving while a reply is partly
    /// written must not have its answer put in the middle of the reply's record.
    #[test]
    fn management_reply_waits_for_the_record_being_written() {
        let mut conn = first_reply_half_written();
        let get_values = [1, 9, 0, 0, 0, 0, 0, 0];
        let (used, _) = conn.process(&get_values).expect("valid record");
        assert_eq!(used, 8);
        assert!(
            conn.transmit().starts_with(&REPLY_ID1[2..]),
            "offered {:?}",
            conn.transmit()
        );
    }
}
