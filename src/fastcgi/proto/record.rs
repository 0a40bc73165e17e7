//! FastCGI 1.0 record codec over byte slices: header, record types, padding and the 65535-byte split.
//!
//! Layouts follow the FastCGI specification, section 8: an 8-byte header
//! (`version`, `type`, `requestId` big-endian, `contentLength` big-endian,
//! `paddingLength`, reserved) followed by `contentLength` content bytes and
//! `paddingLength` padding bytes. Nothing here performs I/O or allocates
//! beyond appending to the caller's output vector.

use thiserror::Error;

/// The only protocol version defined by the specification (`FCGI_VERSION_1`).
pub const VERSION_1: u8 = 1;
/// Length of a record header in bytes (`FCGI_HEADER_LEN`).
pub const HEADER_LEN: usize = 8;
/// Largest content a single record can carry (the `contentLength` field is 16 bits).
pub const MAX_CONTENT_LEN: usize = 65535;
/// Content size used by [`encode_stream`] for full chunks: the largest multiple of 8
/// that fits in a record, so full chunks need no padding.
pub const STREAM_CHUNK_LEN: usize = 65528;
/// `FCGI_KEEP_CONN`: bit in the BEGIN_REQUEST flags asking the application to keep the
/// connection open after the request.
pub const FCGI_KEEP_CONN: u8 = 1;
/// Request id reserved for management records (`FCGI_NULL_REQUEST_ID`).
pub const NULL_REQUEST_ID: u16 = 0;
/// Length of the BEGIN_REQUEST, END_REQUEST and UNKNOWN_TYPE bodies.
pub const BODY_LEN: usize = 8;

/// Record type (`type` header byte). Unknown values stay representable as [`RecordType::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// `FCGI_BEGIN_REQUEST` (1).
    BeginRequest,
    /// `FCGI_ABORT_REQUEST` (2).
    AbortRequest,
    /// `FCGI_END_REQUEST` (3).
    EndRequest,
    /// `FCGI_PARAMS` (4).
    Params,
    /// `FCGI_STDIN` (5).
    Stdin,
    /// `FCGI_STDOUT` (6).
    Stdout,
    /// `FCGI_STDERR` (7).
    Stderr,
    /// `FCGI_DATA` (8).
    Data,
    /// `FCGI_GET_VALUES` (9).
    GetValues,
    /// `FCGI_GET_VALUES_RESULT` (10).
    GetValuesResult,
    /// `FCGI_UNKNOWN_TYPE` (11).
    UnknownType,
    /// Any other type byte.
    Other(u8),
}

impl RecordType {
    /// Maps a header type byte to a record type.
    pub fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::BeginRequest,
            2 => Self::AbortRequest,
            3 => Self::EndRequest,
            4 => Self::Params,
            5 => Self::Stdin,
            6 => Self::Stdout,
            7 => Self::Stderr,
            8 => Self::Data,
            9 => Self::GetValues,
            10 => Self::GetValuesResult,
            11 => Self::UnknownType,
            other => Self::Other(other),
        }
    }

    /// The header type byte of this record type.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::BeginRequest => 1,
            Self::AbortRequest => 2,
            Self::EndRequest => 3,
            Self::Params => 4,
            Self::Stdin => 5,
            Self::Stdout => 6,
            Self::Stderr => 7,
            Self::Data => 8,
            Self::GetValues => 9,
            Self::GetValuesResult => 10,
            Self::UnknownType => 11,
            Self::Other(other) => other,
        }
    }
}

/// Role requested by a BEGIN_REQUEST record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `FCGI_RESPONDER` (1).
    Responder,
    /// `FCGI_AUTHORIZER` (2).
    Authorizer,
    /// `FCGI_FILTER` (3).
    Filter,
    /// Any other role value.
    Other(u16),
}

impl Role {
    /// Maps the 16-bit role field to a role.
    pub fn from_u16(value: u16) -> Self {
        match value {
            1 => Self::Responder,
            2 => Self::Authorizer,
            3 => Self::Filter,
            other => Self::Other(other),
        }
    }

    /// The 16-bit role field of this role.
    pub fn as_u16(self) -> u16 {
        match self {
            Self::Responder => 1,
            Self::Authorizer => 2,
            Self::Filter => 3,
            Self::Other(other) => other,
        }
    }
}

/// Protocol-level status of an END_REQUEST record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE` (0): normal end of request.
    RequestComplete,
    /// `FCGI_CANT_MPX_CONN` (1): a concurrent request on one connection was rejected.
    CantMpxConn,
    /// `FCGI_OVERLOADED` (2): the application ran out of a resource.
    Overloaded,
    /// `FCGI_UNKNOWN_ROLE` (3): the requested role is not supported.
    UnknownRole,
    /// Any other status byte.
    Other(u8),
}

