//! A minimal blocking HTTP/1.1 client over `TcpStream` for tests: exact bytes, framing, streaming.

use super::TIMEOUT;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

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
}

impl Head {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// One client connection; several requests may be sent on it in turn (keep-alive).
pub struct Conn {
    reader: BufReader<TcpStream>,
    port: u16,
}

fn timed_out(e: io::Error) -> io::Error {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        io::Error::new(io::ErrorKind::TimedOut, format!("no data for {TIMEOUT:?}"))
    } else {
        e
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn eof(what: &str) -> io::Error {
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

    fn read_line(&mut self, what: &str) -> io::Result<String> {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .map_err(timed_out)?;
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
        String::from_utf8(line).map_err(|e| bad(format!("{what}: not UTF-8: {e}")))
    }

    fn read_fields(&mut self, what: &str) -> io::Result<Vec<(String, String)>> {
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
            return Ok(Head {
                status,
                reason,
                headers,
                framing,
            });
        }
    }

    /// A reader for the body that follows `head`.
    pub fn body(&mut self, head: &Head) -> BodyReader<'_> {
        let state = match head.framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkStart,
            Framing::Close => State::Close,
        };
        BodyReader {
            conn: self,
            state,
            received: Vec::new(),
            arrivals: Vec::new(),
            trailers: Vec::new(),
        }
    }

    /// Reads one whole response.
    pub fn read_response(&mut self, method: &str) -> io::Result<Response> {
        let head = self.read_head(method)?;
        let mut body = self.body(&head);
        body.read_to_end()?;
        let trailers = std::mem::take(&mut body.trailers);
        let body = std::mem::take(&mut body.received);
        Ok(Response {
            status: head.status,
            reason: head.reason,
            headers: head.headers,
            body,
            trailers,
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

    /// True when the server has closed the connection (waits at most `wait` for it).
    pub fn is_closed_by_peer(&mut self, wait: Duration) -> bool {
        let _ = self.reader.get_ref().set_read_timeout(Some(wait));
        let closed = matches!(self.reader.fill_buf(), Ok([]));
        let _ = self.reader.get_ref().set_read_timeout(Some(TIMEOUT));
        closed
    }
}

enum State {
    Length(u64),
    ChunkStart,
    ChunkData(u64),
    Close,
    Done,
}

/// When a piece of body arrived: `len` bytes at `offset` of the decoded body.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// When the read returned.
    pub at: Instant,
    /// Offset in the decoded body.
    pub offset: usize,
    /// Number of bytes.
    pub len: usize,
}

/// Incremental reader of one response body; keeps everything decoded so far.
pub struct BodyReader<'a> {
    conn: &'a mut Conn,
    state: State,
    received: Vec<u8>,
    arrivals: Vec<Arrival>,
    trailers: Vec<(String, String)>,
}

impl BodyReader<'_> {
    /// Blocks until some body bytes arrive and returns them (at most what one socket read
    /// brought); `None` at the end of the body. A connection closed before the framing says
    /// the body ends is an `UnexpectedEof` error.
    pub fn read_some(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::ChunkStart => {
                    let line = self.conn.read_line("before a chunk size")?;
                    let size = line.split(';').next().unwrap_or("").trim();
                    let n = u64::from_str_radix(size, 16)
                        .map_err(|_| bad(format!("bad chunk size line {line:?}")))?;
                    if n == 0 {
                        self.trailers = self.conn.read_fields("in the trailer")?;
                        self.state = State::Done;
                    } else {
                        self.state = State::ChunkData(n);
                    }
                }
                State::Length(rest) | State::ChunkData(rest) => {
                    let piece = self.take(rest, "inside the body")?;
                    let left = rest - piece.len() as u64;
                    let by_length = matches!(self.state, State::Length(_));
                    self.state = match (by_length, left) {
                        (true, 0) => State::Done,
                        (true, _) => State::Length(left),
                        (false, 0) => {
                            let crlf = self.conn.read_line("after chunk data")?;
                            if !crlf.is_empty() {
                                return Err(bad(format!("chunk data overran: {crlf:?}")));
                            }
                            State::ChunkStart
                        }
                        (false, _) => State::ChunkData(left),
                    };
                    return Ok(Some(self.record(piece)));
                }
                State::Close => {
                    let buf = self.conn.reader.fill_buf().map_err(timed_out)?;
                    if buf.is_empty() {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    let piece = buf.to_vec();
                    self.conn.reader.consume(piece.len());
                    return Ok(Some(self.record(piece)));
                }
            }
        }
    }

    fn take(&mut self, max: u64, what: &str) -> io::Result<Vec<u8>> {
        let buf = self.conn.reader.fill_buf().map_err(timed_out)?;
        if buf.is_empty() {
            return Err(eof(what));
        }
        let n = buf.len().min(usize::try_from(max).unwrap_or(usize::MAX));
        let piece = buf[..n].to_vec();
        self.conn.reader.consume(n);
        Ok(piece)
    }

    fn record(&mut self, piece: Vec<u8>) -> Vec<u8> {
        self.arrivals.push(Arrival {
            at: Instant::now(),
            offset: self.received.len(),
            len: piece.len(),
        });
        self.received.extend_from_slice(&piece);
        piece
    }

    /// Reads until the body received so far contains `needle`; returns all of it. Fails if
    /// the body ends first.
    pub fn read_until(&mut self, needle: &[u8]) -> io::Result<Vec<u8>> {
        while !contains(&self.received, needle) {
            if self.read_some()?.is_none() {
                return Err(eof(&format!(
                    "before {:?} arrived",
                    String::from_utf8_lossy(needle)
                )));
            }
        }
        Ok(self.received.clone())
    }

    /// Reads until at least `n` body bytes have arrived in total; returns all of them. Fails if
    /// the body ends first.
    pub fn read_at_least(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.received.len() < n {
            if self.read_some()?.is_none() {
                return Err(eof(&format!("after {} of {n} bytes", self.received.len())));
            }
        }
        Ok(self.received.clone())
    }

    /// Reads to the end of the body and returns the whole body.
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        while self.read_some()?.is_some() {}
        Ok(self.received.clone())
    }

    /// Everything decoded so far (also after an error, e.g. a truncated body).
    pub fn received(&self) -> &[u8] {
        &self.received
    }

    /// The pieces in arrival order.
    pub fn arrivals(&self) -> &[Arrival] {
        &self.arrivals
    }

    /// Trailer fields (after a chunked body has been read to its end).
    pub fn trailers(&self) -> &[(String, String)] {
        &self.trailers
    }

    /// True once the whole body has been read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

/// True if `needle` occurs in `hay` (an empty needle always does).
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}
