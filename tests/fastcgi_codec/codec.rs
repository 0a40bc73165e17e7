//! Golden bytes for the record and name-value codecs, hand-computed from the specification.

use cgate::fastcgi::pairs::{PairLimits, decode_pairs, encode_pair};
use cgate::fastcgi::record::{self, Record, parse_record};
use cgate::fastcgi::{CodecError, PairsError, Params, ProtocolStatus, RecordType, Role};

use super::client::*;

/// Decoded pairs as slices of the decoded buffer.
type Pairs<'a> = Vec<(&'a [u8], &'a [u8])>;
/// Record bytes and the fields they must parse to (type, id, content, padding).
type RecordCase = (Vec<u8>, RecordType, u16, Vec<u8>, u8);
/// What a BEGIN_REQUEST body parses to.
type BeginResult = Result<(Role, u8), CodecError>;

/// Encoder calls and the exact bytes they must append.
#[test]
fn record_encoders_golden_bytes() {
    let run = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut out = vec![0xEE]; // encoders append, never overwrite
        f(&mut out);
        assert_eq!(out.remove(0), 0xEE);
        out
    };
    let table: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (
            run(&|o| _ = record::encode_record(o, RecordType::Stdout, 1, b"hello")),
            vec![
                1, 6, 0, 1, 0, 5, 3, 0, b'h', b'e', b'l', b'l', b'o', 0, 0, 0,
            ],
        ),
        (
            run(&|o| _ = record::encode_record(o, RecordType::Stdout, 0x0102, b"")),
            vec![1, 6, 1, 2, 0, 0, 0, 0],
        ),
        (
            run(&|o| _ = record::encode_record(o, RecordType::Stderr, 0xffff, b"12345678")),
            vec![
                1, 7, 0xff, 0xff, 0, 8, 0, 0, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8',
            ],
        ),
        (
            run(&|o| _ = record::encode_record(o, RecordType::Other(200), 3, b"a")),
            vec![1, 200, 0, 3, 0, 1, 7, 0, b'a', 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            run(&|o| record::encode_end_request(o, 1, 0, ProtocolStatus::RequestComplete)),
            vec![1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            run(&|o| {
                record::encode_end_request(o, 0xbeef, 0x01020304, ProtocolStatus::UnknownRole)
            }),
            vec![1, 3, 0xbe, 0xef, 0, 8, 0, 0, 1, 2, 3, 4, 3, 0, 0, 0],
        ),
        (
            run(&|o| record::encode_end_request(o, 2, u32::MAX, ProtocolStatus::CantMpxConn)),
            vec![1, 3, 0, 2, 0, 8, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0],
        ),
        (
            run(&|o| record::encode_unknown_type(o, 42)),
            vec![1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            run(&|o| record::encode_begin_request(o, 1, Role::Responder, 1)),
            vec![1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
        ),
        (
            run(&|o| record::encode_begin_request(o, 0x0203, Role::Other(0x0405), 0)),
            vec![1, 1, 2, 3, 0, 8, 0, 0, 4, 5, 0, 0, 0, 0, 0, 0],
        ),
        (
            run(&|o| record::encode_stream(o, RecordType::Stdout, 1, b"")),
            vec![],
        ),
        (
            run(&|o| record::encode_stream(o, RecordType::Stdout, 1, b"hi")),
            vec![1, 6, 0, 1, 0, 2, 6, 0, b'h', b'i', 0, 0, 0, 0, 0, 0],
        ),
    ];
    for (i, (got, expected)) in table.into_iter().enumerate() {
        assert_eq!(got, expected, "case {i}");
    }
}

#[test]
fn stream_splits_at_65528_with_no_padding_on_full_chunks() {
    let data = vec![b'a'; 65536];
    let mut out = Vec::new();
    record::encode_stream(&mut out, RecordType::Stdout, 1, &data);
    assert_eq!(out.len(), 8 + 65528 + 8 + 8);
    assert_eq!(out[..8], [1, 6, 0, 1, 0xff, 0xf8, 0, 0]);
    assert_eq!(out[8 + 65528..8 + 65528 + 8], [1, 6, 0, 1, 0, 8, 0, 0]);
    assert!(out[8..8 + 65528].iter().all(|b| *b == b'a'));
    assert!(out[8 + 65528 + 8..].iter().all(|b| *b == b'a'));
}

#[test]
fn record_decoder_golden_bytes_whole_and_byte_by_byte() {
    let big: Vec<u8> = (0..65535u32).map(|i| (i % 256) as u8).collect();
    let table: Vec<RecordCase> = vec![
        (
            vec![1, 5, 0, 1, 0, 3, 5, 0, b'a', b'b', b'c', 9, 9, 9, 9, 9],
            RecordType::Stdin,
            1,
            b"abc".to_vec(),
            5,
        ),
        (
            vec![1, 4, 0xff, 0xfe, 0, 0, 0, 0],
            RecordType::Params,
            0xfffe,
            vec![],
            0,
        ),
        (
            vec![1, 0, 0, 0, 0, 1, 0, 7, b'z'],
            RecordType::Other(0),
            0,
            b"z".to_vec(),
            0,
        ),
        (
            vec![1, 99, 0, 0, 0, 0, 0, 0],
            RecordType::Other(99),
            0,
            vec![],
            0,
        ),
        (
            vec![1, 9, 0, 0, 0, 0, 0, 0],
            RecordType::GetValues,
            0,
            vec![],
            0,
        ),
        (
            vec![1, 2, 0, 1, 0, 0, 0, 0],
            RecordType::AbortRequest,
            1,
            vec![],
            0,
        ),
        (rec(DATA, 7, b"", 255), RecordType::Data, 7, vec![], 255),
        (rec(STDIN, 7, &big, 0), RecordType::Stdin, 7, big.clone(), 0),
        (
            rec(STDIN, 7, &big, 255),
            RecordType::Stdin,
            7,
            big.clone(),
            255,
        ),
    ];
    for (i, (bytes, record_type, request_id, content, padding_length)) in table.iter().enumerate() {
        let expected = Record {
            version: 1,
            record_type: *record_type,
            request_id: *request_id,
            content,
            padding_length: *padding_length,
        };
        let total = 8 + content.len() + usize::from(*padding_length);
        assert_eq!(bytes.len(), total, "case {i}");
        // Trailing bytes of the next record are left alone.
        let mut with_next = bytes.clone();
        with_next.extend_from_slice(&[1, 6]);
        assert_eq!(
            parse_record(&with_next),
            Ok(Some((expected, total))),
            "case {i}"
        );
        // Every strict prefix needs more bytes.
        for cut in 0..total {
            assert_eq!(parse_record(&bytes[..cut]), Ok(None), "case {i} cut {cut}");
        }
    }
}

#[test]
fn every_padding_length_parses() {
    for padding in 0..=255u8 {
        for content in [&b""[..], b"x", b"1234567"] {
            let mut bytes = rec(STDIN, 3, content, padding);
            bytes.push(0xEE);
            let (record, used) = parse_record(&bytes).unwrap().unwrap();
            assert_eq!(used, 8 + content.len() + usize::from(padding));
            assert_eq!((record.content, record.padding_length), (content, padding));
        }
    }
}

#[test]
fn bad_versions_are_rejected() {
    for version in [0u8, 2, 0xff] {
        assert_eq!(
            parse_record(&[version]),
            Err(CodecError::UnsupportedVersion(version))
        );
        let bytes = [version, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse_record(&bytes),
            Err(CodecError::UnsupportedVersion(version))
        );
    }
}

#[test]
fn begin_request_bodies() {
    let table: Vec<(&[u8], BeginResult)> = vec![
        (&[0, 1, 1, 0, 0, 0, 0, 0], Ok((Role::Responder, 1))),
        (&[0, 1, 0, 0, 0, 0, 0, 0], Ok((Role::Responder, 0))),
        (&[0, 2, 0, 0, 0, 0, 0, 0], Ok((Role::Authorizer, 0))),
        (&[0, 3, 0xfe, 1, 2, 3, 4, 5], Ok((Role::Filter, 0xfe))),
        (&[1, 1, 1, 0, 0, 0, 0, 0], Ok((Role::Other(0x0101), 1))),
        (&[0, 1, 1], Err(CodecError::BadBeginRequestBody(3))),
        (&[0; 16], Err(CodecError::BadBeginRequestBody(16))),
    ];
    for (body, expected) in table {
        assert_eq!(record::parse_begin_request(body), expected, "body {body:?}");
    }
}

fn decode(buf: &[u8]) -> Result<Pairs<'_>, PairsError> {
    decode_with(buf, &PairLimits::default())
}

fn decode_with<'a>(buf: &'a [u8], limits: &PairLimits) -> Result<Pairs<'a>, PairsError> {
    let mut ranges = Vec::new();
    decode_pairs(buf, limits, &mut ranges)?;
    Ok(ranges
        .into_iter()
        .map(|(n, v)| (&buf[n], &buf[v]))
        .collect())
}

