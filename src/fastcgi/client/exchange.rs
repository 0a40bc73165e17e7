//! Sans-IO FastCGI client (the web server's side) for one request: records out, events in.
//!
//! [`Exchange`] encodes a request (BEGIN_REQUEST, PARAMS packed whole pair by whole pair,
//! STDIN chunks, ABORT_REQUEST) into the caller's buffer and decodes the backend's bytes into
//! [`Reply`] events one record at a time. It also owns the protocol's retry decision
//! ([`retry_safe`]): whether a failed request can be sent again elsewhere because the backend
//! cannot have acted on it. Nothing here performs I/O or reads a clock.

use thiserror::Error;

use crate::fastcgi::proto::pairs::{self, PairLimits};
use crate::fastcgi::proto::record::{
    self, CodecError, FCGI_KEEP_CONN, MAX_CONTENT_LEN, NULL_REQUEST_ID, ProtocolStatus, RecordType,
    Role,
};

/// Content size of the STDIN records [`Exchange::stdin`] writes (a multiple of 8).
pub const STDIN_CHUNK_LEN: usize = record::STREAM_CHUNK_LEN;

/// What one record from the backend meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'b> {
    /// FCGI_STDOUT bytes (never empty: the empty record that closes the stream is skipped).
    Stdout(&'b [u8]),
    /// FCGI_STDERR bytes (never empty).
    Stderr(&'b [u8]),
    /// FCGI_END_REQUEST: the request is over.
    End {
        /// The application's exit status.
        app_status: u32,
        /// How the request ended at the protocol level.
        status: ProtocolStatus,
    },
    /// A FCGI_GET_VALUES_RESULT body (decode it with [`parse_values`]).
    Values(&'b [u8]),
    /// A record with nothing for the caller (an empty stream terminator, UNKNOWN_TYPE).
    Nothing,
}

/// A backend that does not speak FastCGI 1.0 correctly; the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReplyError {
    /// The record codec refused the bytes.
    #[error("{0}")]
    Codec(#[from] CodecError),
    /// A record for a request id other than the one in flight.
    #[error("record for request id {0}, expected {1}")]
    WrongRequestId(u16, u16),
    /// A record type a responder never sends to the web server.
    #[error("unexpected record type {0} from the backend")]
    UnexpectedType(u8),
    /// A record after END_REQUEST.
    #[error("record after END_REQUEST")]
    AfterEnd,
}

/// The client side of one FastCGI request on one connection.
#[derive(Debug, Clone)]
pub struct Exchange {
    id: u16,
    keep_conn: bool,
    output_seen: bool,
    stdout_closed: bool,
    ended: bool,
}

impl Exchange {
    /// A request with this id (never 0); `keep_conn` sets FCGI_KEEP_CONN.
    pub fn new(request_id: u16, keep_conn: bool) -> Self {
        Exchange {
            id: request_id.max(1),
            keep_conn,
            output_seen: false,
            stdout_closed: false,
            ended: false,
        }
    }

    /// The request id.
    pub fn request_id(&self) -> u16 {
        self.id
    }

    /// Appends BEGIN_REQUEST (Responder) and the whole PARAMS stream, closed by an empty
    /// PARAMS record. Pairs are packed whole into records of at most 65535 bytes (some
    /// responders decode each record on its own); only a pair longer than that spans records.
    pub fn begin<'p>(
        &self,
        out: &mut Vec<u8>,
        params: impl IntoIterator<Item = (&'p [u8], &'p [u8])>,
    ) {
        let flags = if self.keep_conn { FCGI_KEEP_CONN } else { 0 };
        record::encode_begin_request(out, self.id, Role::Responder, flags);
        // Pairs are encoded in place after the header of the open record, which is filled
        // in when the record closes: no intermediate buffer, no copy.
        let mut open: Option<usize> = None;
        for (name, value) in params {
            let name = name.get(..pairs::MAX_ENCODED_LEN).unwrap_or(name);
            let value = value.get(..pairs::MAX_ENCODED_LEN).unwrap_or(value);
            let len = pair_len(name.len()) + pair_len(value.len()) + name.len() + value.len();
            if let Some(at) = open
                && out.len() - at - record::HEADER_LEN + len > MAX_CONTENT_LEN
            {
                self.close_params(out, at);
                open = None;
            }
            if len > MAX_CONTENT_LEN {
                // Only a pair longer than a record spans records; its tail opens the next.
                let mut pair = Vec::with_capacity(len);
                pairs::encode_pair(&mut pair, name, value);
                let mut chunks = pair.chunks(MAX_CONTENT_LEN).peekable();
                while let Some(chunk) = chunks.next() {
                    if chunks.peek().is_some() {
                        record::encode_record(out, RecordType::Params, self.id, chunk);
                    } else {
                        open = Some(self.open_params(out));
                        out.extend_from_slice(chunk);
                    }
                }
                continue;
            }
            if open.is_none() {
                open = Some(self.open_params(out));
            }
            pairs::encode_pair(out, name, value);
        }
        if let Some(at) = open {
            self.close_params(out, at);
        }
        record::encode_record(out, RecordType::Params, self.id, &[]);
    }

    /// Appends the header of a PARAMS record whose length [`Exchange::close_params`] sets;
    /// returns where it starts.
    fn open_params(&self, out: &mut Vec<u8>) -> usize {
        let at = out.len();
        record::encode_record(out, RecordType::Params, self.id, &[]);
        at
    }

    /// Sets the length of the PARAMS record opened at `at` to what follows its header, and
    /// pads it.
    fn close_params(&self, out: &mut Vec<u8>, at: usize) {
        let content = out.len() - at - record::HEADER_LEN;
        let padding = (8 - content % 8) % 8;
        // `content <= MAX_CONTENT_LEN` (checked before each pair went in).
        let [hi, lo] = (content as u16).to_be_bytes();
        out[at + 4] = hi;
        out[at + 5] = lo;
        out[at + 6] = padding as u8;
        out.extend_from_slice(&[0u8; 8][..padding]);
    }

    /// Appends `data` as STDIN records (nothing for empty `data`).
    pub fn stdin(&self, out: &mut Vec<u8>, data: &[u8]) {
        record::encode_stream(out, RecordType::Stdin, self.id, data);
    }

    /// Appends the empty STDIN record that ends the body.
    pub fn end_stdin(&self, out: &mut Vec<u8>) {
        record::encode_record(out, RecordType::Stdin, self.id, &[]);
    }

    /// Appends ABORT_REQUEST (the web server's client went away).
    pub fn abort(&self, out: &mut Vec<u8>) {
        record::encode_record(out, RecordType::AbortRequest, self.id, &[]);
    }

    /// `true` once any STDOUT or STDERR byte came: from then on the backend has acted.
    pub fn output_seen(&self) -> bool {
        self.output_seen
    }

    /// `true` once END_REQUEST came.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Decodes one record from the front of `buf`: `Ok(None)` until a whole record is
    /// there, else the event and the bytes it used.
    pub fn next<'b>(&mut self, buf: &'b [u8]) -> Result<Option<(Reply<'b>, usize)>, ReplyError> {
        let Some((rec, used)) = record::parse_record(buf)? else {
            return Ok(None);
        };
        if rec.request_id == NULL_REQUEST_ID {
            let reply = match rec.record_type {
                RecordType::GetValuesResult => Reply::Values(rec.content),
                RecordType::UnknownType => Reply::Nothing,
                other => return Err(ReplyError::UnexpectedType(other.as_u8())),
            };
            return Ok(Some((reply, used)));
        }
        if rec.request_id != self.id {
            return Err(ReplyError::WrongRequestId(rec.request_id, self.id));
        }
        if self.ended {
            return Err(ReplyError::AfterEnd);
        }
        let reply = match rec.record_type {
            RecordType::Stdout if rec.content.is_empty() => {
                self.stdout_closed = true;
                Reply::Nothing
            }
            RecordType::Stdout if self.stdout_closed => return Err(ReplyError::AfterEnd),
            RecordType::Stdout => {
                self.output_seen = true;
                Reply::Stdout(rec.content)
            }
            RecordType::Stderr if rec.content.is_empty() => Reply::Nothing,
            RecordType::Stderr => {
                self.output_seen = true;
                Reply::Stderr(rec.content)
            }
            RecordType::EndRequest => {
                let (app_status, status) = record::parse_end_request(rec.content)?;
                self.ended = true;
                Reply::End { app_status, status }
            }
            other => return Err(ReplyError::UnexpectedType(other.as_u8())),
        };
        Ok(Some((reply, used)))
    }
}

