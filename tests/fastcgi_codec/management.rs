//! Management records through the state machine, whole and byte by byte: GET_VALUES answers, unknown types, malformed bodies.

use cgate::fastcgi::{PairsError, ProtocolError};

use super::client::*;

#[test]
fn get_values_answers_known_names_once_and_connection_stays_usable() {
    let query = nv(&[
        (b"FCGI_MPXS_CONNS", b""),
        (b"FOO", b""),
        (b"FCGI_MAX_CONNS", b""),
        (b"FCGI_MAX_REQS", b""),
        (b"FCGI_MAX_CONNS", b""),
    ]);
    let input = cat(&[
        rec(GET_VALUES, 0, &query, 7),
        begin(1, 1, 0),
        rec(PARAMS, 1, &[], 0),
    ]);
    let out = drive(&input);
    let mut expected = vec![1, GET_VALUES_RESULT, 0, 0, 0, 53, 3, 0];
    expected.extend_from_slice(b"\x0e\x03FCGI_MAX_CONNS100");
    expected.extend_from_slice(b"\x0d\x01FCGI_MAX_REQS4");
    expected.extend_from_slice(b"\x0f\x01FCGI_MPXS_CONNS0");
    expected.extend_from_slice(&[0, 0, 0]);
    assert_eq!(out.output, expected);
    assert_eq!(out.events, vec![Ev::request(1, false, &[])]);
    assert_eq!(out.error, None);
}

#[test]
fn get_values_with_unknown_names_only_gets_empty_result() {
    let out = drive(&rec(GET_VALUES, 0, &nv(&[(b"FCGI_OTHER", b"")]), 0));
    assert_eq!(out.output, [1, GET_VALUES_RESULT, 0, 0, 0, 0, 0, 0]);
    let out = drive(&rec(GET_VALUES, 0, &[], 0));
    assert_eq!(out.output, [1, GET_VALUES_RESULT, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn malformed_get_values_closes() {
    let out = drive(&rec(GET_VALUES, 0, &[0x80, 0, 0, 9, 0, b'x'], 0));
    assert_eq!(out.error, Some(ProtocolError::Pairs(PairsError::Truncated)));
}

#[test]
fn unknown_management_types_get_unknown_type() {
    let input = cat(&[
        rec(99, 0, b"xyz", 5),
        rec(STDIN, 0, b"", 0),
        rec(ABORT, 0, b"", 0),
        // Replies are never answered, and unknown types on a request id are ignored.
        rec(UNKNOWN_TYPE, 0, &[7, 0, 0, 0, 0, 0, 0, 0], 0),
        rec(GET_VALUES_RESULT, 0, b"", 0),
        rec(99, 1, b"", 0),
    ]);
    let out = drive(&input);
    assert_eq!(
        out.output,
        cat(&[
            vec![1, 11, 0, 0, 0, 8, 0, 0, 99, 0, 0, 0, 0, 0, 0, 0],
            vec![1, 11, 0, 0, 0, 8, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0],
            vec![1, 11, 0, 0, 0, 8, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
        ])
    );
    assert_eq!((out.events, out.error, out.leftover), (vec![], None, 0));
}