#[test]
fn pair_encoder_golden_bytes() {
    // Name length 1 (one byte), value length 300 = 0x12c (four bytes, high bit set).
    let mut long_value = vec![1, 0x80, 0, 0x01, 0x2c, b'K'];
    long_value.extend(std::iter::repeat_n(b'v', 300));
    // Name length 128 = 0x80 needs four bytes; value length 0 one.
    let mut long_name = vec![0x80, 0, 0, 0x80, 0];
    long_name.extend(std::iter::repeat_n(b'n', 128));
    let table: Vec<(&[u8], Vec<u8>, Vec<u8>)> = vec![
        (b"A", b"b".to_vec(), vec![1, 1, b'A', b'b']),
        (b"", vec![], vec![0, 0]),
        (
            b"SERVER_PORT",
            b"80".to_vec(),
            b"\x0b\x02SERVER_PORT80".to_vec(),
        ),
        (b"K", vec![b'v'; 300], long_value),
        (&[b'n'; 128], vec![], long_name),
    ];
    for (name, value, expected) in table {
        let mut out = Vec::new();
        encode_pair(&mut out, name, &value);
        assert_eq!(out, expected, "name {:?}", String::from_utf8_lossy(name));
        assert_eq!(decode(&out), Ok(vec![(name, &value[..])]));
    }
}

