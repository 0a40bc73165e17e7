//! The request an app receives, and wsgiref.util's helpers: query and form pairs, headers, paths, URLs, capped body reads.

use std::io::{Read, Write};

use super::environ::Environ;
use super::error::AppError;
use super::input::Input;
use super::status::Status;

/// One request as an app sees it.
pub struct Request<'r> {
    /// CGI meta-variables and gateway facts.
    pub environ: Environ,
    /// The request body, ending at CONTENT_LENGTH.
    pub input: Input<'r>,
    /// The error stream (stderr for CGI, FCGI_STDERR for FastCGI): for log lines.
    pub errors: &'r mut dyn Write,
    cleanups: Vec<Box<dyn FnOnce() + 'r>>,
}

impl<'r> Request<'r> {
    /// A request from its parts.
    pub fn new(environ: Environ, input: Input<'r>, errors: &'r mut dyn Write) -> Self {
        Request {
            environ,
            input,
            errors,
            cleanups: Vec::new(),
        }
    }

    /// Registers cleanup that runs when the request ends, whatever happens: normal end,
    /// app error, panic or client abort (PEP 3333's `close()`). Runs in reverse order.
    pub fn on_close(&mut self, f: impl FnOnce() + 'r) {
        self.cleanups.push(Box::new(f));
    }

    /// Writes one line to the error stream, ignoring failures.
    pub fn log(&mut self, line: &str) {
        let _ = writeln!(self.errors, "{line}");
    }

    /// Whether cleanup functions are registered (they must run after the whole body).
    pub(crate) fn has_cleanups(&self) -> bool {
        !self.cleanups.is_empty()
    }

    pub(crate) fn run_cleanups(&mut self) {
        while let Some(f) = self.cleanups.pop() {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
                let _ = writeln!(self.errors, "cgate: a cleanup function panicked");
            }
        }
    }
}

