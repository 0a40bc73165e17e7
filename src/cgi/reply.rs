//! Parser of a CGI script's reply head (RFC 3875 section 6): pure, incremental and bounded.
//!
//! Feed the script's stdout to [`ReplyParser::feed`] as it arrives; it answers
//! [`Progress::NeedMore`] until the blank line that ends the head, then [`Progress::Head`]
//! with the parsed head and the body bytes that came in the same chunk. Call
//! [`ReplyParser::finish`] at end of output if no head came yet. Nothing is forwarded from a
//! reply that breaks a rule: the caller answers 502.
//!
//! Rules (the caller's answers are in the runner's documentation):
//! - Lines end with LF or CRLF; the head ends at the first empty line. A bare CR, NUL or any
//!   other control byte in a line, a line starting with whitespace (obsolete folding), a line
//!   without `:`, or a name that is not an RFC 9110 token is an error.
//! - The whole head, blank line included, may not exceed the parser's limit.
//! - `Status: NNN [reason]` with NNN in 200..=599 sets the status; a missing reason is filled
//!   from the standard phrase. `Status`, `Content-Type` and `Location` may appear only once.
//! - `Location` without `Status` is a redirect: `302 Found`, for absolute URLs (client
//!   redirect) and for local paths (`/path`, answered as a client redirect too, not followed
//!   inside the server).
//! - Without `Content-Type`, a reply is valid with `Location` (its body is discarded), with
//!   a 204/304 status, or with a `Status` and no body at all (RFC 3875 6.3: git-http-backend's
//!   404, 403 and 405 look like that); a body after such a head is an error, as is a reply
//!   with none of the three: a content type is never invented. A 204 or 304 never forwards
//!   a body; `Content-Length` is dropped where no body is forwarded (kept on a 304).
//! - `Content-Length` is one decimal number fitting 64 bits (`[0-9]+`): `+4`, `5G`, `1, 2`
//!   or two different values are errors; the same value twice is kept once.
//! - At most [`MAX_HEADER_LINES`] header lines.
//! - Everything else passes through as the script wrote it, value trimmed of spaces and tabs;
//!   the gateway's header validation (hop-by-hop headers and so on) comes after.

use std::fmt;

use crate::gateway::head::{self, is_field_value, is_token};
use crate::gateway::input::parse_content_length;

/// Default bound on a reply head, blank line included: 64 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// Most header lines a reply head may have: 100 (beyond, the reply is refused).
pub const MAX_HEADER_LINES: usize = 100;

/// What becomes of the script's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// It goes to the client (the head has a `Content-Type`).
    Forward,
    /// It is read and dropped: a redirect without `Content-Type`, a 204 or a 304.
    Discard,
    /// A `Status` without `Content-Type` (RFC 3875 6.3): valid only with no body at all;
    /// the first body byte makes the reply invalid.
    MustBeEmpty,
}

/// A parsed, consistent reply head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyHead {
    /// The status line for the client, e.g. `200 OK`.
    pub status: String,
    /// The headers other than `Status`, in the script's order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// What becomes of the script's body.
    pub body: BodyRule,
}

