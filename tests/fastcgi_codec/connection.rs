//! The responder state machine driven by an in-memory web server, whole and byte by byte.

use cgate::fastcgi::pairs::PairLimits;
use cgate::fastcgi::{
    CodecError, Disposition, Event, Limits, PairsError, Progress, ProtocolError, ProtocolStatus,
};

use super::client::*;

const END_OK_ID1: [u8; 16] = [1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn params_end(id: u16) -> Vec<u8> {
    rec(PARAMS, id, &[], 0)
}

fn stdin_end(id: u16) -> Vec<u8> {
    rec(STDIN, id, &[], 0)
}

#[test]
fn whole_request_with_split_params_and_keep_conn() {
    let pairs = nv(&[
        (b"SCRIPT_NAME", b"/x"),
        (b"REQUEST_METHOD", b"POST"),
        (b"CONTENT_LENGTH", b"11"),
    ]);
    // Splits fall between the two length bytes and inside a name.
    let input = cat(&[
        begin(1, 1, 1),
        rec(PARAMS, 1, &pairs[..1], 3),
        rec(PARAMS, 1, &pairs[1..7], 0),
        rec(PARAMS, 1, &pairs[7..], 255),
        params_end(1),
        rec(STDIN, 1, b"hello", 3),
        rec(STDIN, 1, b"world!", 255),
        stdin_end(1),
    ]);
    let mut both = Both::new(Limits::default());
    let out = both.drive(&input);
    assert_eq!(out.error, None);
    assert_eq!(out.leftover, 0);
    assert_eq!(out.output, b"");
    assert_eq!(
        out.events,
        vec![
            Ev::request(
                1,
                true,
                &[
                    ("SCRIPT_NAME", "/x"),
                    ("REQUEST_METHOD", "POST"),
                    ("CONTENT_LENGTH", "11")
                ]
            ),
            Ev::Stdin(b"hello".to_vec()),
            Ev::Stdin(b"world!".to_vec()),
            Ev::StdinEnd,
        ]
    );
    assert_eq!(out.active, Some(1));
    assert!(!out.stdin_open);

    let (_, bytes) = both.respond(|c| c.stdout(b"Status: 200 OK\r\n\r\nhi"));
    let mut expected = vec![1, 6, 0, 1, 0, 20, 4, 0];
    expected.extend_from_slice(b"Status: 200 OK\r\n\r\nhi");
    expected.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(bytes, expected);
    let (keep, bytes) = both.respond(|c| {
        c.end_request(0);
        c.disposition()
    });
    assert_eq!(keep, Disposition::Open);
    let mut expected = vec![1, 6, 0, 1, 0, 0, 0, 0];
    expected.extend_from_slice(&END_OK_ID1);
    assert_eq!(bytes, expected);
    assert_eq!(both.whole.active_request(), None);

    // The same id starts the next request on the kept connection.
    let out = both.drive(&cat(&[begin(1, 1, 0), params_end(1), stdin_end(1)]));
    assert_eq!(out.events, vec![Ev::request(1, false, &[]), Ev::StdinEnd]);
    let (keep, bytes) = both.respond(|c| {
        c.end_request(7);
        c.disposition()
    });
    // Without KEEP_CONN the close lingers: the peer may still write (flup: an empty DATA).
    assert_eq!(keep, Disposition::Linger);
    assert_eq!(
        bytes,
        [
            1, 6, 0, 1, 0, 0, 0, 0, 1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0
        ]
    );
}

#[test]
fn stderr_gets_its_own_terminator() {
    let mut both = Both::new(Limits::default());
    let out = both.drive(&cat(&[
        begin(0x0102, 1, 1),
        params_end(0x0102),
        stdin_end(0x0102),
    ]));
    assert_eq!(
        out.events,
        vec![Ev::request(0x0102, true, &[]), Ev::StdinEnd]
    );
    let (_, bytes) = both.respond(|c| c.stderr(b""));
    assert_eq!(bytes, b"");
    let (_, bytes) = both.respond(|c| c.stdout(b""));
    assert_eq!(bytes, b"");
    let (_, bytes) = both.respond(|c| c.stderr(b"oops"));
    assert_eq!(
        bytes,
        [1, 7, 1, 2, 0, 4, 4, 0, b'o', b'o', b'p', b's', 0, 0, 0, 0]
    );
    let (keep, bytes) = both.respond(|c| {
        c.end_request(0x01020304);
        c.disposition()
    });
    assert_eq!(keep, Disposition::Open);
    assert_eq!(
        bytes,
        [
            1, 6, 1, 2, 0, 0, 0, 0, // empty STDOUT
            1, 7, 1, 2, 0, 0, 0, 0, // empty STDERR
            1, 3, 1, 2, 0, 8, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, // END_REQUEST
        ]
    );
}

#[test]
fn output_side_without_a_running_request_writes_nothing() {
    let mut both = Both::new(Limits::default());
    assert_eq!(both.respond(|c| c.stdout(b"x")), ((), vec![]));
    assert_eq!(
        both.respond(|c| {
            c.end_request(0);
            c.disposition()
        }),
        (Disposition::Open, vec![])
    );
    // Still collecting PARAMS: the application has not seen the request yet.
    both.drive(&begin(1, 1, 1));
    assert_eq!(both.respond(|c| c.stderr(b"x")), ((), vec![]));
    assert_eq!(
        both.respond(|c| {
            c.reject_request(ProtocolStatus::Overloaded);
            c.disposition()
        }),
        (Disposition::Open, vec![])
    );
}

#[test]
fn reject_request_sends_bare_end_request() {
    let mut both = Both::new(Limits::default());
    both.drive(&cat(&[begin(1, 1, 1), params_end(1), stdin_end(1)]));
    let (keep, bytes) = both.respond(|c| {
        c.reject_request(ProtocolStatus::Overloaded);
        c.disposition()
    });
    assert_eq!(keep, Disposition::Open);
    assert_eq!(bytes, [1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(both.whole.active_request(), None);
}

#[test]
fn unknown_role_is_refused_and_its_records_ignored() {
    let input = cat(&[
        begin(2, 2, 0),
        rec(PARAMS, 2, &nv(&[(b"A", b"b")]), 0),
        params_end(2),
        stdin_end(2),
    ]);
    let out = drive(&input);
    assert_eq!(out.output, [1, 3, 0, 2, 0, 8, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]);
    assert_eq!((out.events, out.error, out.active), (vec![], None, None));
    assert_eq!(
        out.disposition,
        Disposition::Linger,
        "FCGI_KEEP_CONN clear: close after replying, lingering while its records arrive"
    );

    let out = drive(&cat(&[begin(3, 3, 1), begin(4, 0x0100, 1), begin(5, 1, 1)]));
    assert_eq!(
        out.output,
        cat(&[
            vec![1, 3, 0, 3, 0, 8, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0],
            vec![1, 3, 0, 4, 0, 8, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0],
        ])
    );
    assert_eq!(out.disposition, Disposition::Open);
    assert_eq!(out.active, Some(5));
}

#[test]
fn second_request_id_gets_cant_mpx_conn() {
    let input = cat(&[
        begin(1, 1, 1),
        begin(2, 1, 1),
        rec(PARAMS, 2, &nv(&[(b"X", b"y")]), 0),
        params_end(2),
        params_end(1),
    ]);
    let out = drive(&input);
    assert_eq!(out.output, [1, 3, 0, 2, 0, 8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(out.events, vec![Ev::request(1, true, &[])]);
    assert_eq!((out.active, out.disposition), (Some(1), Disposition::Open));
}

#[test]
fn abort_of_running_request_then_late_stdin_ignored() {
    let mut both = Both::new(Limits::default());
    let out = both.drive(&cat(&[
        begin(1, 1, 0),
        params_end(1),
        rec(STDIN, 1, b"ab", 0),
        rec(ABORT, 1, b"", 0),
        rec(ABORT, 1, b"", 0),
    ]));
    assert_eq!(
        out.events,
        vec![
            Ev::request(1, false, &[]),
            Ev::Stdin(b"ab".to_vec()),
            Ev::Abort
        ]
    );
    let (keep, bytes) = both.respond(|c| {
        c.end_request(0);
        c.disposition()
    });
    // FCGI_KEEP_CONN clear, and STDIN may still be on the way: linger, discarding it.
    assert_eq!(keep, Disposition::Linger);
    assert_eq!(
        bytes,
        cat(&[vec![1, 6, 0, 1, 0, 0, 0, 0], END_OK_ID1.to_vec()])
    );
    let out = both.drive(&cat(&[rec(STDIN, 1, b"late", 0), stdin_end(1)]));
    assert_eq!((out.events, out.error, out.leftover), (vec![], None, 0));
}

#[test]
fn abort_during_params_is_answered_by_the_connection() {
    let input = cat(&[
        begin(1, 1, 0),
        rec(PARAMS, 1, &nv(&[(b"A", b"b")]), 0),
        rec(ABORT, 1, b"", 0),
        params_end(1),
        rec(STDIN, 1, b"x", 0),
    ]);
    let out = drive(&input);
    assert_eq!(out.output, END_OK_ID1);
    assert_eq!((out.events, out.error, out.active), (vec![], None, None));
    assert_eq!(out.disposition, Disposition::Close);
}

#[test]
fn records_for_inactive_ids_are_ignored() {
    let stray = cat(&[
        rec(PARAMS, 9, b"\x01\x01ab", 0),
        rec(STDIN, 9, b"x", 0),
        rec(ABORT, 9, b"", 0),
        rec(DATA, 9, b"d", 0),
        rec(END, 9, &[0; 8], 0),
        rec(STDOUT, 9, b"o", 0),
        rec(STDERR, 9, b"e", 0),
    ]);
    let out = drive(&stray);
    assert_eq!(
        (out.events, out.output, out.error, out.leftover),
        (vec![], vec![], None, 0)
    );

    let input = cat(&[begin(1, 1, 1), params_end(1), stray, rec(DATA, 1, b"d", 0)]);
    let out = drive(&input);
    assert_eq!(out.events, vec![Ev::request(1, true, &[])]);
    assert_eq!((out.error, out.leftover, !out.stdin_open), (None, 0, false));
}

#[test]
fn protocol_errors_close_the_connection() {
    let cases: Vec<(Vec<u8>, ProtocolError)> = vec![
        (
            cat(&[begin(1, 1, 0), rec(STDIN, 1, b"x", 0)]),
            ProtocolError::StdinBeforeParams(1),
        ),
        (
            cat(&[begin(1, 1, 0), begin(1, 1, 0)]),
            ProtocolError::DuplicateBegin(1),
        ),
        (
            cat(&[begin(1, 1, 0), params_end(1), rec(PARAMS, 1, b"\0\0", 0)]),
            ProtocolError::ParamsAfterEnd(1),
        ),
        (
            cat(&[begin(1, 1, 0), params_end(1), stdin_end(1), stdin_end(1)]),
            ProtocolError::StdinAfterEnd(1),
        ),
        (
            cat(&[begin(1, 1, 0), vec![2, 5, 0, 1, 0, 0, 0, 0]]),
            ProtocolError::Codec(CodecError::UnsupportedVersion(2)),
        ),
        (
            rec(BEGIN, 1, &[0, 1, 1, 0, 0, 0, 0], 1),
            ProtocolError::Codec(CodecError::BadBeginRequestBody(7)),
        ),
        (
            rec(BEGIN, 1, &[], 0),
            ProtocolError::Codec(CodecError::BadBeginRequestBody(0)),
        ),
        (
            cat(&[
                begin(1, 1, 0),
                rec(PARAMS, 1, &[0x80, 0, 0, 0x10, 1, b'a'], 0),
                params_end(1),
            ]),
            ProtocolError::Pairs(PairsError::Truncated),
        ),
        (
            cat(&[begin(1, 1, 0), rec(PARAMS, 1, &[0xff; 8], 0), params_end(1)]),
            ProtocolError::Pairs(PairsError::NameTooLong(0x7fff_ffff)),
        ),
        (
            cat(&[
                begin(1, 1, 0),
                rec(PARAMS, 1, &[1, 0xff, 0xff, 0xff, 0xff], 0),
                params_end(1),
            ]),
            ProtocolError::Pairs(PairsError::ValueTooLong(0x7fff_ffff)),
        ),
    ];
    for (input, expected) in cases {
        let out = drive(&input);
        assert_eq!(out.error, Some(expected), "input {input:?}");
        // Only the errors raised after the end of PARAMS come after a request event.
        let after_params = matches!(
            expected,
            ProtocolError::ParamsAfterEnd(_) | ProtocolError::StdinAfterEnd(_)
        );
        let events = out
            .events
            .iter()
            .filter(|e| matches!(e, Ev::Request { .. }))
            .count();
        assert_eq!(events, usize::from(after_params), "input {input:?}");
    }
}

#[test]
fn params_bytes_are_bounded_before_appending() {
    let limits = Limits {
        max_params_bytes: 16,
        ..Limits::default()
    };
    let sixteen = nv(&[(b"ABCDEFGHIJKLMN", b"")]);
    assert_eq!(sixteen.len(), 16);
    let out = drive_limits(
        limits,
        &cat(&[begin(1, 1, 0), rec(PARAMS, 1, &sixteen, 0), params_end(1)]),
    );
    assert_eq!(
        out.events,
        vec![Ev::request(1, false, &[("ABCDEFGHIJKLMN", "")])]
    );

    let input = cat(&[
        begin(1, 1, 0),
        rec(PARAMS, 1, &sixteen[..10], 0),
        rec(PARAMS, 1, &sixteen[10..], 0),
        rec(PARAMS, 1, b"\0", 0),
    ]);
    let out = drive_limits(limits, &input);
    assert_eq!(out.error, Some(ProtocolError::ParamsTooLarge(16)));
}

#[test]
fn pair_limits_apply_to_params() {
    let limits = Limits {
        pairs: PairLimits {
            max_name_len: 4,
            max_value_len: 4,
            max_pairs: 2,
        },
        ..Limits::default()
    };
    let run = |pairs: &[(&[u8], &[u8])]| {
        drive_limits(
            limits,
            &cat(&[begin(1, 1, 0), rec(PARAMS, 1, &nv(pairs), 0), params_end(1)]),
        )
    };
    assert_eq!(run(&[(b"A", b""), (b"B", b"")]).error, None);
    assert_eq!(
        run(&[(b"A", b""), (b"B", b""), (b"C", b"")]).error,
        Some(ProtocolError::Pairs(PairsError::TooManyPairs(2)))
    );
    assert_eq!(
        run(&[(b"NAME5", b"")]).error,
        Some(ProtocolError::Pairs(PairsError::NameTooLong(5)))
    );
    assert_eq!(
        run(&[(b"N", b"VALUE")]).error,
        Some(ProtocolError::Pairs(PairsError::ValueTooLong(5)))
    );
}

#[test]
fn params_over_64k_and_max_size_stdin_records() {
    let value = crate::support::data(100_000, 251);
    let raw = nv(&[(b"BIG", &value), (b"SMALL", b"1")]);
    let stdin = crate::support::data(65535, 253);
    let input = cat(&[
        begin(1, 1, 1),
        rec(PARAMS, 1, &raw[..65535], 255),
        rec(PARAMS, 1, &raw[65535..], 1),
        params_end(1),
        rec(STDIN, 1, &stdin, 255),
        stdin_end(1),
    ]);
    let out = drive(&input);
    assert_eq!(out.error, None);
    assert_eq!(
        out.events,
        vec![
            Ev::Request {
                id: 1,
                keep_conn: true,
                params: vec![(b"BIG".to_vec(), value), (b"SMALL".to_vec(), b"1".to_vec())],
            },
            Ev::Stdin(stdin),
            Ev::StdinEnd,
        ]
    );
}

#[test]
fn recycled_params_do_not_leak_into_the_next_request() {
    let mut both = Both::new(Limits::default());
    for conn in [&mut both.whole, &mut both.bytewise] {
        let input = cat(&[
            begin(1, 1, 1),
            rec(PARAMS, 1, &nv(&[(b"SECRET", b"s")]), 0),
            params_end(1),
        ]);
        let mut pos = 0;
        let mut request = None;
        while let (used @ 1.., event) = conn.process(&input[pos..]).unwrap() {
            pos += used;
            if let Progress::Event(Event::Request { params, .. }) = event {
                request = Some(params);
            }
        }
        assert_eq!(pos, input.len());
        let params = request.expect("a request event");
        assert_eq!(params.get(b"SECRET"), Some(&b"s"[..]));
        conn.recycle_params(params);
        conn.end_request(0);
        let end = stdin_end(1);
        assert_eq!(conn.process(&end), Ok((end.len(), Progress::Transmit)));
        take(conn);
    }
    let input = cat(&[
        begin(1, 1, 1),
        rec(PARAMS, 1, &nv(&[(b"B", b"2"), (b"B", b"3")]), 0),
        params_end(1),
    ]);
    let out = both.drive(&input);
    assert_eq!(
        out.events,
        vec![Ev::request(1, true, &[("B", "2"), ("B", "3")])]
    );
}