impl Request<'_> {
    /// A request header by its HTTP name (`"Accept-Encoding"`, any case): the environ's
    /// `HTTP_ACCEPT_ENCODING`, or `CONTENT_TYPE` / `CONTENT_LENGTH` for those two.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        let mut key = Vec::with_capacity(name.len() + 5);
        if !name.eq_ignore_ascii_case("content-type")
            && !name.eq_ignore_ascii_case("content-length")
        {
            key.extend_from_slice(b"HTTP_");
        }
        key.extend(name.bytes().map(|b| match b {
            b'-' => b'_',
            b => b.to_ascii_uppercase(),
        }));
        self.environ.get(key)
    }

    /// [`Request::header`] as text, when it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The decoded `QUERY_STRING` pairs.
    pub fn query(&self) -> Form {
        Form::parse(self.environ.get("QUERY_STRING").unwrap_or_default())
    }

    /// Reads the whole body, refusing one over `limit` bytes with a 413 (before reading, when
    /// CONTENT_LENGTH already says so). Memory grows with what arrives, never with what the
    /// client declared.
    pub fn read_body(&mut self, limit: u64) -> Result<Vec<u8>, AppError> {
        if self.input.content_length().is_some_and(|n| n > limit) {
            return Err(AppError::payload_too_large(limit));
        }
        let first = self
            .input
            .content_length()
            .unwrap_or(0)
            .min(limit)
            .min(64 * 1024);
        let mut out = Vec::with_capacity(first as usize);
        let got = (&mut self.input)
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| AppError::new(Status::BAD_REQUEST, e))?;
        if got as u64 > limit {
            return Err(AppError::payload_too_large(limit));
        }
        Ok(out)
    }

    /// Reads an `application/x-www-form-urlencoded` body (at most `limit` bytes) as pairs; a
    /// body of another type is a 415.
    pub fn read_form(&mut self, limit: u64) -> Result<Form, AppError> {
        let ct = self.environ.get("CONTENT_TYPE").unwrap_or_default();
        let essence = ct
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if !essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
            let e = "expected an application/x-www-form-urlencoded body";
            return Err(AppError::new(Status::UNSUPPORTED_MEDIA_TYPE, e));
        }
        Ok(Form::parse(&self.read_body(limit)?))
    }

    /// Moves the next segment of PATH_INFO to SCRIPT_NAME and returns it (wsgiref's
    /// `shift_path_info`): `/app` + `/users/7` becomes `/app/users` + `/7`, returning `users`.
    /// Empty and `.` segments are skipped; `None` (nothing changed) when no segment is left.
    pub fn shift_path_info(&mut self) -> Option<Vec<u8>> {
        let path = self.environ.path_info().to_vec();
        let mut rest = &path[..];
        let name = loop {
            rest = rest.strip_prefix(b"/").unwrap_or(rest);
            let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
            let (seg, tail) = rest.split_at(end);
            if seg.is_empty() && tail.is_empty() {
                return None;
            }
            rest = tail;
            if !seg.is_empty() && seg != b"." {
                break seg;
            }
        };
        let mut script = self.environ.script_name().to_vec();
        script.push(b'/');
        script.extend_from_slice(name);
        self.environ.set("SCRIPT_NAME", script);
        self.environ.set("PATH_INFO", rest);
        Some(name.to_vec())
    }

    /// The path and query the client asked for: `REQUEST_URI` when the gateway gave it, else
    /// rebuilt from SCRIPT_NAME, PATH_INFO (percent-quoted) and QUERY_STRING.
    pub fn request_uri(&self) -> String {
        if let Some(uri) = self
            .environ
            .get_str("REQUEST_URI")
            .filter(|u| !u.is_empty())
        {
            return uri.to_owned();
        }
        let mut out = String::new();
        quote_path(self.environ.script_name(), &mut out);
        quote_path(self.environ.path_info(), &mut out);
        push_query(&self.environ, &mut out);
        out
    }

    /// The full URL rebuilt as PEP 3333 describes: scheme, `HTTP_HOST` (or SERVER_NAME and a
    /// non-default SERVER_PORT), the quoted SCRIPT_NAME and PATH_INFO, and the query.
    pub fn url(&self) -> String {
        let env = &self.environ;
        let scheme = env.gateway.url_scheme();
        let mut out = format!("{scheme}://");
        match env.get_str("HTTP_HOST").filter(|h| !h.is_empty()) {
            Some(host) => out.push_str(host),
            None => {
                out.push_str(env.get_str("SERVER_NAME").unwrap_or("localhost"));
                let port = env.get_str("SERVER_PORT").unwrap_or("");
                let default = if env.gateway.https { "443" } else { "80" };
                if !port.is_empty() && port != default {
                    out.push(':');
                    out.push_str(port);
                }
            }
        }
        quote_path(env.script_name(), &mut out);
        quote_path(env.path_info(), &mut out);
        push_query(env, &mut out);
        out
    }
}

fn push_query(env: &Environ, out: &mut String) {
    if let Some(q) = env.get("QUERY_STRING").filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(&String::from_utf8_lossy(q));
    }
}

/// Appends `path` percent-quoted: unreserved bytes, `/` and sub-delims kept, others `%XX`.
fn quote_path(path: &[u8], out: &mut String) {
    for &b in path {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Decodes `+` to a space and `%XX` to its byte (any byte, NUL included); a `%` not followed
/// by two hex digits stays as it is.
pub fn form_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                s.get(i + 1).and_then(|&b| hex(b)),
                s.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Decoded `name=value` pairs of a query string or an urlencoded form, in order, as bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Form {
    /// Parses `a=1&b=x+y&c=%00`: pairs split on `&`, names and values decoded by
    /// [`form_decode`]; empty pieces skipped, a piece without `=` has an empty value.
    pub fn parse(s: &[u8]) -> Form {
        let pairs = s
            .split(|&b| b == b'&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let eq = p.iter().position(|&b| b == b'=').unwrap_or(p.len());
                let value = p.get(eq + 1..).unwrap_or_default();
                (form_decode(&p[..eq]), form_decode(value))
            })
            .collect();
        Form { pairs }
    }

    /// The first value of `name`, as bytes.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `name`, when it is valid UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'f>(&'f self, name: &'f str) -> impl Iterator<Item = &'f [u8]> + 'f {
        self.iter()
            .filter(move |(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// All pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// `true` when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
