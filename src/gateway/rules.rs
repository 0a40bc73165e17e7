//! The character rules of status lines and header fields (RFC 9110 tokens and field values), and the one error for a refused status or header.

/// Why a status or a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// The status is not `NNN Reason` with a 3-digit code 100..=599 and a clean reason.
    #[error("invalid status line {0:?} (expected e.g. \"200 OK\")")]
    Status(String),
    /// A header name that is not an RFC 9110 token.
    #[error("invalid header name {0:?}")]
    Name(String),
    /// A header value holding CR, LF, NUL or another control byte.
    #[error("invalid value for header {0:?} (control bytes are not allowed)")]
    Value(String),
    /// A hop-by-hop header, which only the web server may set.
    #[error("hop-by-hop header {0:?} is not allowed from an application")]
    HopByHop(String),
    /// `Status` given as a header: the status belongs in the status argument.
    #[error("\"Status\" must be given as the status, not as a header")]
    StatusHeader,
    /// A Content-Length that is not `[0-9]+` within `u64`, or two that differ.
    #[error("invalid Content-Length {0:?} (one decimal value is allowed)")]
    ContentLength(String),
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `true` for an RFC 9110 token (a valid header name).
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// `true` for a field value without control bytes (HTAB and obs-text allowed).
pub fn is_field_value(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}
