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
//! - Without `Content-Type`, a reply is valid only with `Location` or a 204/304 status; its
//!   body is then discarded and any `Content-Length` dropped. Otherwise it is an error: a
//!   content type is never invented.
//! - Everything else passes through as the script wrote it, value trimmed of spaces and tabs;
//!   the gateway's header validation (hop-by-hop headers and so on) comes after.

use std::fmt;

/// Default bound on a reply head, blank line included: 64 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// A parsed, consistent reply head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyHead {
    /// The status line for the client, e.g. `200 OK`.
    pub status: String,
    /// The headers other than `Status`, in the script's order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Whether the script's body goes to the client. `false` for replies without a
    /// `Content-Type` (redirects, 204, 304): their body is read and discarded.
    pub forward_body: bool,
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
    /// `Status`, `Content-Type` or `Location` given twice.
    Duplicate(&'static str),
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

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
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

/// Parses the head lines (without the blank line) and applies the consistency rules.
fn parse_head(head: &[u8]) -> Result<ReplyHead, ReplyError> {
    let mut status: Option<String> = None;
    let mut has_type = false;
    let mut has_location = false;
    let mut headers = Vec::new();
    for line in head.split_inclusive(|&b| b == b'\n') {
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
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(ReplyError::BadName(shown(name)));
        }
        let name = String::from_utf8_lossy(name).into_owned();
        if !value
            .iter()
            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
        {
            return Err(ReplyError::BadValue(name));
        }
        if name.eq_ignore_ascii_case("status") {
            if status.is_some() {
                return Err(ReplyError::Duplicate("Status"));
            }
            status = Some(parse_status(value)?);
            continue;
        }
        for (seen, which) in [
            (&mut has_type, "Content-Type"),
            (&mut has_location, "Location"),
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
        headers.push((name, value.to_vec()));
    }
    let status = match status {
        Some(s) => s,
        None if has_location => "302 Found".to_owned(),
        None => "200 OK".to_owned(),
    };
    let bodiless = status.starts_with("204") || status.starts_with("304");
    if !has_type {
        if !has_location && !bodiless {
            return Err(ReplyError::NoContentType);
        }
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
    }
    Ok(ReplyHead {
        status,
        headers,
        forward_body: has_type,
    })
}

/// `NNN` or `NNN reason`, NNN in 200..=599; returns the status line.
fn parse_status(value: &[u8]) -> Result<String, ReplyError> {
    let bad = || ReplyError::BadStatus(shown(value));
    let (code, reason) = match value.get(3) {
        None => (value, &[][..]),
        Some(b' ') => (&value[..3], trim(&value[4..])),
        Some(_) => return Err(bad()),
    };
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let code_str = std::str::from_utf8(code).map_err(|_| bad())?;
    let n: u16 = code_str.parse().map_err(|_| bad())?;
    if !(200..=599).contains(&n) {
        return Err(bad());
    }
    let reason = if reason.is_empty() {
        standard_reason(n).to_owned()
    } else {
        String::from_utf8(reason.to_vec()).map_err(|_| bad())?
    };
    Ok(format!("{code_str} {reason}"))
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
