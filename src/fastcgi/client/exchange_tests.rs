//! Byte-level tests of the client exchange: encodings, replies whole and split, retry rules.

use super::*;
use crate::fastcgi::proto::record::{encode_end_request, encode_record, parse_record};

fn records(mut buf: &[u8]) -> Vec<(u8, u16, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some((r, used)) = parse_record(buf).unwrap() {
        out.push((r.record_type.as_u8(), r.request_id, r.content.to_vec()));
        buf = &buf[used..];
    }
    assert!(buf.is_empty(), "trailing bytes");
    out
}

#[test]
fn begin_params_stdin_golden_bytes() {
    let x = Exchange::new(1, true);
    let mut out = Vec::new();
    x.begin(&mut out, [(&b"A"[..], &b"bc"[..])]);
    x.stdin(&mut out, b"hi");
    x.end_stdin(&mut out);
    let want: &[u8] = &[
        1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, // BEGIN_REQUEST responder, keep
        1, 4, 0, 1, 0, 5, 3, 0, 1, 2, b'A', b'b', b'c', 0, 0, 0, // PARAMS A=bc
        1, 4, 0, 1, 0, 0, 0, 0, // end of PARAMS
        1, 5, 0, 1, 0, 2, 6, 0, b'h', b'i', 0, 0, 0, 0, 0, 0, // STDIN "hi"
        1, 5, 0, 1, 0, 0, 0, 0, // end of STDIN
    ];
    assert_eq!(out, want);
    let mut abort = Vec::new();
    Exchange::new(7, false).abort(&mut abort);
    assert_eq!(abort, [1, 2, 0, 7, 0, 0, 0, 0]);
    let mut begin = Vec::new();
    Exchange::new(0, false).begin(&mut begin, std::iter::empty());
    assert_eq!(
        begin[..16],
        [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn params_are_packed_whole_and_long_pairs_span() {
    let x = Exchange::new(3, false);
    let big = vec![b'v'; 40_000];
    let huge = vec![b'w'; 100_000];
    let mut out = Vec::new();
    x.begin(
        &mut out,
        [
            (&b"ONE"[..], &big[..]),
            (b"TWO", &big[..]),
            (b"HUGE", &huge[..]),
        ],
    );
    let recs = records(&out);
    let params: Vec<&Vec<u8>> = recs.iter().filter(|r| r.0 == 4).map(|r| &r.2).collect();
    // ONE alone (TWO would not fit), TWO alone, then HUGE spans two records.
    assert_eq!(params[0].len(), 1 + 4 + 3 + 40_000);
    assert_eq!(params[1].len(), 1 + 4 + 3 + 40_000);
    assert_eq!(params[2].len(), MAX_CONTENT_LEN);
    assert!(params.last().unwrap().is_empty());
    let stream: Vec<u8> = params.iter().flat_map(|p| p.iter().copied()).collect();
    let got: Vec<(Vec<u8>, usize)> = pairs::iter_pairs(&stream, &PairLimits::default())
        .map(|p| {
            let (n, v) = p.unwrap();
            (stream[n].to_vec(), v.len())
        })
        .collect();
    assert_eq!(
        got,
        [
            (b"ONE".to_vec(), 40_000),
            (b"TWO".to_vec(), 40_000),
            (b"HUGE".to_vec(), 100_000)
        ]
    );
}

fn reply_bytes() -> Vec<u8> {
    let mut b = Vec::new();
    encode_record(&mut b, RecordType::Stdout, 1, b"Status: 200 OK\r\n\r\nhi");
    encode_record(&mut b, RecordType::Stderr, 1, b"warn");
    encode_record(&mut b, RecordType::Stderr, 1, b"");
    encode_record(&mut b, RecordType::Stdout, 1, b"");
    encode_end_request(&mut b, 1, 5, ProtocolStatus::RequestComplete);
    b
}

fn drain(x: &mut Exchange, buf: &mut Vec<u8>, out: &mut Vec<String>) {
    loop {
        match x.next(buf).unwrap() {
            None => return,
            Some((r, used)) => {
                out.push(match r {
                    Reply::Stdout(b) => format!("out:{}", String::from_utf8_lossy(b)),
                    Reply::Stderr(b) => format!("err:{}", String::from_utf8_lossy(b)),
                    Reply::End { app_status, status } => format!("end:{app_status}:{status:?}"),
                    Reply::Values(_) => "values".into(),
                    Reply::Nothing => "-".into(),
                });
                buf.drain(..used);
            }
        }
    }
}

#[test]
fn reply_whole_and_byte_by_byte() {
    let want = [
        "out:Status: 200 OK\r\n\r\nhi",
        "err:warn",
        "-",
        "-",
        "end:5:RequestComplete",
    ];
    let mut x = Exchange::new(1, true);
    let mut buf = reply_bytes();
    let mut got = Vec::new();
    drain(&mut x, &mut buf, &mut got);
    assert_eq!(got, want);
    assert!(x.ended() && x.output_seen());

    let mut x = Exchange::new(1, true);
    let mut buf = Vec::new();
    let mut got = Vec::new();
    for b in reply_bytes() {
        buf.push(b);
        drain(&mut x, &mut buf, &mut got);
    }
    assert_eq!(got, want);
    assert!(buf.is_empty());
}

#[test]
fn protocol_errors() {
    let mut b = Vec::new();
    encode_record(&mut b, RecordType::Stdout, 2, b"x");
    assert_eq!(
        Exchange::new(1, false).next(&b),
        Err(ReplyError::WrongRequestId(2, 1))
    );
    let mut b = Vec::new();
    encode_record(&mut b, RecordType::Params, 1, b"");
    assert_eq!(
        Exchange::new(1, false).next(&b),
        Err(ReplyError::UnexpectedType(4))
    );
    let mut b = Vec::new();
    encode_record(&mut b, RecordType::EndRequest, 1, &[0; 7]);
    assert_eq!(
        Exchange::new(1, false).next(&b),
        Err(ReplyError::Codec(CodecError::BadEndRequestBody(7)))
    );
    assert_eq!(
        Exchange::new(1, false).next(&[9, 6, 0, 1]),
        Err(ReplyError::Codec(CodecError::UnsupportedVersion(9)))
    );
    let mut x = Exchange::new(1, false);
    let mut b = Vec::new();
    encode_end_request(&mut b, 1, 0, ProtocolStatus::RequestComplete);
    let used = x.next(&b).unwrap().unwrap().1;
    assert_eq!(x.next(&b[used..]), Ok(None));
    assert_eq!(x.next(&b), Err(ReplyError::AfterEnd));
    let mut x = Exchange::new(1, false);
    let mut b = Vec::new();
    encode_record(&mut b, RecordType::Stdout, 1, b"");
    encode_record(&mut b, RecordType::Stdout, 1, b"late");
    let used = x.next(&b).unwrap().unwrap().1;
    assert_eq!(x.next(&b[used..]), Err(ReplyError::AfterEnd));
}

#[test]
fn get_values_round_trip() {
    let mut out = Vec::new();
    get_values(&mut out);
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].0, recs[0].1), (9, 0));
    assert_eq!(&recs[0].2[..16], b"\x0e\x00FCGI_MAX_CONNS");
    let mut body = Vec::new();
    pairs::encode_pair(&mut body, b"FCGI_MAX_CONNS", b"8");
    pairs::encode_pair(&mut body, b"FCGI_MPXS_CONNS", b"0");
    pairs::encode_pair(&mut body, b"FCGI_MAX_REQS", b"x");
    let mut b = Vec::new();
    encode_record(&mut b, RecordType::GetValuesResult, 0, &body);
    let mut x = Exchange::new(1, false);
    let (r, _) = x.next(&b).unwrap().unwrap();
    let Reply::Values(content) = r else {
        panic!("{r:?}")
    };
    let v = parse_values(content).unwrap();
    assert_eq!(v.max_conns, Some(8));
    assert_eq!(v.mpxs_conns, Some(false));
    assert_eq!(v.max_reqs, None);
    assert_eq!(v.pairs[2], ("FCGI_MAX_REQS".into(), "x".into()));
    assert!(parse_values(&[0x80, 0, 0]).is_err());
}

