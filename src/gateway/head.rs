//! Status line and response header validation (the one boundary) and CGI-style serialization.

use std::fmt;

/// Hop-by-hop headers an application may not send (RFC 9110 7.6.1 and PEP 3333).
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

/// Why a status or a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
}

/// One validated response header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name, an RFC 9110 token, as the app spelled it.
    pub name: String,
    /// The value: any bytes but controls (HTAB allowed).
    pub value: Vec<u8>,
}

/// A validated status and header list, ready for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    code: u16,
    status: String,
    /// The headers in the order the app gave them.
    pub headers: Vec<Header>,
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

/// Checks a status line `NNN Reason`; returns the code.
pub fn parse_status(status: &str) -> Result<u16, HeadError> {
    let bad = || HeadError::Status(status.chars().take(80).collect());
    let b = status.as_bytes();
    if b.len() < 4 || b[3] != b' ' || !b[..3].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let code = u16::from(b[0] - b'0') * 100 + u16::from(b[1] - b'0') * 10 + u16::from(b[2] - b'0');
    if !(100..=599).contains(&code) || !is_field_value(&b[4..]) {
        return Err(bad());
    }
    Ok(code)
}

impl Head {
    /// Validates a status and headers. Nothing invalid is kept: an error means no header of
    /// this call may reach the wire.
    pub fn new<N, V>(
        status: &str,
        headers: impl IntoIterator<Item = (N, V)>,
    ) -> Result<Head, HeadError>
    where
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let code = parse_status(status)?;
        let mut out = Vec::new();
        for (n, v) in headers {
            let (n, v) = (n.as_ref(), v.as_ref());
            check_header(n, v)?;
            out.push(Header {
                name: n.to_owned(),
                value: v.to_owned(),
            });
        }
        Ok(Head {
            code,
            status: status.to_owned(),
            headers: out,
        })
    }

    /// The numeric status code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The whole status line, e.g. `200 OK`.
    pub fn status(&self) -> &str {
        &self.status
    }

    /// The first value of header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// Removes every header called `name` (case-insensitive).
    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    /// Appends a header after validating it.
    pub fn push(&mut self, name: &str, value: impl AsRef<[u8]>) -> Result<(), HeadError> {
        let value = value.as_ref();
        check_header(name, value)?;
        self.headers.push(Header {
            name: name.to_owned(),
            value: value.to_owned(),
        });
        Ok(())
    }

    /// The declared Content-Length, if there is exactly one well-formed value.
    pub fn content_length(&self) -> Option<u64> {
        let mut it = self
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("content-length"));
        let first = it.next()?;
        if it.next().is_some() {
            return None;
        }
        crate::gateway::input::parse_content_length(Some(&first.value))
            .ok()
            .flatten()
    }

    /// Appends the CGI response header block (`Status:` line, headers, blank line; CRLF).
    pub fn write_cgi(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"Status: ");
        out.extend_from_slice(self.status.as_bytes());
        out.extend_from_slice(b"\r\n");
        for h in &self.headers {
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&h.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn check_header(name: &str, value: &[u8]) -> Result<(), HeadError> {
    let shown = || name.chars().take(80).collect::<String>();
    if !is_token(name.as_bytes()) {
        return Err(HeadError::Name(shown()));
    }
    if name.eq_ignore_ascii_case("status") {
        return Err(HeadError::StatusHeader);
    }
    if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Err(HeadError::HopByHop(shown()));
    }
    if !is_field_value(value) {
        return Err(HeadError::Value(shown()));
    }
    Ok(())
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(parse_status("200 OK"), Ok(200));
        assert_eq!(parse_status("404 "), Ok(404));
        for bad in [
            "200", "20 OK", "2000 OK", "099 X", "600 X", "200\tOK", "200 O\rK", "abc OK",
        ] {
            assert!(parse_status(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_rules() {
        assert!(Head::new("200 OK", [("X-A", "a\tb \u{e9}")]).is_ok());
        let cases: [(&str, &str); 6] = [
            ("Bad Name", "v"),
            ("X", "a\r\nInjected: 1"),
            ("X", "nul\0"),
            ("Transfer-Encoding", "chunked"),
            ("connection", "close"),
            ("Status", "302 Found"),
        ];
        for (n, v) in cases {
            assert!(Head::new("200 OK", [(n, v)]).is_err(), "{n}: {v:?}");
        }
    }

    #[test]
    fn cgi_bytes() {
        let h = Head::new("201 Created", [("Content-Type", "text/plain"), ("X", "1")]).unwrap();
        let mut out = Vec::new();
        h.write_cgi(&mut out);
        assert_eq!(
            out,
            b"Status: 201 Created\r\nContent-Type: text/plain\r\nX: 1\r\n\r\n"
        );
    }
}