/// Why a reply head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The head is longer than the limit.
    TooLarge(usize),
    /// The output ended before the blank line (or was empty).
    Incomplete,
    /// A line has no `:`.
    NoColon,
    /// A line starts with a space or tab (obsolete line folding).
    Folded,
    /// A header name that is not a token.
    BadName(String),
    /// A header value holding a control byte (bare CR, NUL, ...).
    BadValue(String),
    /// `Status` is not `NNN [reason]` with NNN in 200..=599.
    BadStatus(String),
    /// `Status`, `Content-Type` or `Location` given twice, or two different
    /// `Content-Length` values.
    Duplicate(&'static str),
    /// A `Content-Length` that is not one decimal number fitting 64 bits.
    BadLength(String),
    /// More header lines than [`MAX_HEADER_LINES`].
    TooManyLines(usize),
    /// `Content-Type` or `Location` is empty.
    Empty(&'static str),
    /// No `Content-Type`, no `Location`, and a status that may carry a body.
    NoContentType,
    /// The parser was fed after it answered.
    Done,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::TooLarge(n) => write!(f, "reply head larger than {n} bytes"),
            ReplyError::Incomplete => f.write_str("output ended before the end of the reply head"),
            ReplyError::NoColon => f.write_str("reply header line without ':'"),
            ReplyError::Folded => f.write_str("folded reply header line"),
            ReplyError::BadName(n) => write!(f, "invalid reply header name {n:?}"),
            ReplyError::BadValue(n) => write!(f, "control byte in the value of reply header {n:?}"),
            ReplyError::BadStatus(s) => write!(f, "invalid Status {s:?}"),
            ReplyError::Duplicate(n) => write!(f, "{n} given more than once"),
            ReplyError::BadLength(v) => write!(f, "invalid Content-Length {v:?}"),
            ReplyError::TooManyLines(n) => write!(f, "more than {n} reply header lines"),
            ReplyError::Empty(n) => write!(f, "empty {n}"),
            ReplyError::NoContentType => f.write_str("reply without Content-Type or Location"),
            ReplyError::Done => f.write_str("parser fed after it answered"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// What a feed produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The head is not complete yet.
    NeedMore,
    /// The head is complete.
    Head {
        /// The parsed head.
        head: ReplyHead,
        /// Bytes after the blank line that came with this feed: the start of the body.
        body: Vec<u8>,
    },
    /// The reply is invalid; nothing of it may be forwarded.
    Error(ReplyError),
}

/// Incremental parser of one reply head.
#[derive(Debug)]
pub struct ReplyParser {
    buf: Vec<u8>,
    line_start: usize,
    max: usize,
    done: bool,
}

impl ReplyParser {
    /// A parser refusing heads longer than `max_header_bytes`.
    pub fn new(max_header_bytes: usize) -> Self {
        ReplyParser {
            buf: Vec::new(),
            line_start: 0,
            max: max_header_bytes,
            done: false,
        }
    }

    /// Feeds the next bytes of the script's output.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Progress {
        if self.done {
            return Progress::Error(ReplyError::Done);
        }
        if self.buf.is_empty()
            && let Some((blank, end)) = head_end(bytes).filter(|&(_, e)| e <= self.max)
        {
            // The whole head came in one piece (the usual case): parsed in place.
            self.done = true;
            return match parse_head(&bytes[..blank]) {
                Ok(head) => Progress::Head {
                    head,
                    body: bytes[end..].to_vec(),
                },
                Err(e) => Progress::Error(e),
            };
        }
        while !bytes.is_empty() {
            let (line, rest) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => bytes.split_at(i + 1),
                None => (bytes, &[][..]),
            };
            if self.buf.len() + line.len() > self.max {
                return self.fail(ReplyError::TooLarge(self.max));
            }
            self.buf.extend_from_slice(line);
            bytes = rest;
            if !self.buf.ends_with(b"\n") {
                break;
            }
            let this = &self.buf[self.line_start..];
            if this == b"\n" || this == b"\r\n" {
                self.done = true;
                let head = &self.buf[..self.line_start];
                return match parse_head(head) {
                    Ok(head) => Progress::Head {
                        head,
                        body: bytes.to_vec(),
                    },
                    Err(e) => Progress::Error(e),
                };
            }
            self.line_start = self.buf.len();
        }
        Progress::NeedMore
    }

    /// The output ended: answers an error unless the head was already complete.
    pub fn finish(&mut self) -> Progress {
        if self.done {
            return Progress::Error(ReplyError::Done);
        }
        self.fail(ReplyError::Incomplete)
    }

    fn fail(&mut self, e: ReplyError) -> Progress {
        self.done = true;
        self.buf = Vec::new();
        Progress::Error(e)
    }
}

/// Where the blank line that ends the head starts in `bytes` and where it ends, if the
/// head is all there; the same lines as the line-by-line loop of [`ReplyParser::feed`] finds.
fn head_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            let line = &bytes[line_start..=i];
            if line == b"\n" || line == b"\r\n" {
                return Some((line_start, i + 1));
            }
            line_start = i + 1;
        }
    }
    None
}

fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(b.get(..40).unwrap_or(b)).into_owned()
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// What the head said so far about the fields with rules of their own.
#[derive(Default)]
struct Seen {
    status: Option<String>,
    content_type: bool,
    location: bool,
    content_length: Option<Vec<u8>>,
}

/// Splits one head line into a checked name and trimmed value.
fn split_line(line: &[u8]) -> Result<(String, &[u8]), ReplyError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(ReplyError::Folded);
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(ReplyError::NoColon)?;
    let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
    if !is_token(name) {
        return Err(ReplyError::BadName(shown(name)));
    }
    // A token is ASCII: its bytes are UTF-8 as they are (no lossy conversion pass).
    let name = std::str::from_utf8(name).map_err(|_| ReplyError::BadName(shown(name)))?;
    let name = name.to_owned();
    if !is_field_value(value) {
        return Err(ReplyError::BadValue(name));
    }
    Ok((name, value))
}

