//! Holding place for the rest of a request body read ahead of the app: memory first, then an unnamed temporary file.
//!
//! nginx stops sending a request body once the response head has arrived, so the
//! responder reads whatever is left of the body into a [`Spool`] before the first response
//! bytes go out, and the app's later reads are served from it. Up to [`MEMORY_MAX`] bytes
//! stay in memory; beyond, they go to a file in the temporary directory that has no name
//! (`O_TMPFILE`, or a name removed at once) and disappears when the spool is dropped.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of a spooled body kept in memory (1 MiB); the rest goes to a temporary file.
pub const MEMORY_MAX: usize = 1024 * 1024;

/// Body bytes held in every spool of the process now: in memory, in temporary files.
static HELD: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Request-body bytes held ahead of apps now, in memory and in temporary files (for the
/// status endpoint).
pub fn held() -> (u64, u64) {
    (
        HELD[0].load(Ordering::Relaxed),
        HELD[1].load(Ordering::Relaxed),
    )
}

/// Spooled body bytes: written once, in order, then read once, in order.
#[derive(Debug, Default)]
pub struct Spool {
    mem: Vec<u8>,
    mem_read: usize,
    file: Option<File>,
    file_len: u64,
    file_read: u64,
}

fn temp_file(dir: &Path) -> io::Result<File> {
    let unnamed = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_TMPFILE.bits())
        .open(dir);
    if let Ok(f) = unnamed {
        return Ok(f);
    }
    static N: AtomicU64 = AtomicU64::new(0);
    let path = dir.join(format!(
        ".cgate-body-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}

impl Spool {
    /// Total bytes written.
    pub fn len(&self) -> u64 {
        self.mem.len() as u64 + self.file_len
    }

    /// Bytes written and not read yet.
    pub fn unread(&self) -> u64 {
        self.len() - self.mem_read as u64 - self.file_read
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `data`.
    pub fn push(&mut self, data: &[u8]) -> io::Result<()> {
        let room = MEMORY_MAX.saturating_sub(self.mem.len());
        let (now, rest) = data.split_at(room.min(data.len()));
        self.mem.extend_from_slice(now);
        if !now.is_empty() {
            HELD[0].fetch_add(now.len() as u64, Ordering::Relaxed);
        }
        if rest.is_empty() {
            return Ok(());
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(temp_file(&std::env::temp_dir())?),
        };
        file.seek(SeekFrom::Start(self.file_len))?;
        file.write_all(rest)?;
        self.file_len += rest.len() as u64;
        HELD[1].fetch_add(rest.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Reads the next bytes; 0 once everything written has been read.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.mem.get(self.mem_read..).filter(|l| !l.is_empty()) {
            let n = left.len().min(buf.len());
            buf[..n].copy_from_slice(&left[..n]);
            self.mem_read += n;
            return Ok(n);
        }
        let Some(file) = &mut self.file else {
            return Ok(0);
        };
        let left = self.file_len - self.file_read;
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        file.seek(SeekFrom::Start(self.file_read))?;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "spooled request body file is shorter than written",
            ));
        }
        self.file_read += n as u64;
        Ok(n)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if !self.mem.is_empty() {
            HELD[0].fetch_sub(self.mem.len() as u64, Ordering::Relaxed);
        }
        if self.file_len > 0 {
            HELD[1].fetch_sub(self.file_len, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_back_in_order_across_memory_and_file() {
        let data: Vec<u8> = (0..MEMORY_MAX + 300_000).map(|i| (i % 253) as u8).collect();
        let mut s = Spool::default();
        assert!(s.is_empty());
        for piece in data.chunks(70_001) {
            s.push(piece).unwrap();
        }
        assert_eq!(s.len(), data.len() as u64);
        assert!(s.file.is_some());
        let mut back = Vec::new();
        let mut buf = vec![0u8; 65_536];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
        }
        assert_eq!(back, data);
        assert_eq!(s.unread(), 0);
        assert_eq!(s.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn small_bodies_stay_in_memory() {
        let mut s = Spool::default();
        s.push(b"abc").unwrap();
        s.push(b"").unwrap();
        assert!(s.file.is_none());
        let mut buf = [0u8; 2];
        assert_eq!(s.unread(), 3);
        assert_eq!(s.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf, b"ab");
        assert_eq!(s.unread(), 1);
        assert_eq!(s.read(&mut buf).unwrap(), 1);
        assert_eq!(s.unread(), 0);
        assert_eq!(s.read(&mut buf).unwrap(), 0);
    }
}