/// Bytes of the length prefix of a name or value of `len` bytes (FastCGI 1.0, 3.4).
fn pair_len(len: usize) -> usize {
    if len <= 0x7f { 1 } else { 4 }
}

/// The names a client asks for in GET_VALUES.
pub const VALUE_NAMES: [&str; 3] = ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"];

/// Appends a GET_VALUES management record asking for [`VALUE_NAMES`].
pub fn get_values(out: &mut Vec<u8>) {
    let mut body = Vec::new();
    for name in VALUE_NAMES {
        pairs::encode_pair(&mut body, name.as_bytes(), b"");
    }
    record::encode_record(out, RecordType::GetValues, NULL_REQUEST_ID, &body);
}

/// What a backend answered to GET_VALUES (absent or unreadable values are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendValues {
    /// `FCGI_MAX_CONNS`.
    pub max_conns: Option<u32>,
    /// `FCGI_MAX_REQS`.
    pub max_reqs: Option<u32>,
    /// `FCGI_MPXS_CONNS` (`1` is true).
    pub mpxs_conns: Option<bool>,
    /// Every pair as sent, printable (lossy UTF-8), in order; at most 64.
    pub pairs: Vec<(String, String)>,
}

/// Decodes a GET_VALUES_RESULT body (bounded by the default pair limits and 64 pairs).
pub fn parse_values(content: &[u8]) -> Result<BackendValues, pairs::PairsError> {
    let limits = PairLimits {
        max_pairs: 64,
        ..PairLimits::default()
    };
    let mut v = BackendValues::default();
    for pair in pairs::iter_pairs(content, &limits) {
        let (n, val) = pair?;
        let (name, value) = (&content[n], &content[val]);
        let num = std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        match name {
            b"FCGI_MAX_CONNS" => v.max_conns = num,
            b"FCGI_MAX_REQS" => v.max_reqs = num,
            b"FCGI_MPXS_CONNS" => v.mpxs_conns = num.map(|n| n == 1),
            _ => {}
        }
        v.pairs.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Ok(v)
}

/// How far a request had gone when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection could not be made (refused, reset, no such socket): nothing was sent.
    Connect,
    /// The peer was gone before it took a byte of this request: its first write failed
    /// with EPIPE or ECONNRESET (a kept connection the backend had closed).
    NotSent,
    /// EPIPE or ECONNRESET after some of the request went out: the peer closed with bytes
    /// still unread, but it may have read (and acted on) the rest, e.g. all of it but the
    /// empty STDIN record.
    Dropped,
    /// The connection ended cleanly (EOF) before END_REQUEST.
    Eof,
    /// EOF before any reply while the backend still takes our bytes (a Unix socket it shut
    /// for writing only): it drains what it will never answer, as php-fpm does when it
    /// recycles a worker after the last reply on a kept connection.
    HalfClosed,
    /// END_REQUEST with this protocol status.
    Refused(ProtocolStatus),
    /// The backend sent bytes that are not FastCGI, or timed out, or anything else.
    Other,
}

