//! FastCGI name-value pair codec (1- and 4-byte lengths), bounded and index-based.
//!
//! Each pair is `nameLength`, `valueLength`, name bytes, value bytes. A length whose
//! first byte has the high bit clear is that one byte (0..=127); otherwise it is four
//! bytes big-endian with the high bit masked off (specification, section 3.4).
//! Decoding never copies: it yields byte ranges into the input. Every declared length is
//! checked against the configured limits and the bytes actually present before use, so a
//! hostile length can neither panic nor size an allocation.

use std::ops::Range;

use thiserror::Error;

/// One decoded pair: the byte ranges of its name and its value in the decoded buffer.
pub type PairRange = (Range<usize>, Range<usize>);

/// Largest length a 4-byte length field can express (31 bits).
pub const MAX_ENCODED_LEN: usize = 0x7fff_ffff;

/// Bounds applied while decoding name-value pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairLimits {
    /// Longest accepted name in bytes. Default 4096 (4 KiB).
    pub max_name_len: usize,
    /// Longest accepted value in bytes. Default 262144 (256 KiB).
    pub max_value_len: usize,
    /// Most pairs accepted in one decoded buffer. Default 1000.
    pub max_pairs: usize,
}

impl Default for PairLimits {
    fn default() -> Self {
        Self {
            max_name_len: 4 * 1024,
            max_value_len: 256 * 1024,
            max_pairs: 1000,
        }
    }
}

/// Errors of the name-value decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PairsError {
    /// The buffer ends inside a length field, a name or a value.
    #[error("name-value pair truncated")]
    Truncated,
    /// A declared name length is over [`PairLimits::max_name_len`].
    #[error("name-value pair name of {0} bytes is over the limit")]
    NameTooLong(usize),
    /// A declared value length is over [`PairLimits::max_value_len`].
    #[error("name-value pair value of {0} bytes is over the limit")]
    ValueTooLong(usize),
    /// More pairs than [`PairLimits::max_pairs`].
    #[error("more than {0} name-value pairs")]
    TooManyPairs(usize),
}

/// Iterator over the pairs of a buffer, yielding `(name range, value range)` into it.
///
/// After the first error it yields nothing more.
#[derive(Debug, Clone)]
pub struct PairIter<'a> {
    buf: &'a [u8],
    pos: usize,
    count: usize,
    limits: PairLimits,
    failed: bool,
}

/// Iterates over the pairs in `buf` without allocating.
pub fn iter_pairs<'a>(buf: &'a [u8], limits: &PairLimits) -> PairIter<'a> {
    PairIter {
        buf,
        pos: 0,
        count: 0,
        limits: *limits,
        failed: false,
    }
}

impl PairIter<'_> {
    /// Reads one length field at the current position.
    fn read_len(&mut self) -> Result<usize, PairsError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match rest {
            [first, ..] if first & 0x80 == 0 => {
                self.pos += 1;
                Ok(usize::from(*first))
            }
            [b3, b2, b1, b0, ..] => {
                self.pos += 4;
                let len = u32::from_be_bytes([b3 & 0x7f, *b2, *b1, *b0]);
                // A 31-bit value always fits in usize on the platforms we support.
                Ok(usize::try_from(len).unwrap_or(usize::MAX))
            }
            _ => Err(PairsError::Truncated),
        }
    }

    /// Decodes the pair starting at the current position.
    fn next_pair(&mut self) -> Result<PairRange, PairsError> {
        if self.count >= self.limits.max_pairs {
            return Err(PairsError::TooManyPairs(self.limits.max_pairs));
        }
        let name_len = self.read_len()?;
        let value_len = self.read_len()?;
        if name_len > self.limits.max_name_len {
            return Err(PairsError::NameTooLong(name_len));
        }
        if value_len > self.limits.max_value_len {
            return Err(PairsError::ValueTooLong(value_len));
        }
        let remaining = self.buf.len().saturating_sub(self.pos);
        let needed = name_len
            .checked_add(value_len)
            .ok_or(PairsError::Truncated)?;
        if needed > remaining {
            return Err(PairsError::Truncated);
        }
        let name = self.pos..self.pos + name_len;
        let value = name.end..name.end + value_len;
        self.pos = value.end;
        self.count += 1;
        Ok((name, value))
    }
}

impl Iterator for PairIter<'_> {
    type Item = Result<PairRange, PairsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let item = self.next_pair();
        self.failed = item.is_err();
        Some(item)
    }
}

/// Decodes every pair of `buf` into `out` (appending `(name, value)` ranges into `buf`).
///
/// On error `out` may hold the pairs decoded before the bad one; callers discard it.
pub fn decode_pairs(
    buf: &[u8],
    limits: &PairLimits,
    out: &mut Vec<PairRange>,
) -> Result<(), PairsError> {
    for pair in iter_pairs(buf, limits) {
        out.push(pair?);
    }
    Ok(())
}

/// Appends one length field (1 byte up to 127, else 4 bytes with the high bit set).
fn encode_len(out: &mut Vec<u8>, len: usize) {
    if len <= 0x7f {
        // Checked just above: fits in 7 bits.
        out.push(len as u8);
    } else {
        let len = u32::try_from(len.min(MAX_ENCODED_LEN)).unwrap_or(0x7fff_ffff);
        out.extend_from_slice(&(len | 0x8000_0000).to_be_bytes());
    }
}

/// Appends one name-value pair to `out`.
///
/// Names and values longer than [`MAX_ENCODED_LEN`] cannot be expressed; they are cut to
/// that length so the output stays well-formed.
pub fn encode_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let name = name.get(..MAX_ENCODED_LEN).unwrap_or(name);
    let value = value.get(..MAX_ENCODED_LEN).unwrap_or(value);
    encode_len(out, name.len());
    encode_len(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(buf: &[u8]) -> Result<Vec<PairRange>, PairsError> {
        let mut out = Vec::new();
        decode_pairs(buf, &PairLimits::default(), &mut out).map(|()| out)
    }

    #[test]
    fn length_boundary_127_128() {
        let mut out = Vec::new();
        encode_pair(&mut out, &[b'n'; 127], &[b'v'; 128]);
        assert_eq!(out[..5], [0x7f, 0x80, 0, 0, 0x80]);
        assert_eq!(out.len(), 5 + 127 + 128);
        assert_eq!(decode(&out), Ok(vec![(5..132, 132..260)]));
    }

    #[test]
    fn empty_buffer_has_no_pairs() {
        assert_eq!(decode(&[]), Ok(vec![]));
    }

    #[test]
    fn short_length_fields_are_truncated() {
        assert_eq!(decode(&[3]), Err(PairsError::Truncated));
        assert_eq!(decode(&[0x80, 0, 0]), Err(PairsError::Truncated));
        assert_eq!(decode(&[1, 0x80, 0, 0]), Err(PairsError::Truncated));
        assert_eq!(decode(&[1, 1, b'a']), Err(PairsError::Truncated));
    }

    #[test]
    fn pair_count_is_bounded() {
        let limits = PairLimits {
            max_pairs: 2,
            ..PairLimits::default()
        };
        let mut out = Vec::new();
        assert_eq!(
            decode_pairs(&[0, 0, 0, 0, 0, 0], &limits, &mut out),
            Err(PairsError::TooManyPairs(2))
        );
    }

    #[test]
    fn iterator_stops_after_error() {
        let mut iter = iter_pairs(&[0xff, 0xff, 0xff, 0xff, 0], &PairLimits::default());
        assert_eq!(iter.next(), Some(Err(PairsError::NameTooLong(0x7fff_ffff))));
        assert_eq!(iter.next(), None);
    }
}
