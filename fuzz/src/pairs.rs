//! Name-value pairs: decoded ranges tile the buffer and respect the limits; what decodes
//! re-encodes and decodes to the same names and values; the iterator and the decoder agree.
//!
//! Library paths: `cgate::fastcgi::proto::pairs::{decode_pairs, iter_pairs, encode_pair}`,
//! `cgate::fastcgi::proto::PairLimits`.

use cgate::fastcgi::proto::PairLimits;
use cgate::fastcgi::proto::pairs::{decode_pairs, encode_pair, iter_pairs};

/// The first byte picks tight limits (odd) or the defaults (even); the rest is the buffer.
pub fn check(data: &[u8]) {
    let Some((&pick, buf)) = data.split_first() else {
        return;
    };
    let limits = if pick & 1 == 1 {
        PairLimits {
            max_name_len: usize::from(pick >> 4) + 1,
            max_value_len: usize::from(pick >> 1 & 7) * 8,
            max_pairs: usize::from(pick >> 5) + 1,
        }
    } else {
        PairLimits::default()
    };
    let mut pairs = Vec::new();
    let decoded = decode_pairs(buf, &limits, &mut pairs);
    let iterated: Vec<_> = iter_pairs(buf, &limits).collect();
    let from_iter: Vec<_> = iterated.iter().filter_map(|p| p.clone().ok()).collect();
    assert_eq!(from_iter, pairs, "iterator and decoder agree");
    assert_eq!(
        decoded.err(),
        iterated.last().and_then(|p| p.clone().err()),
        "same error"
    );
    if decoded.is_err() {
        return;
    }
    assert!(pairs.len() <= limits.max_pairs);
    let mut end = 0;
    let mut again = Vec::new();
    for (name, value) in &pairs {
        assert!(name.start >= end && name.end == value.start && value.end <= buf.len());
        assert!(name.len() <= limits.max_name_len && value.len() <= limits.max_value_len);
        end = value.end;
        encode_pair(&mut again, &buf[name.clone()], &buf[value.clone()]);
    }
    assert_eq!(end, buf.len(), "pairs cover the whole buffer");
    let mut back = Vec::new();
    decode_pairs(&again, &limits, &mut back).expect("own encoding decodes");
    let slices = |b: &[u8], p: &[(std::ops::Range<usize>, std::ops::Range<usize>)]| {
        p.iter()
            .map(|(n, v)| (b[n.clone()].to_vec(), b[v.clone()].to_vec()))
            .collect::<Vec<_>>()
    };
    assert_eq!(slices(&again, &back), slices(buf, &pairs), "round trip");
}
