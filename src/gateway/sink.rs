//! The Sink trait (a transport's side of a response) and ready-made sinks: CGI-style output to any writer, and an in-memory sink for tests.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use super::error::AppError;
use super::head::Head;

/// A transport's side of a response (stdout for CGI, STDOUT records for FastCGI).
///
/// The [`Response`](super::Response) calls these in order: `send_head` once, `send_body` for each chunk,
/// `flush` where a chunk must reach the client now, and `finish` or `abort` once at the end.
pub trait Sink {
    /// Queues the validated status and headers.
    fn send_head(&mut self, head: &Head) -> io::Result<()>;
    /// Queues body bytes.
    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// Passes everything queued on to the client now.
    fn flush(&mut self) -> io::Result<()>;
    /// Ends the response normally (and flushes).
    fn finish(&mut self) -> io::Result<()>;
    /// Cuts the response so the client sees it truncated (an error after the first byte).
    fn abort(&mut self);
    /// A cheap check whether the client is known to be gone (aborted request, closed socket).
    fn client_gone(&mut self) -> bool {
        false
    }
    /// A descriptor that turns readable when the client may have gone (FastCGI: its socket,
    /// where an ABORT_REQUEST or EOF arrives). An app that waits on other descriptors (a CGI
    /// script's pipes) polls it too and calls `client_gone` when it is readable; `None` when
    /// the transport has no such descriptor or nothing to watch right now.
    fn watch_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
    /// Queues `len` bytes of `file` from its current offset (PEP 3333's `wsgi.file_wrapper`).
    /// The default reads the file in blocks; a transport on a plain descriptor may use
    /// sendfile.
    fn send_file(&mut self, file: &mut File, len: u64) -> io::Result<()> {
        copy_file(file, len, &mut |chunk| self.send_body(chunk))
    }
}

/// Reads `len` bytes of `file` in 64 KiB blocks into `out`; a file shorter than `len` is an
/// `UnexpectedEof` error.
pub(crate) fn copy_file(
    file: &mut File,
    len: u64,
    out: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = vec![0u8; len.min(64 * 1024) as usize];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
        }
        out(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

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

/// Sends the answer for an app error: its status, its extra headers (invalid ones dropped)
/// and `body` as plain text.
pub(crate) fn send_error(sink: &mut dyn Sink, error: &AppError, body: &str) -> io::Result<()> {
    let mut head = Head::new(
        error.status(),
        (
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", body.len()),
        ),
    )
    .map_err(io::Error::other)?;
    for (n, v) in error.headers() {
        let _ = head.push(n, v);
    }
    sink.send_head(&head)?;
    sink.send_body(body.as_bytes())?;
    sink.finish()
}

/// Writes the CGI response format (`Status:` block, blank line, body) to a writer: stdout for
/// the CGI gateway and for `cgate request`. Small responses leave in one write.
pub struct CgiSink<W: Write> {
    out: W,
    buf: Vec<u8>,
    /// The same output as a descriptor for sendfile (CGI stdout), if it is one.
    raw: Option<OwnedFd>,
    /// Set when the response was cut by an error after the first byte.
    pub aborted: bool,
}

impl<W: Write> CgiSink<W> {
    /// A sink over `out`.
    pub fn new(out: W) -> Self {
        CgiSink {
            out,
            buf: Vec::with_capacity(1024),
            raw: None,
            aborted: false,
        }
    }

    /// Lets file bodies go out with sendfile on `fd`, which must be the descriptor `out`
    /// writes to.
    pub fn with_sendfile(mut self, fd: OwnedFd) -> Self {
        self.raw = Some(fd);
        self
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

    fn send_file(&mut self, file: &mut File, len: u64) -> io::Result<()> {
        self.drain()?;
        let mut left = len;
        if let Some(fd) = &self.raw {
            left -= send_file(fd, file, len)?;
        }
        copy_file(file, left, &mut |chunk| self.out.write_all(chunk))
    }
}

/// Sends up to `len` bytes of `file` from its offset to `out` with sendfile(2), advancing the
/// offset; returns how many went. Stops early (for the caller's read fallback) where the
/// kernel refuses this pair of descriptors; a file that ends early is an error.
fn send_file(out: &OwnedFd, file: &File, len: u64) -> io::Result<u64> {
    use nix::errno::Errno;
    let mut sent = 0u64;
    while sent < len {
        let want = usize::try_from(len - sent)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        match nix::sys::sendfile::sendfile(out, file, None, want) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank")),
            Ok(n) => sent += n as u64,
            Err(Errno::EINTR) => {}
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EAGAIN) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sent)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    /// A writer that refuses every write: bytes that still arrive went by sendfile.
    struct Refuse;
    impl Write for Refuse {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("write refused"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn file_with(data: &[u8]) -> File {
        let path = std::env::temp_dir().join(format!("cgate-sendfile-{}", std::process::id()));
        let mut f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        f.write_all(data).unwrap();
        f.seek(SeekFrom::Start(3)).unwrap();
        f
    }

    #[test]
    fn file_bodies_use_sendfile_on_a_descriptor() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = file_with(&data);
        let (rx, tx) = nix::unistd::pipe().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            File::from(rx).read_to_end(&mut got).unwrap();
            got
        });
        let mut sink = CgiSink::new(Refuse).with_sendfile(tx);
        sink.send_file(&mut file, 100_000).unwrap();
        drop(sink);
        assert!(reader.join().unwrap() == data[3..100_003]);
    }

    #[test]
    fn file_bodies_fall_back_to_reads() {
        let mut file = file_with(b"abcdefgh");
        let mut sink = MemorySink::default();
        sink.send_file(&mut file, 4).unwrap();
        assert_eq!(sink.body, b"defg");
        let err = CgiSink::new(Vec::new())
            .send_file(&mut file, 10)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