#[test]
fn retries_only_when_the_backend_cannot_have_acted() {
    use ProtocolStatus::*;
    let fresh = TryFacts::default();
    let reused_get = TryFacts {
        reused: true,
        idempotent: true,
        ..fresh
    };
    let reused_post = TryFacts {
        reused: true,
        ..fresh
    };
    for facts in [fresh, reused_get, reused_post] {
        assert!(retry_safe(Failure::Connect, facts));
        assert!(retry_safe(Failure::NotSent, facts));
        assert!(retry_safe(Failure::HalfClosed, facts));
        assert_eq!(retry_safe(Failure::Dropped, facts), facts.idempotent);
        assert!(retry_safe(Failure::Refused(Overloaded), facts));
        assert!(retry_safe(Failure::Refused(CantMpxConn), facts));
        assert!(!retry_safe(Failure::Refused(UnknownRole), facts));
        assert!(!retry_safe(Failure::Refused(RequestComplete), facts));
        assert!(!retry_safe(Failure::Other, facts));
    }
    assert!(retry_safe(Failure::Eof, reused_get));
    assert!(
        !retry_safe(Failure::Eof, reused_post),
        "a POST never runs twice"
    );
    assert!(!retry_safe(
        Failure::Eof,
        TryFacts {
            idempotent: true,
            ..fresh
        }
    ));
    for f in [
        Failure::Connect,
        Failure::NotSent,
        Failure::Dropped,
        Failure::HalfClosed,
        Failure::Refused(Overloaded),
        Failure::Eof,
    ] {
        let seen = TryFacts {
            output_seen: true,
            ..reused_get
        };
        assert!(!retry_safe(f, seen), "{f:?} after output");
    }
    assert!(is_idempotent(b"GET") && is_idempotent(b"PUT") && !is_idempotent(b"POST"));
    assert!(!is_idempotent(b"get") && !is_idempotent(b"PATCH"));
}