impl ProtocolStatus {
    /// Maps the status byte to a protocol status.
    pub fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::RequestComplete,
            1 => Self::CantMpxConn,
            2 => Self::Overloaded,
            3 => Self::UnknownRole,
            other => Self::Other(other),
        }
    }

    /// The status byte of this protocol status.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::RequestComplete => 0,
            Self::CantMpxConn => 1,
            Self::Overloaded => 2,
            Self::UnknownRole => 3,
            Self::Other(other) => other,
        }
    }
}

/// Errors of the record codec. Any of them means the peer does not speak FastCGI 1.0
/// correctly; the connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The header's version byte is not [`VERSION_1`].
    #[error("unsupported FastCGI version {0}")]
    UnsupportedVersion(u8),
    /// A BEGIN_REQUEST body is not exactly 8 bytes long.
    #[error("BEGIN_REQUEST body is {0} bytes, expected 8")]
    BadBeginRequestBody(usize),
    /// An END_REQUEST body is not exactly 8 bytes long.
    #[error("END_REQUEST body is {0} bytes, expected 8")]
    BadEndRequestBody(usize),
}

/// One parsed record, borrowing its content from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Header version byte (always [`VERSION_1`] for records returned by [`parse_record`]).
    pub version: u8,
    /// Record type.
    pub record_type: RecordType,
    /// Request id (0 for management records).
    pub request_id: u16,
    /// Content bytes (`contentLength` of them).
    pub content: &'a [u8],
    /// Number of padding bytes that followed the content (already skipped).
    pub padding_length: u8,
}

/// Parses one record from the front of `buf`.
///
/// Returns `Ok(None)` while `buf` holds less than a whole record, otherwise the record
/// and the number of bytes it used (header + content + padding). The version is checked
/// as soon as the first byte is present.
pub fn parse_record(buf: &[u8]) -> Result<Option<(Record<'_>, usize)>, CodecError> {
    if let Some(&version) = buf.first()
        && version != VERSION_1
    {
        return Err(CodecError::UnsupportedVersion(version));
    }
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let [
        version,
        type_byte,
        id_hi,
        id_lo,
        len_hi,
        len_lo,
        padding_length,
        _reserved,
    ] = *header;
    let content_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let content_end = HEADER_LEN + content_len;
    let total = content_end + usize::from(padding_length);
    if buf.len() < total {
        return Ok(None);
    }
    let Some(content) = buf.get(HEADER_LEN..content_end) else {
        return Ok(None);
    };
    let record = Record {
        version,
        record_type: RecordType::from_u8(type_byte),
        request_id: u16::from_be_bytes([id_hi, id_lo]),
        content,
        padding_length,
    };
    Ok(Some((record, total)))
}

/// Padding that brings `content_len` up to a multiple of 8.
fn padding_for(content_len: usize) -> u8 {
    // `(8 - len % 8) % 8` is always in 0..=7.
    ((8 - content_len % 8) % 8) as u8
}

/// Appends one record with `content` to `out`, padded so the record length is a multiple of 8.
///
/// At most [`MAX_CONTENT_LEN`] bytes of `content` are written (longer data belongs in
/// [`encode_stream`]); returns the number of content bytes written.
pub fn encode_record(
    out: &mut Vec<u8>,
    record_type: RecordType,
    request_id: u16,
    content: &[u8],
) -> usize {
    debug_assert!(
        content.len() <= MAX_CONTENT_LEN,
        "record content over 65535 bytes"
    );
    let content = content.get(..MAX_CONTENT_LEN).unwrap_or(content);
    let padding = padding_for(content.len());
    // `content.len() <= 65535`, so the cast is lossless.
    let [len_hi, len_lo] = (content.len() as u16).to_be_bytes();
    let [id_hi, id_lo] = request_id.to_be_bytes();
    out.reserve(HEADER_LEN + content.len() + usize::from(padding));
    out.extend_from_slice(&[
        VERSION_1,
        record_type.as_u8(),
        id_hi,
        id_lo,
        len_hi,
        len_lo,
        padding,
        0,
    ]);
    out.extend_from_slice(content);
    out.extend_from_slice(&[0u8; 8][..usize::from(padding)]);
    content.len()
}

/// Appends `data` as a sequence of stream records of `record_type` (STDOUT, STDERR, ...),
/// each carrying at most [`STREAM_CHUNK_LEN`] bytes. Empty `data` writes nothing: the empty
/// record that ends a stream is written with [`encode_record`] and empty content.
pub fn encode_stream(out: &mut Vec<u8>, record_type: RecordType, request_id: u16, data: &[u8]) {
    for chunk in data.chunks(STREAM_CHUNK_LEN) {
        encode_record(out, record_type, request_id, chunk);
    }
}

/// Appends an END_REQUEST record with the application status and protocol status.
pub fn encode_end_request(
    out: &mut Vec<u8>,
    request_id: u16,
    app_status: u32,
    status: ProtocolStatus,
) {
    let [a, b, c, d] = app_status.to_be_bytes();
    let body = [a, b, c, d, status.as_u8(), 0, 0, 0];
    encode_record(out, RecordType::EndRequest, request_id, &body);
}

