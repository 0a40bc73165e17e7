//! The request body stream: ends at CONTENT_LENGTH (or at the stream's end, bounded), streamed.

use std::io::{self, Read};

/// Default cap on a body read to its end when no CONTENT_LENGTH was given (FastCGI): 1 GiB.
pub const DEFAULT_MAX_BODY: u64 = 1 << 30;

/// How much of an unread body a gateway skips to keep its connection (else it closes it): 64 KiB.
pub const DRAIN_LIMIT: u64 = 64 * 1024;

/// CONTENT_LENGTH was present but is not strictly `[0-9]+` within `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed CONTENT_LENGTH (only decimal digits are accepted)")]
pub struct BadContentLength;

/// Parses CONTENT_LENGTH strictly: `[0-9]+` within `u64`. An absent or empty value (nginx
/// passes an empty one for requests without a body) means "not given".
pub fn parse_content_length(value: Option<&[u8]>) -> Result<Option<u64>, BadContentLength> {
    let Some(v) = value else { return Ok(None) };
    if v.is_empty() {
        return Ok(None);
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(BadContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(BadContentLength)?;
    }
    Ok(Some(n))
}

/// Where a body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// Exactly this many bytes (CONTENT_LENGTH).
    Exact(u64),
    /// Up to the end of the transport's stream, refusing more than this many bytes.
    ToEnd {
        /// The most bytes accepted before the read fails.
        max: u64,
    },
}

/// The request body as the app sees it (PEP 3333's `wsgi.input`).
///
/// Reads never go past the declared length; when the transport ends early the app sees the
/// bytes that came and then an `UnexpectedEof` error. Nothing is buffered here: each read goes
/// to the transport, so a large upload never sits in memory.
pub struct Input<'r> {
    source: &'r mut dyn Read,
    length: BodyLength,
    consumed: u64,
    failed: bool,
}

impl<'r> Input<'r> {
    /// A body read from `source` that ends as `length` says.
    pub fn new(source: &'r mut dyn Read, length: BodyLength) -> Self {
        Input {
            source,
            length,
            consumed: 0,
            failed: false,
        }
    }

    /// An empty body.
    pub fn empty(source: &'r mut dyn Read) -> Self {
        Input::new(source, BodyLength::Exact(0))
    }

    /// The declared CONTENT_LENGTH, if any.
    pub fn content_length(&self) -> Option<u64> {
        match self.length {
            BodyLength::Exact(n) => Some(n),
            BodyLength::ToEnd { .. } => None,
        }
    }

    /// Bytes handed to the app so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// `true` when the whole body has been read (or the transport failed).
    pub fn is_finished(&self) -> bool {
        match self.length {
            BodyLength::Exact(n) => self.consumed >= n || self.failed,
            BodyLength::ToEnd { .. } => self.failed,
        }
    }
}

impl Read for Input<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("request body stream failed earlier"));
        }
        let want = match self.length {
            BodyLength::Exact(n) => {
                let left = n.saturating_sub(self.consumed);
                if left == 0 {
                    return Ok(0);
                }
                buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))
            }
            BodyLength::ToEnd { .. } => buf.len(),
        };
        if want == 0 {
            return Ok(0);
        }
        let got = match self.source.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed = true;
                }
                return Err(e);
            }
        };
        self.consumed += got as u64;
        match self.length {
            BodyLength::Exact(n) if got == 0 => {
                self.failed = true;
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("request body ended after {} of {} bytes", self.consumed, n),
                ))
            }
            BodyLength::ToEnd { max } if self.consumed > max => {
                self.failed = true;
                Err(io::Error::other(format!(
                    "request body larger than the {max}-byte limit"
                )))
            }
            _ => Ok(got),
        }
    }
}

/// Appends `n` in decimal (no allocation, no formatting machinery).
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_content_length() {
        assert_eq!(parse_content_length(None), Ok(None));
        assert_eq!(parse_content_length(Some(b"")), Ok(None));
        assert_eq!(parse_content_length(Some(b"0")), Ok(Some(0)));
        assert_eq!(parse_content_length(Some(b"0012")), Ok(Some(12)));
        for bad in [
            &b"+5"[..],
            b"0x10",
            b"-1",
            b" 1",
            b"1 ",
            b"18446744073709551616",
            b"1e3",
        ] {
            assert_eq!(
                parse_content_length(Some(bad)),
                Err(BadContentLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_content_length(Some(b"18446744073709551615")),
            Ok(Some(u64::MAX))
        );
    }

    #[test]
    fn stops_at_declared_length() {
        let mut src: &[u8] = b"hello world";
        let mut input = Input::new(&mut src, BodyLength::Exact(5));
        let mut out = Vec::new();
        input.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
        assert!(input.is_finished());
        assert_eq!(src, b" world");
    }

    #[test]
    fn short_body_gives_bytes_then_error() {
        let mut src: &[u8] = b"abc";
        let mut input = Input::new(&mut src, BodyLength::Exact(10));
        let mut buf = [0u8; 16];
        assert_eq!(input.read(&mut buf).unwrap(), 3);
        let err = input.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(err.to_string(), "request body ended after 3 of 10 bytes");
    }

    #[test]
    fn to_end_is_bounded() {
        let mut src: &[u8] = &[7u8; 100];
        let mut input = Input::new(&mut src, BodyLength::ToEnd { max: 50 });
        let mut buf = [0u8; 40];
        assert_eq!(input.read(&mut buf).unwrap(), 40);
        assert!(!input.is_finished());
        let err = input.read(&mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "request body larger than the 50-byte limit"
        );
        assert_eq!(input.consumed(), 80);
        assert!(input.is_finished());
        let again = input.read(&mut buf).unwrap_err();
        assert_eq!(again.to_string(), "request body stream failed earlier");
        assert_eq!(src.len(), 20, "nothing read after the failure");
    }
}