#[test]
fn output_seen_tracks_only_real_bytes() {
    let mut x = Exchange::new(1, false);
    let mut b = Vec::new();
    encode_record(&mut b, RecordType::Stdout, 1, b"");
    x.next(&b).unwrap();
    assert!(!x.output_seen());
    let mut b = Vec::new();
    encode_record(&mut b, RecordType::Stderr, 1, b"e");
    x.next(&b).unwrap();
    assert!(x.output_seen());
}

#[test]
fn the_module_is_pure() {
    let src = include_str!("exchange.rs");
    for banned in ["std::io", "std::net", "std::time", "std::thread", "nix::"] {
        assert!(!src.contains(banned), "{banned}");
    }
}

/// The PARAMS layout by its definition: each pair encoded on its own, packed whole into
/// records of at most 65535 bytes, only a longer pair spanning records (its tail starting
/// the next one).
fn params_by_definition(id: u16, params: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pending = Vec::new();
    for (name, value) in params {
        let mut pair = Vec::new();
        pairs::encode_pair(&mut pair, name, value);
        if !pending.is_empty() && pending.len() + pair.len() > MAX_CONTENT_LEN {
            encode_record(&mut out, RecordType::Params, id, &pending);
            pending.clear();
        }
        let mut chunks = pair.chunks(MAX_CONTENT_LEN).peekable();
        while let Some(chunk) = chunks.next() {
            if chunks.peek().is_some() {
                encode_record(&mut out, RecordType::Params, id, chunk);
            } else {
                pending.extend_from_slice(chunk);
            }
        }
    }
    if !pending.is_empty() {
        encode_record(&mut out, RecordType::Params, id, &pending);
    }
    encode_record(&mut out, RecordType::Params, id, &[]);
    out
}

proptest::proptest! {
    #[test]
    fn params_encoded_in_place_match_the_definition_byte_for_byte(
        lens in proptest::collection::vec((0usize..300, 0usize..70_000), 0..12),
        id in 1u16..,
    ) {
        // Lengths around the 127/128 prefix boundary and the record size, cheap to build.
        let params: Vec<(Vec<u8>, Vec<u8>)> = lens
            .iter()
            .enumerate()
            .map(|(i, &(n, v))| {
                let v = if i % 3 == 0 { v % 200 } else { v };
                (vec![b'N'; n.max(1)], vec![b'a' + (i % 26) as u8; v])
            })
            .collect();
        let mut out = Vec::new();
        Exchange::new(id, true).begin(&mut out, params.iter().map(|(n, v)| (&n[..], &v[..])));
        let mut expected = Vec::new();
        record::encode_begin_request(&mut expected, id, Role::Responder, FCGI_KEEP_CONN);
        expected.extend_from_slice(&params_by_definition(id, &params));
        proptest::prop_assert_eq!(out, expected);
    }
}