/// Appends an UNKNOWN_TYPE management record naming the type byte that was not understood.
pub fn encode_unknown_type(out: &mut Vec<u8>, type_byte: u8) {
    let body = [type_byte, 0, 0, 0, 0, 0, 0, 0];
    encode_record(out, RecordType::UnknownType, NULL_REQUEST_ID, &body);
}

/// Appends a BEGIN_REQUEST record (the web server's side; used by clients and tests).
pub fn encode_begin_request(out: &mut Vec<u8>, request_id: u16, role: Role, flags: u8) {
    let [hi, lo] = role.as_u16().to_be_bytes();
    let body = [hi, lo, flags, 0, 0, 0, 0, 0];
    encode_record(out, RecordType::BeginRequest, request_id, &body);
}

/// Parses a BEGIN_REQUEST body into the role and the flags byte.
pub fn parse_begin_request(content: &[u8]) -> Result<(Role, u8), CodecError> {
    match *content {
        [hi, lo, flags, _, _, _, _, _] => Ok((Role::from_u16(u16::from_be_bytes([hi, lo])), flags)),
        _ => Err(CodecError::BadBeginRequestBody(content.len())),
    }
}

/// Parses an END_REQUEST body into the application status and the protocol status.
pub fn parse_end_request(content: &[u8]) -> Result<(u32, ProtocolStatus), CodecError> {
    match *content {
        [a, b, c, d, status, _, _, _] => Ok((
            u32::from_be_bytes([a, b, c, d]),
            ProtocolStatus::from_u8(status),
        )),
        _ => Err(CodecError::BadEndRequestBody(content.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_type_bytes_round_trip() {
        for byte in 0..=u8::MAX {
            assert_eq!(RecordType::from_u8(byte).as_u8(), byte);
            assert_eq!(ProtocolStatus::from_u8(byte).as_u8(), byte);
        }
        assert_eq!(RecordType::from_u8(0), RecordType::Other(0));
        assert_eq!(RecordType::from_u8(11), RecordType::UnknownType);
        assert_eq!(RecordType::from_u8(12), RecordType::Other(12));
        assert_eq!(Role::from_u16(3), Role::Filter);
        assert_eq!(Role::from_u16(0x0100).as_u16(), 0x0100);
    }

    #[test]
    fn header_needs_eight_bytes_and_version_is_checked_early() {
        assert_eq!(parse_record(&[]), Ok(None));
        assert_eq!(parse_record(&[1, 5, 0]), Ok(None));
        assert_eq!(parse_record(&[2]), Err(CodecError::UnsupportedVersion(2)));
        assert_eq!(
            parse_record(&[0, 1, 0, 1, 0, 0, 0, 0]),
            Err(CodecError::UnsupportedVersion(0))
        );
    }

    #[test]
    fn padding_keeps_records_aligned() {
        for len in 0..=17usize {
            let mut out = Vec::new();
            encode_record(&mut out, RecordType::Stdout, 1, &vec![b'x'; len]);
            assert_eq!(out.len() % 8, 0, "content {len}");
            assert_eq!(out.len(), HEADER_LEN + len.div_ceil(8) * 8);
        }
    }

    #[test]
    fn max_content_record_has_one_padding_byte() {
        let mut out = Vec::new();
        let written = encode_record(&mut out, RecordType::Stdout, 7, &vec![1u8; MAX_CONTENT_LEN]);
        assert_eq!(written, MAX_CONTENT_LEN);
        assert_eq!(out[..8], [1, 6, 0, 7, 0xff, 0xff, 1, 0]);
        assert_eq!(out.len(), 8 + 65535 + 1);
        let (record, used) = parse_record(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert_eq!(record.content.len(), MAX_CONTENT_LEN);
        assert_eq!(record.padding_length, 1);
    }

    #[test]
    fn begin_and_end_bodies_must_be_eight_bytes() {
        assert_eq!(
            parse_begin_request(&[0, 1, 1, 0, 0, 0, 0]),
            Err(CodecError::BadBeginRequestBody(7))
        );
        assert_eq!(
            parse_begin_request(&[0, 1, 1, 0, 0, 0, 0, 0, 0]),
            Err(CodecError::BadBeginRequestBody(9))
        );
        assert_eq!(
            parse_begin_request(&[0, 2, 0, 9, 9, 9, 9, 9]),
            Ok((Role::Authorizer, 0))
        );
        assert_eq!(
            parse_end_request(&[0, 0, 1, 2, 3, 0, 0, 0]),
            Ok((258, ProtocolStatus::UnknownRole))
        );
        assert_eq!(
            parse_end_request(&[]),
            Err(CodecError::BadEndRequestBody(0))
        );
    }
}
