//! A minimal blocking HTTP/1.1 client over `TcpStream` for tests: exact bytes, framing, streaming.

use super::TIMEOUT;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

pub use super::body::{Arrival, BodyReader, contains};

/// Longest status, header, chunk-size or trailer line accepted.
const MAX_LINE: usize = 64 * 1024;

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: String,
    /// Header fields in wire order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Decoded body (chunked framing removed).
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// The response head exactly as received (see [`Head::raw`]).
    pub raw_head: Vec<u8>,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// All values of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as UTF-8; panics (failing the test) if it is not.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body)
            .unwrap_or_else(|e| panic!("body is not UTF-8 ({e}): {:?}", self.body))
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One request on a fresh connection (`Connection: close` is added unless given); panics on
/// any I/O or framing error. `Host` is added unless given; `Content-Length` is added when
/// `body` is not empty or the method is POST/PUT/PATCH, unless a framing header is given.
pub fn request(
    method: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(method, port, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} 127.0.0.1:{port}{path}: {e}"))
}

/// Like [`request`] but returns I/O and framing errors (e.g. a truncated body).
pub fn try_request(
    method: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut conn = Conn::open(port)?;
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if find(headers, "connection").is_none() {
        all.push(("Connection", "close"));
    }
    conn.send_request(method, path, &all, body)?;
    conn.read_response(method)
}

/// `GET path` with no extra headers.
pub fn get(port: u16, path: &str) -> Response {
    request("GET", port, path, &[], b"")
}

fn find<'a>(headers: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Chunked transfer coding of `pieces` (empty pieces are skipped), with the last chunk.
pub fn chunked(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces.iter().filter(|p| !p.is_empty()) {
        out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// How the body of a response is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// Status line and header fields of a response.
#[derive(Debug, Clone)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header fields in wire order.
    pub headers: Vec<(String, String)>,
    /// How the body is delimited.
    pub framing: Framing,
    /// The head exactly as received (including any skipped 1xx heads), for byte-level checks;
    /// `reason` and `headers` are lossy UTF-8 views of it.
    pub raw: Vec<u8>,
}

impl Head {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// One client connection; several requests may be sent on it in turn (keep-alive).
pub struct Conn {
    pub(crate) reader: BufReader<TcpStream>,
    raw_head: Vec<u8>,
    port: u16,
}

pub(crate) fn timed_out(e: io::Error) -> io::Error {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        io::Error::new(io::ErrorKind::TimedOut, format!("no data for {TIMEOUT:?}"))
    } else {
        e
    }
}

pub(crate) fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

pub(crate) fn eof(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("connection closed {what}"),
    )
}

impl Conn {
    /// Connects to 127.0.0.1:`port` with [`TIMEOUT`] on every read and write.
    pub fn open(port: u16) -> io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream),
            raw_head: Vec::new(),
            port,
        })
    }

    /// The socket (e.g. to change its read timeout).
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Writes request head and body; adds `Host` and `Content-Length` as [`request`] does.
    pub fn send_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        if find(headers, "host").is_none() {
            head.push_str(&format!("Host: 127.0.0.1:{}\r\n", self.port));
        }
        let framed = find(headers, "content-length").is_some()
            || find(headers, "transfer-encoding").is_some();
        if !framed && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.write_raw(&bytes)
    }

    /// Writes bytes as they are (malformed requests, slow or chunked uploads).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let s = self.reader.get_mut();
        s.write_all(bytes).map_err(timed_out)?;
        s.flush()
    }

    /// Half-closes the sending side.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        self.reader.get_ref().shutdown(Shutdown::Write)
    }

    pub(crate) fn read_line(&mut self, what: &str) -> io::Result<String> {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .map_err(timed_out)?;
        self.raw_head.extend_from_slice(&line);
        if n == 0 {
            return Err(eof(what));
        }
        if line.last() != Some(&b'\n') {
            return Err(bad(format!("{what}: line too long or cut")));
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    pub(crate) fn read_fields(&mut self, what: &str) -> io::Result<Vec<(String, String)>> {
        let mut fields = Vec::new();
        loop {
            let line = self.read_line(what)?;
            if line.is_empty() {
                return Ok(fields);
            }
            let (n, v) = line
                .split_once(':')
                .ok_or_else(|| bad(format!("{what}: no colon in {line:?}")))?;
            fields.push((n.to_string(), v.trim_matches([' ', '\t']).to_string()));
        }
    }

    /// Reads the status line and headers of the next final response (1xx other than 101 are
    /// skipped). `method` decides whether a body follows.
    pub fn read_head(&mut self, method: &str) -> io::Result<Head> {
        self.raw_head.clear();
        loop {
            let line = self.read_line("before the status line")?;
            let mut parts = line.splitn(3, ' ');
            let version = parts.next().unwrap_or("");
            if !version.starts_with("HTTP/1.") {
                return Err(bad(format!("bad status line {line:?}")));
            }
            let status: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(format!("bad status in {line:?}")))?;
            let reason = parts.next().unwrap_or("").to_string();
            let headers = self.read_fields("in the header")?;
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let te = find_header(&headers, "transfer-encoding");
            let framing = if method == "HEAD" || status < 200 || status == 204 || status == 304 {
                Framing::None
            } else if te.is_some_and(|v| v.to_ascii_lowercase().trim_end().ends_with("chunked")) {
                Framing::Chunked
            } else if let Some(cl) = find_header(&headers, "content-length") {
                Framing::Length(
                    cl.parse()
                        .map_err(|_| bad(format!("bad Content-Length {cl:?}")))?,
                )
            } else {
                Framing::Close
            };
            let raw = std::mem::take(&mut self.raw_head);
            return Ok(Head {
                status,
                reason,
                headers,
                framing,
                raw,
            });
        }
    }

    /// A reader for the body that follows `head`.
    pub fn body(&mut self, head: &Head) -> BodyReader<'_> {
        BodyReader::new(self, head.framing)
    }

    /// Reads one whole response.
    pub fn read_response(&mut self, method: &str) -> io::Result<Response> {
        let head = self.read_head(method)?;
        let mut reader = self.body(&head);
        let body = reader.read_to_end()?;
        let trailers = reader.trailers().to_vec();
        Ok(Response {
            status: head.status,
            reason: head.reason,
            headers: head.headers,
            body,
            trailers,
            raw_head: head.raw,
        })
    }

    /// Sends a request and reads its response on this (kept-alive) connection; panics on error.
    pub fn roundtrip(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.send_request(method, path, headers, body)
            .and_then(|()| self.read_response(method))
            .unwrap_or_else(|e| panic!("{method} 127.0.0.1:{}{path}: {e}", self.port))
    }

    /// True when the server has closed the connection (waits at most `wait` for it): an end
    /// of stream, or a reset (a connection still in the listen queue when the server stops
    /// listening is reset by the kernel).
    pub fn is_closed_by_peer(&mut self, wait: Duration) -> bool {
        let _ = self.reader.get_ref().set_read_timeout(Some(wait));
        let closed = match self.reader.fill_buf() {
            Ok(rest) => rest.is_empty(),
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        };
        let _ = self.reader.get_ref().set_read_timeout(Some(TIMEOUT));
        closed
    }
}