#[test]
fn pair_decoder_golden_bytes() {
    let ok: Vec<(&[u8], Pairs<'static>)> = vec![
        (b"", vec![]),
        (b"\x0b\x02SERVER_PORT80", vec![(b"SERVER_PORT", b"80")]),
        (b"\x01\x00A\x00\x00", vec![(b"A", b""), (b"", b"")]),
        // A 4-byte length may encode a short value.
        (b"\x80\x00\x00\x01\x80\x00\x00\x02Nvv", vec![(b"N", b"vv")]),
        (b"\x01\x01ab\x01\x01ac", vec![(b"a", b"b"), (b"a", b"c")]),
    ];
    for (buf, expected) in ok {
        assert_eq!(decode(buf), Ok(expected), "buf {buf:?}");
    }
}

#[test]
fn hostile_pairs_error_without_panic_or_allocation() {
    let table: Vec<(&[u8], PairsError)> = vec![
        (
            b"\xff\xff\xff\xff\x00",
            PairsError::NameTooLong(0x7fff_ffff),
        ),
        (
            b"\x00\xff\xff\xff\xff",
            PairsError::ValueTooLong(0x7fff_ffff),
        ),
        (b"\x05\x00abc", PairsError::Truncated),
        (b"\x01\x05abc", PairsError::Truncated),
        (b"\x80\x00\x00", PairsError::Truncated),
        (b"\x01", PairsError::Truncated),
        (b"\x01\x01ab\x02", PairsError::Truncated),
    ];
    for (buf, expected) in table {
        let mut ranges = Vec::new();
        assert_eq!(
            decode_pairs(buf, &PairLimits::default(), &mut ranges),
            Err(expected)
        );
        assert!(
            ranges.capacity() <= 4,
            "no allocation sized by a declared length"
        );
    }
    // Even with no limits, declared sizes beyond the buffer are refused.
    let unlimited = PairLimits {
        max_name_len: usize::MAX,
        max_value_len: usize::MAX,
        max_pairs: usize::MAX,
    };
    assert_eq!(
        decode_with(&[0xff; 8], &unlimited),
        Err(PairsError::Truncated)
    );
    assert_eq!(
        decode_with(b"\xff\xff\xff\xff\x01ab", &unlimited),
        Err(PairsError::Truncated)
    );
}

#[test]
fn params_lookup_last_duplicate_wins() {
    let mut p = Params {
        raw: b"\x01\x01ab\x01\x01cd\x01\x01ae".to_vec(),
        pairs: Vec::new(),
    };
    decode_pairs(&p.raw, &PairLimits::default(), &mut p.pairs).unwrap();
    assert_eq!(p.get(b"a"), Some(&b"e"[..]));
    assert_eq!(p.get(b"c"), Some(&b"d"[..]));
    assert_eq!(p.get(b"x"), None);
    let all: Vec<_> = p.iter().collect();
    assert_eq!(all, [(&b"a"[..], &b"b"[..]), (b"c", b"d"), (b"a", b"e")]);
    // Ranges outside `raw` (the fields are public) read as empty instead of panicking.
    let bad = Params {
        raw: b"ab".to_vec(),
        pairs: vec![(0..1, 5..9)],
    };
    assert_eq!(bad.get(b"a"), Some(&b""[..]));
}
