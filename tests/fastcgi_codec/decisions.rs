//! Every protocol decision of the state machine, byte by byte (whole and split): waiting for STDIN's end, draining, abort, cut, id 0, bounded output.

use cgate::fastcgi::{Connection, Disposition, Limits, MGMT_OUTPUT_MAX, Progress, ProtocolError};

use super::client::*;

/// END_REQUEST(REQUEST_COMPLETE, app status 0) for request 1.
const END_OK_ID1: [u8; 16] = [1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// The empty STDOUT record of request 1.
const STDOUT_END_ID1: [u8; 8] = [1, 6, 0, 1, 0, 0, 0, 0];

fn head(flags: u8) -> Vec<u8> {
    cat(&[begin(1, 1, flags), rec(PARAMS, 1, &[], 0)])
}

/// The exact STDOUT record server-side for `data` (padded to 8) on request 1.
fn stdout_rec(data: &[u8]) -> Vec<u8> {
    let pad = (8 - data.len() % 8) % 8;
    let mut out = vec![1, 6, 0, 1, 0, data.len() as u8, pad as u8, 0];
    out.extend_from_slice(data);
    out.extend(std::iter::repeat_n(0, pad));
    out
}

fn end_id1() -> Vec<u8> {
    cat(&[STDOUT_END_ID1.to_vec(), END_OK_ID1.to_vec()])
}

/// A response written while STDIN is open waits for STDIN's end, then goes out whole.
#[test]
fn response_waits_for_the_end_of_stdin() {
    let mut both = Both::new(Limits::default());
    let out = both.drive(&cat(&[head(1), rec(STDIN, 1, b"ab", 0)]));
    assert_eq!(
        out.events,
        vec![Ev::request(1, true, &[]), Ev::Stdin(b"ab".to_vec())]
    );
    assert!(out.stdin_open);
    assert_eq!(both.respond(|c| c.stdout(b"hi")), ((), vec![]));
    let out = both.drive(&rec(STDIN, 1, b"", 0));
    assert_eq!(out.events, vec![Ev::StdinEnd]);
    assert_eq!(out.output, stdout_rec(b"hi"));
    let (_, bytes) = both.respond(|c| c.end_request(0));
    assert_eq!(bytes, end_id1());
    assert_eq!(both.whole.disposition(), Disposition::Open);
}

/// The Caddy / cgi-fcgi order: BEGIN and PARAMS, the app answers, the empty STDIN record
/// comes later. The reply (and, without FCGI_KEEP_CONN, the close) waits for it.
#[test]
fn app_done_before_stdin_end_drains_then_ends() {
    for (flags, after) in [(1, Disposition::Open), (0, Disposition::Linger)] {
        let mut both = Both::new(Limits::default());
        both.drive(&head(flags));
        let (disposition, bytes) = both.respond(|c| {
            c.stdout(b"hi");
            c.end_request(0);
            c.disposition()
        });
        assert_eq!((disposition, bytes), (Disposition::Open, vec![]));
        assert_eq!(both.whole.active_request(), Some(1), "draining");
        // The unread rest of the body is skipped: no events, no output.
        let body = cat(&[rec(STDIN, 1, &[b'x'; 1000], 7), rec(STDIN, 1, b"yz", 0)]);
        let out = both.drive(&body);
        assert_eq!((out.events, out.output, out.leftover), (vec![], vec![], 0));
        assert_eq!(out.disposition, Disposition::Open);
        let out = both.drive(&rec(STDIN, 1, b"", 0));
        assert_eq!(out.events, vec![]);
        assert_eq!(out.output, cat(&[stdout_rec(b"hi"), end_id1()]));
        assert_eq!((out.active, out.disposition), (None, after));
        if flags == 1 {
            // Keep-alive after an unread body: the same id starts the next request.
            let out = both.drive(&cat(&[head(1), rec(STDIN, 1, b"", 0)]));
            assert_eq!(out.events, vec![Ev::request(1, true, &[]), Ev::StdinEnd]);
        }
    }
}

/// The drained body counts against the request's bound: past it the connection must
/// close, and the waiting response never goes out.
#[test]
fn drain_past_the_body_bound_closes_without_reply() {
    let mut both = Both::new(Limits::default());
    both.drive(&head(1));
    both.whole.limit_body(4);
    both.bytewise.limit_body(4);
    both.respond(|c| c.end_request(0));
    let out = both.drive(&cat(&[rec(STDIN, 1, b"abc", 0), rec(STDIN, 1, b"de", 0)]));
    assert_eq!(out.error, Some(ProtocolError::BodyTooLong(4)));
    assert_eq!((out.output, out.disposition), (vec![], Disposition::Close));
    // Also while the app reads: the bound holds for the events.
    let mut both = Both::new(Limits::default());
    both.drive(&head(1));
    both.whole.limit_body(2);
    both.bytewise.limit_body(2);
    let out = both.drive(&rec(STDIN, 1, b"abc", 0));
    assert_eq!(out.error, Some(ProtocolError::BodyTooLong(2)));
}

/// ABORT_REQUEST while draining: the peer wants no more STDIN, the response goes out now.
#[test]
fn abort_while_draining_releases_the_response() {
    let mut both = Both::new(Limits::default());
    both.drive(&head(1));
    both.respond(|c| c.end_request(0));
    let out = both.drive(&rec(ABORT, 1, b"", 0));
    assert_eq!((out.events, out.output), (vec![], end_id1()));
    assert_eq!((out.active, out.disposition), (None, Disposition::Open));
}

/// ABORT_REQUEST while the app writes (body complete): the app's output is refused from
/// then on, END_REQUEST follows at once, and the kept connection carries on.
#[test]
fn abort_while_app_writes_ends_at_once() {
    let mut both = Both::new(Limits::default());
    both.drive(&cat(&[head(1), rec(STDIN, 1, b"", 0)]));
    let (_, bytes) = both.respond(|c| c.stdout(b"first"));
    assert_eq!(bytes, stdout_rec(b"first"));
    let out = both.drive(&rec(ABORT, 1, b"", 0));
    assert_eq!(out.events, vec![Ev::Abort]);
    assert!(both.whole.aborted());
    assert_eq!(both.respond(|c| c.stdout(b"more")), ((), vec![]));
    let (_, bytes) = both.respond(|c| c.end_request(0));
    assert_eq!(bytes, end_id1());
    assert_eq!(both.whole.disposition(), Disposition::Open);
    // Output queued before the abort and not written yet is dropped (none of it went out).
    let mut conn = Connection::new(Limits::default(), values());
    feed(&mut conn, [cat(&[head(1), rec(STDIN, 1, b"", 0)])]);
    conn.stdout(b"queued");
    let abort = rec(ABORT, 1, b"", 0);
    for i in 0..abort.len() {
        assert_eq!(conn.process(&abort[..i]), Ok((0, Progress::NeedData)));
    }
    let progress = Progress::Event(cgate::fastcgi::Event::Abort);
    assert_eq!(conn.process(&abort), Ok((abort.len(), progress)));
    conn.end_request(0);
    assert_eq!(take(&mut conn), end_id1());
}

/// The app failed after its first bytes: what was queued goes out, no END_REQUEST, close;
/// lingering when the peer may still be sending STDIN.
#[test]
fn cut_sends_no_end_request_and_closes() {
    let cut_after = |input: &[u8]| {
        let mut both = Both::new(Limits::default());
        both.drive(input);
        let out = both.respond(|c| {
            c.stdout(b"partial");
            c.cut();
            c.disposition()
        });
        (both, out)
    };
    let (_, out) = cut_after(&cat(&[head(1), rec(STDIN, 1, b"", 0)]));
    assert_eq!(out, (Disposition::Close, stdout_rec(b"partial")));
    let (mut both, out) = cut_after(&head(1));
    assert_eq!(out, (Disposition::Linger, stdout_rec(b"partial")));
    // Lingering: everything that still arrives is discarded.
    let out = both.drive(&cat(&[rec(STDIN, 1, b"late", 0), head(1)]));
    assert_eq!((out.events, out.output, out.leftover), (vec![], vec![], 0));
}

/// BEGIN_REQUEST on the null request id closes the connection, answering nothing.
#[test]
fn begin_on_request_id_zero_closes() {
    let out = drive(&cat(&[
        rec(BEGIN, 0, &[0, 1, 1, 0, 0, 0, 0, 0], 0),
        rec(PARAMS, 0, &[], 0),
    ]));
    assert_eq!(out.error, Some(ProtocolError::BeginOnNullId));
    assert_eq!((out.output, out.disposition), (vec![], Disposition::Close));
}

/// Management replies are bounded: once MGMT_OUTPUT_MAX bytes wait, nothing more is
/// consumed until they are written; then processing resumes where it stopped.
#[test]
fn management_output_is_bounded() {
    let flood = rec(20, 0, b"", 0).repeat(5000);
    let mut conn = Connection::new(Limits::default(), values());
    let (used, progress) = conn.process(&flood).expect("valid records");
    assert_eq!(progress, Progress::Transmit);
    let replies = MGMT_OUTPUT_MAX / 16;
    assert_eq!((used, conn.transmit().len()), (replies * 8, replies * 16));
    // Not written: nothing more is consumed.
    assert_eq!(conn.process(&flood[used..]), Ok((0, Progress::Transmit)));
    // Half written: still bounded by what is left.
    conn.transmitted(replies * 8);
    let (more, _) = conn.process(&flood[used..]).expect("valid records");
    assert_eq!(more, replies / 2 * 8);
    assert_eq!(conn.transmit().len(), replies * 16);
    // Whole and byte by byte (taking output as it comes) agree, and every record is answered.
    let out = drive(&flood);
    assert_eq!(
        out.output,
        rec(11, 0, &[20, 0, 0, 0, 0, 0, 0, 0], 0).repeat(5000)
    );
}
