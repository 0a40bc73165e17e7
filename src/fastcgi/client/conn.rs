//! A connection to a FastCGI backend: its address forms, connect with a timeout, and
//! non-blocking reads and writes bounded by `poll`.

use std::fmt;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::PollFlags;

/// Where a backend listens: `unix:/path`, `/path`, `host:port` (`:port` is loopback).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackendAddr {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP `host:port`, resolved at each connect.
    Tcp(String),
}

/// An address that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid backend address {0:?} (expected unix:/path, /path or host:port)")]
pub struct BackendAddrError(pub String);

impl std::str::FromStr for BackendAddr {
    type Err = BackendAddrError;

    fn from_str(s: &str) -> Result<Self, BackendAddrError> {
        let err = || BackendAddrError(s.to_owned());
        if let Some(path) = crate::net::addr::unix_socket_path(s) {
            return path.map(BackendAddr::Unix).map_err(|()| err());
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(err)?;
        port.parse::<u16>().map_err(|_| err())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.contains(['/', ' ', ',']) {
            return Err(err());
        }
        Ok(BackendAddr::Tcp(if host.is_empty() {
            format!("127.0.0.1:{port}")
        } else {
            s.to_owned()
        }))
    }
}

impl fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            BackendAddr::Tcp(a) => f.write_str(a),
        }
    }
}

/// The socket of one backend connection (non-blocking).
#[derive(Debug)]
enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// One open connection to a backend.
#[derive(Debug)]
pub struct Conn {
    sock: Sock,
    /// How many requests this connection has carried (0: fresh).
    pub uses: u32,
    /// When it was last returned idle.
    pub idle_since: Instant,
}

/// `poll` on one descriptor (and an optional second one) until `events` or the timeout;
/// returns the revents of both.
pub use crate::gateway::deferred::poll_pair as wait;

/// Connects a non-blocking Unix socket: a backend whose listen backlog is full answers
/// EAGAIN at once (a blocking connect would wait for it without bound).
fn connect_unix(path: &std::path::Path) -> io::Result<UnixStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    match connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
        Ok(()) => Ok(UnixStream::from(fd)),
        Err(nix::errno::Errno::EAGAIN) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "the backend's listen backlog is full",
        )),
        Err(e) => Err(e.into()),
    }
}

impl Conn {
    /// Connects to `addr` within `timeout`.
    pub fn connect(addr: &BackendAddr, timeout: Duration) -> io::Result<Conn> {
        let sock = match addr {
            BackendAddr::Unix(p) => Sock::Unix(connect_unix(p)?),
            BackendAddr::Tcp(a) => {
                let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
                let mut found = None;
                // A name lookup and a TCP handshake are waits (see `gateway::blocking`).
                for sa in crate::gateway::blocking(|| a.to_socket_addrs())? {
                    match crate::gateway::blocking(|| TcpStream::connect_timeout(&sa, timeout)) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let s = found.ok_or(last)?;
                s.set_nodelay(true)?;
                Sock::Tcp(s)
            }
        };
        match &sock {
            Sock::Tcp(s) => s.set_nonblocking(true)?,
            Sock::Unix(s) => s.set_nonblocking(true)?,
        }
        Ok(Conn {
            sock,
            uses: 0,
            idle_since: Instant::now(),
        })
    }

    /// The socket's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.sock {
            Sock::Tcp(s) => s.as_fd(),
            Sock::Unix(s) => s.as_fd(),
        }
    }

    /// `true` when an idle connection turned readable: a responder sends nothing between
    /// requests, so this is its close (or garbage); the connection must not be reused.
    pub fn is_stale(&self) -> bool {
        !matches!(
            wait(self.fd(), PollFlags::POLLIN, None, Duration::ZERO),
            Ok((r, _)) if r.is_empty()
        )
    }

    /// After an EOF: `true` when the peer still takes bytes, i.e. it shut only its writing
    /// side (a Unix socket whose peer is gone fails with EPIPE). Writes an empty GET_VALUES
    /// record as the probe. Always `false` for TCP, where a write to a closed peer succeeds.
    pub fn peer_still_reads(&mut self) -> bool {
        const PROBE: [u8; 8] = [1, 9, 0, 0, 0, 0, 0, 0];
        match &self.sock {
            Sock::Unix(_) => self.write_some(&PROBE).ok() == Some(PROBE.len()),
            Sock::Tcp(_) => false,
        }
    }

    fn raw(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd())
    }

    /// One non-blocking read (`WouldBlock` when nothing is there).
    pub fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use nix::sys::socket::{MsgFlags, recv};
        Ok(recv(self.raw(), buf, MsgFlags::MSG_DONTWAIT)?)
    }

    /// One non-blocking write (`WouldBlock` when the socket is full; EPIPE, never SIGPIPE,
    /// when the peer is gone).
    pub fn write_some(&mut self, buf: &[u8]) -> io::Result<usize> {
        use nix::sys::socket::{MsgFlags, send};
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        Ok(send(self.raw(), buf, flags)?)
    }

    /// Writes all of `buf`, waiting at most `timeout` for each step of progress.
    pub fn write_all(&mut self, mut buf: &[u8], timeout: Duration) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_some(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let fd = self.fd();
                    let (r, _) =
                        crate::gateway::blocking(|| wait(fd, PollFlags::POLLOUT, None, timeout))?;
                    if r.is_empty() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_some_and_write_some_never_block_and_a_gone_peer_is_epipe() {
        use std::io::{Read, Write};
        let dir = std::env::temp_dir().join(format!("cgate-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mut conn = Conn::connect(&BackendAddr::Unix(path), Duration::from_secs(5)).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let mut buf = [0u8; 16];
        let e = conn.read_some(&mut buf).unwrap_err();
        assert_eq!(
            e.kind(),
            io::ErrorKind::WouldBlock,
            "read_some never blocks"
        );
        peer.write_all(b"abc").unwrap();
        let got = loop {
            match conn.read_some(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..got], b"abc");
        // The peer reads nothing: the socket fills and a write says so instead of waiting.
        let chunk = [7u8; 65536];
        let mut sent = 0usize;
        let full = loop {
            match conn.write_some(&chunk) {
                Ok(n) => sent += n,
                Err(e) => break e,
            }
            assert!(sent < 64 << 20, "the socket never filled");
        };
        assert_eq!(full.kind(), io::ErrorKind::WouldBlock);
        let mut first = [0u8; 4];
        peer.read_exact(&mut first).unwrap();
        assert_eq!(first, [7; 4]);
        drop(peer);
        let e = loop {
            match conn.write_some(&chunk) {
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "EPIPE, no SIGPIPE");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn address_forms() {
        let p = |s: &str| s.parse::<BackendAddr>();
        assert_eq!(
            p("unix:/run/a.sock"),
            Ok(BackendAddr::Unix("/run/a.sock".into()))
        );
        assert_eq!(
            p("/run/a.sock"),
            Ok(BackendAddr::Unix("/run/a.sock".into()))
        );
        assert_eq!(
            p("10.0.0.2:9000"),
            Ok(BackendAddr::Tcp("10.0.0.2:9000".into()))
        );
        assert_eq!(p(":9000"), Ok(BackendAddr::Tcp("127.0.0.1:9000".into())));
        assert_eq!(p("[::1]:9000"), Ok(BackendAddr::Tcp("[::1]:9000".into())));
        assert_eq!(p("php:9000"), Ok(BackendAddr::Tcp("php:9000".into())));
        for bad in ["", "unix:rel", "host", "h:99999", "a/b:1", "h:x"] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(p("/x").unwrap().to_string(), "unix:/x");
    }
}