impl Seen {
    /// Records a field with a rule of its own; `false` when the line is not kept as a header.
    fn note(&mut self, name: &str, value: &[u8]) -> Result<bool, ReplyError> {
        if name.eq_ignore_ascii_case("status") {
            if self.status.is_some() {
                return Err(ReplyError::Duplicate("Status"));
            }
            self.status = Some(parse_status(value)?);
            return Ok(false);
        }
        if name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || value.contains(&b',') {
                return Err(ReplyError::BadLength(shown(value)));
            }
            parse_content_length(Some(value)).map_err(|_| ReplyError::BadLength(shown(value)))?;
            return match &self.content_length {
                None => {
                    self.content_length = Some(value.to_vec());
                    Ok(true)
                }
                // The same value twice says one thing: it is kept once.
                Some(first) if first == value => Ok(false),
                Some(_) => Err(ReplyError::Duplicate("Content-Length")),
            };
        }
        for (seen, which) in [
            (&mut self.content_type, "Content-Type"),
            (&mut self.location, "Location"),
        ] {
            if name.eq_ignore_ascii_case(which) {
                if *seen {
                    return Err(ReplyError::Duplicate(which));
                }
                if value.is_empty() {
                    return Err(ReplyError::Empty(which));
                }
                *seen = true;
            }
        }
        Ok(true)
    }
}

/// Parses the head lines (without the blank line) and applies the consistency rules.
fn parse_head(head: &[u8]) -> Result<ReplyHead, ReplyError> {
    let mut seen = Seen::default();
    let mut headers = Vec::new();
    for (i, line) in head.split_inclusive(|&b| b == b'\n').enumerate() {
        if i >= MAX_HEADER_LINES {
            return Err(ReplyError::TooManyLines(MAX_HEADER_LINES));
        }
        let (name, value) = split_line(line)?;
        if seen.note(&name, value)? {
            headers.push((name, value.to_vec()));
        }
    }
    let code_status = seen.status.take();
    let given_status = code_status.is_some();
    let status = match code_status {
        Some(s) => s,
        None if seen.location => "302 Found".to_owned(),
        None => "200 OK".to_owned(),
    };
    let bodiless = status.starts_with("204") || status.starts_with("304");
    let body = if bodiless {
        BodyRule::Discard
    } else if seen.content_type {
        BodyRule::Forward
    } else if seen.location {
        BodyRule::Discard
    } else if given_status {
        BodyRule::MustBeEmpty
    } else {
        return Err(ReplyError::NoContentType);
    };
    let drop_length = !seen.content_type || status.starts_with("204");
    if drop_length {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
    }
    Ok(ReplyHead {
        status,
        headers,
        body,
    })
}

/// `code reason` (built without the formatting machinery: this is on every reply's path).
fn status_line(code: &str, reason: &str) -> String {
    let mut line = String::with_capacity(code.len() + 1 + reason.len());
    line.push_str(code);
    line.push(' ');
    line.push_str(reason);
    line
}

/// `NNN` or `NNN reason`, NNN in 200..=599; returns the status line, checked by the
/// gateway's status rule.
fn parse_status(value: &[u8]) -> Result<String, ReplyError> {
    let bad = || ReplyError::BadStatus(shown(value));
    let line = match value.get(3) {
        None if value.len() == 3 => {
            let code = std::str::from_utf8(value).map_err(|_| bad())?;
            let n: u16 = code.parse().map_err(|_| bad())?;
            status_line(code, standard_reason(n))
        }
        Some(b' ') => {
            let reason = trim(&value[4..]);
            let reason = std::str::from_utf8(reason).map_err(|_| bad())?;
            let code = std::str::from_utf8(&value[..3]).map_err(|_| bad())?;
            let n: u16 = code.parse().map_err(|_| bad())?;
            let reason = if reason.is_empty() {
                standard_reason(n)
            } else {
                reason
            };
            status_line(code, reason)
        }
        _ => return Err(bad()),
    };
    match head::parse_status(&line) {
        Ok(code) if (200..=599).contains(&code) => Ok(line),
        _ => Err(bad()),
    }
}

/// The standard reason phrase of a status code (empty for codes not listed).
pub fn standard_reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
