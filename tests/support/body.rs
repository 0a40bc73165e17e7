//! Incremental reader of one HTTP/1.1 response body: length, chunked and close-delimited framing, with arrival times.

use super::http::{Conn, Framing, bad, eof, timed_out};
use std::io::{self, BufRead};
use std::time::Instant;

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

impl<'a> BodyReader<'a> {
    /// A reader of a body framed as `framing`, starting at the connection's current position.
    pub fn new(conn: &'a mut Conn, framing: Framing) -> BodyReader<'a> {
        let state = match framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkStart,
            Framing::Close => State::Close,
        };
        BodyReader {
            conn,
            state,
            received: Vec::new(),
            arrivals: Vec::new(),
            trailers: Vec::new(),
        }
    }

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
