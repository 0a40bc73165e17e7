//! Property tests: codec round trips, arbitrary splits of a request, and hostile input.

use cgate::fastcgi::pairs::{PairLimits, decode_pairs, encode_pair};
use cgate::fastcgi::record::{self, MAX_CONTENT_LEN, parse_record};
use cgate::fastcgi::{Connection, Limits, RecordType};
use proptest::prelude::*;

use super::client::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #[test]
    fn pairs_round_trip(pairs in proptest::collection::vec((bytes(300), bytes(300)), 0..20)) {
        let mut buf = Vec::new();
        for (name, value) in &pairs {
            encode_pair(&mut buf, name, value);
        }
        let mut ranges = Vec::new();
        decode_pairs(&buf, &PairLimits::default(), &mut ranges).unwrap();
        let decoded: Vec<(Vec<u8>, Vec<u8>)> =
            ranges.into_iter().map(|(n, v)| (buf[n].to_vec(), buf[v].to_vec())).collect();
        prop_assert_eq!(decoded, pairs);
    }

    #[test]
    fn stream_encode_then_parse(len in 0usize..200_000, seed: u8, id: u16, stderr: bool) {
        let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let record_type = if stderr { RecordType::Stderr } else { RecordType::Stdout };
        let mut out = Vec::new();
        record::encode_stream(&mut out, record_type, id, &data);
        let mut pos = 0;
        let mut joined = Vec::new();
        while pos < out.len() {
            let (rec, used) = parse_record(&out[pos..]).unwrap().expect("whole record");
            prop_assert_eq!((rec.record_type, rec.request_id), (record_type, id));
            prop_assert!(!rec.content.is_empty() && rec.content.len() <= MAX_CONTENT_LEN);
            prop_assert_eq!(used % 8, 0);
            prop_assert!(rec.padding_length < 8);
            joined.extend_from_slice(rec.content);
            pos += used;
        }
        prop_assert_eq!(joined, data);
    }

    #[test]
    fn any_record_layout_parses(ty: u8, id: u16, content in bytes(1000), padding: u8) {
        let mut buf = rec(ty, id, &content, padding);
        let total = buf.len();
        buf.extend_from_slice(&[1, 2, 3]);
        let (parsed, used) = parse_record(&buf).unwrap().unwrap();
        prop_assert_eq!(used, total);
        prop_assert_eq!(parsed.record_type.as_u8(), ty);
        prop_assert_eq!(parsed.request_id, id);
        prop_assert_eq!(parsed.content, &content[..]);
        prop_assert_eq!(parsed.padding_length, padding);
    }

    #[test]
    fn arbitrary_splits_give_the_same_events(
        pairs in proptest::collection::vec((bytes(40), bytes(200)), 0..10),
        body in bytes(3000),
        params_cut in 1usize..64,
        body_cut in 1usize..700,
        padding: u8,
        splits in proptest::collection::vec(1usize..50, 1..40),
    ) {
        let refs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        let raw = nv(&refs);
        let mut input = begin(1, 1, 1);
        for chunk in raw.chunks(params_cut) {
            input.extend(rec(PARAMS, 1, chunk, padding));
        }
        input.extend(rec(PARAMS, 1, &[], padding));
        for chunk in body.chunks(body_cut) {
            input.extend(rec(STDIN, 1, chunk, padding));
        }
        input.extend(rec(STDIN, 1, &[], 0));

        let mut expected = vec![Ev::Request { id: 1, keep_conn: true, params: pairs.clone() }];
        expected.extend(body.chunks(body_cut).map(|c| Ev::Stdin(c.to_vec())));
        expected.push(Ev::StdinEnd);

        let whole = drive(&input);
        prop_assert_eq!(&whole.events, &expected);
        prop_assert_eq!(whole.error, None);

        // The same bytes cut at arbitrary points (the split sizes repeat cyclically).
        let mut chunks = Vec::new();
        let mut pos = 0;
        for size in splits.iter().cycle() {
            if pos >= input.len() {
                break;
            }
            let end = (pos + size).min(input.len());
            chunks.push(input[pos..end].to_vec());
            pos = end;
        }
        let split = feed(&mut Connection::new(Limits::default(), values()), chunks);
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in bytes(4000), tail in bytes(200)) {
        // Valid framing around arbitrary content, then raw garbage.
        let mut framed = begin(1, 1, 1);
        framed.extend(rec(PARAMS, 1, &input[..input.len().min(1000)], 3));
        framed.extend(rec(PARAMS, 1, &[], 0));
        framed.extend_from_slice(&tail);
        for buf in [&input, &framed] {
            let mut conn = Connection::new(Limits::default(), values());
            let mut pos = 0;
            let mut out = 0;
            while let Ok((used, progress)) = conn.process(&buf[pos..]) {
                pos += used;
                out += crate::client::take(&mut conn).len();
                if progress == cgate::fastcgi::Progress::NeedData {
                    break;
                }
            }
            prop_assert!(pos <= buf.len());
            prop_assert!(out <= buf.len() * 2 + 64);
        }
    }
}
