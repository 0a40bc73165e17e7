//! Record codec: parse whatever arrives; what parses re-encodes to the same record; streams
//! split into records and join back unchanged.
//!
//! Library paths: `cgate::fastcgi::proto::record::{parse_record, encode_record, encode_stream,
//! HEADER_LEN, MAX_CONTENT_LEN}`, `cgate::fastcgi::proto::RecordType`.

use cgate::fastcgi::proto::RecordType;
use cgate::fastcgi::proto::record::{
    HEADER_LEN, MAX_CONTENT_LEN, encode_record, encode_stream, parse_record,
};

/// Parses every record at the front of `data`, checks each one's framing and round trip,
/// then encodes `data` as a STDOUT stream and checks it joins back to `data`.
pub fn check(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((rec, used))) = parse_record(rest) {
        assert!(
            used <= rest.len(),
            "record claims {used} of {} bytes",
            rest.len()
        );
        assert_eq!(
            used,
            HEADER_LEN + rec.content.len() + usize::from(rec.padding_length),
            "record length"
        );
        assert_eq!(
            rec.content,
            &rest[HEADER_LEN..HEADER_LEN + rec.content.len()]
        );
        let mut again = Vec::new();
        encode_record(&mut again, rec.record_type, rec.request_id, rec.content);
        let (back, n) = parse_record(&again)
            .expect("own encoding parses")
            .expect("own encoding is whole");
        assert_eq!(n, again.len(), "own encoding is one record");
        assert_eq!(
            (back.record_type, back.request_id, back.content),
            (rec.record_type, rec.request_id, rec.content)
        );
        assert_eq!(back.record_type.as_u8(), rest[1], "type byte kept");
        rest = &rest[used..];
    }
    stream_round_trip(data);
}

fn stream_round_trip(data: &[u8]) {
    let mut wire = Vec::new();
    encode_stream(&mut wire, RecordType::Stdout, 7, data);
    let mut joined = Vec::new();
    let mut rest = &wire[..];
    while !rest.is_empty() {
        let (rec, used) = parse_record(rest)
            .expect("encoded stream parses")
            .expect("encoded stream is whole records");
        assert_eq!((rec.record_type, rec.request_id), (RecordType::Stdout, 7));
        assert!(!rec.content.is_empty() && rec.content.len() <= MAX_CONTENT_LEN);
        joined.extend_from_slice(rec.content);
        rest = &rest[used..];
    }
    assert_eq!(joined, data, "stream joins back");
}