/// What the retry rule knows about the failed try besides how it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TryFacts {
    /// Some reply byte (STDOUT or STDERR) had come.
    pub output_seen: bool,
    /// The connection had carried a request before (kept alive in a pool).
    pub reused: bool,
    /// The method is idempotent (RFC 9110 9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE).
    pub idempotent: bool,
}

/// Whether a failed request may be sent again (to any backend): exactly when the backend
/// cannot have acted on it. Never once a reply byte came. Otherwise: a connection that was
/// never made; a request none of which the peer took; OVERLOADED or CANT_MPX_CONN (refused,
/// not run); a backend that shut its side and drains our bytes unanswered. A reset after
/// part of the request went out, or a plain EOF, may follow a backend that read the
/// request and acted (then died): only an idempotent request is sent again after them (after
/// an EOF only on a reused connection, where it is mostly a kept connection closed as the
/// request arrived).
pub fn retry_safe(failure: Failure, facts: TryFacts) -> bool {
    if facts.output_seen {
        return false;
    }
    match failure {
        Failure::Connect | Failure::NotSent | Failure::HalfClosed => true,
        Failure::Dropped => facts.idempotent,
        Failure::Refused(s) => {
            matches!(s, ProtocolStatus::Overloaded | ProtocolStatus::CantMpxConn)
        }
        Failure::Eof => facts.reused && facts.idempotent,
        Failure::Other => false,
    }
}

/// Whether `method` is idempotent (RFC 9110 section 9.2.2).
pub fn is_idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
    )
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
