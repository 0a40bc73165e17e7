//! Ready-made sinks: CGI-style output to any writer, and an in-memory sink for tests.

use std::io::{self, Write};

use super::head::Head;
use super::response::Sink;

/// Sends a small complete plain-text response straight to a sink: for answers the gateway
/// gives itself (a 400 before any app runs, the 500 that replaces a failed app's head).
pub fn send_plain(sink: &mut dyn Sink, status: &str, body: &str) -> io::Result<()> {
    let len = body.len().to_string();
    let head = Head::new(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", len.as_str()),
        ],
    )
    .map_err(io::Error::other)?;
    sink.send_head(&head)?;
    sink.send_body(body.as_bytes())?;
    sink.finish()
}

/// Writes the CGI response format (`Status:` block, blank line, body) to a writer: stdout for
/// the CGI gateway and for `cgate request`. Small responses leave in one write.
pub struct CgiSink<W: Write> {
    out: W,
    buf: Vec<u8>,
    /// Set when the response was cut by an error after the first byte.
    pub aborted: bool,
}

impl<W: Write> CgiSink<W> {
    /// A sink over `out`.
    pub fn new(out: W) -> Self {
        CgiSink {
            out,
            buf: Vec::with_capacity(1024),
            aborted: false,
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn drain(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let r = self.out.write_all(&self.buf);
            self.buf.clear();
            r?;
        }
        self.out.flush()
    }
}

impl<W: Write> Sink for CgiSink<W> {
    fn send_head(&mut self, head: &Head) -> io::Result<()> {
        head.write_cgi(&mut self.buf);
        Ok(())
    }

    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.buf.len() + chunk.len() > 64 * 1024 {
            self.drain()?;
            return self.out.write_all(chunk);
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.drain()
    }

    fn abort(&mut self) {
        let _ = self.drain();
        self.aborted = true;
    }
}

/// Records a response in memory: the head, each flushed chunk separately, and how it ended.
#[derive(Debug, Default)]
pub struct MemorySink {
    /// The head that was sent.
    pub head: Option<Head>,
    /// Body bytes in the order sent.
    pub body: Vec<u8>,
    /// The body as the client would have seen it arrive: one entry per flush.
    pub flushes: Vec<Vec<u8>>,
    pending: Vec<u8>,
    /// `finish` was called.
    pub finished: bool,
    /// `abort` was called.
    pub aborted: bool,
}

impl Sink for MemorySink {
    fn send_head(&mut self, head: &Head) -> io::Result<()> {
        self.head = Some(head.clone());
        Ok(())
    }

    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.body.extend_from_slice(chunk);
        self.pending.extend_from_slice(chunk);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.flushes.push(std::mem::take(&mut self.pending));
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.flush()?;
        self.finished = true;
        Ok(())
    }

    fn abort(&mut self) {
        self.aborted = true;
    }
}
