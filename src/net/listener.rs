//! Listener and Stream over TCP and Unix sockets: bind (mode, owner, stale socket), inherit, accept.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, getsockname};
use nix::unistd::{Gid, Group, Uid, User, chown};

use super::addr::ListenAddr;

/// How a Unix socket file is created.
#[derive(Debug, Clone, Default)]
pub struct UnixOptions {
    /// Permission bits (default 0o660).
    pub mode: Option<u32>,
    /// Owner user name or uid.
    pub owner: Option<String>,
    /// Owner group name or gid.
    pub group: Option<String>,
}

/// Default permission bits of a created Unix socket.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// A listening socket.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix; `path` is set when cgate created the file (removed on clean exit).
    Unix(UnixListener, Option<PathBuf>),
}

/// A connected socket.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix.
    Unix(UnixStream),
}

fn resolve_user(s: &str) -> io::Result<Uid> {
    if let Ok(n) = s.parse() {
        return Ok(Uid::from_raw(n));
    }
    User::from_name(s)
        .map_err(io::Error::from)?
        .map(|u| u.uid)
        .ok_or_else(|| io::Error::other(format!("no such user {s:?}")))
}

fn resolve_group(s: &str) -> io::Result<Gid> {
    if let Ok(n) = s.parse() {
        return Ok(Gid::from_raw(n));
    }
    Group::from_name(s)
        .map_err(io::Error::from)?
        .map(|g| g.gid)
        .ok_or_else(|| io::Error::other(format!("no such group {s:?}")))
}

/// Removes a leftover socket file: only if it is a socket and nothing answers on it.
fn clear_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use by a running server", path.display()),
        ));
    }
    std::fs::remove_file(path)
}

impl Listener {
    /// Binds or adopts the listener `addr` names.
    pub fn open(addr: &ListenAddr, unix: &UnixOptions) -> io::Result<Listener> {
        match addr {
            ListenAddr::Tcp(a) => Ok(Listener::Tcp(TcpListener::bind(a)?)),
            ListenAddr::Unix(path) => {
                clear_stale(path)?;
                let l = UnixListener::bind(path)?;
                let mode = unix.mode.unwrap_or(DEFAULT_SOCKET_MODE);
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                let uid = unix.owner.as_deref().map(resolve_user).transpose()?;
                let gid = unix.group.as_deref().map(resolve_group).transpose()?;
                if uid.is_some() || gid.is_some() {
                    chown(path, uid, gid).map_err(io::Error::from)?;
                }
                Ok(Listener::Unix(l, Some(path.clone())))
            }
            ListenAddr::Fd(n) => Listener::adopt(*n),
            ListenAddr::Systemd => {
                let pid_ok = std::env::var("LISTEN_PID")
                    .ok()
                    .and_then(|p| p.parse::<u32>().ok())
                    == Some(std::process::id());
                let fds: u32 = std::env::var("LISTEN_FDS")
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                if !pid_ok || fds < 1 {
                    return Err(io::Error::other(
                        "systemd: LISTEN_PID/LISTEN_FDS do not hand this process a socket",
                    ));
                }
                Listener::adopt(3)
            }
        }
    }

    /// Adopts inherited listening descriptor `fd` (duplicated, close-on-exec).
    pub fn adopt(fd: i32) -> io::Result<Listener> {
        let owned: OwnedFd = crate::os::adopt_fd(fd)?;
        if !crate::os::is_listening_socket(owned.as_fd()) {
            return Err(io::Error::other(format!(
                "fd {fd} is not a listening socket"
            )));
        }
        let family = getsockname::<SockaddrStorage>(std::os::fd::AsRawFd::as_raw_fd(&owned))
            .map_err(io::Error::from)?
            .family();
        match family {
            Some(AddressFamily::Unix) => Ok(Listener::Unix(UnixListener::from(owned), None)),
            Some(AddressFamily::Inet | AddressFamily::Inet6) => {
                Ok(Listener::Tcp(TcpListener::from(owned)))
            }
            _ => Err(io::Error::other(format!(
                "fd {fd}: unsupported socket family"
            ))),
        }
    }

    /// Accepts one connection as a non-blocking socket (the listener should be non-blocking
    /// too); returns the peer's IP for TCP when `want_peer` is set.
    pub fn accept_nonblocking(&self, want_peer: bool) -> io::Result<(Stream, Option<IpAddr>)> {
        use nix::sys::socket::{SockFlag, accept4};
        let fd = accept4(self, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC)
            .map_err(io::Error::from)?;
        match self {
            Listener::Tcp(_) => {
                let s = TcpStream::from(fd);
                let _ = s.set_nodelay(true);
                let peer = if want_peer {
                    Some(s.peer_addr()?.ip())
                } else {
                    None
                };
                Ok((Stream::Tcp(s), peer))
            }
            Listener::Unix(..) => Ok((Stream::Unix(UnixStream::from(fd)), None)),
        }
    }

    /// Stops accepting: pending and new connection attempts are refused.
    pub fn shutdown(&self) {
        let _ = nix::sys::socket::shutdown(
            std::os::fd::AsRawFd::as_raw_fd(&self.as_fd()),
            nix::sys::socket::Shutdown::Read,
        );
    }

    /// Removes the socket file cgate created, if any.
    pub fn remove_file(&self) {
        if let Listener::Unix(_, Some(p)) = self {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Non-blocking mode on or off.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(on),
            Listener::Unix(l, _) => l.set_nonblocking(on),
        }
    }

    /// `true` for TCP listeners.
    pub fn is_tcp(&self) -> bool {
        matches!(self, Listener::Tcp(_))
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        }
    }
}

impl Stream {
    /// Takes no more input: what has arrived stays readable, then reads see the end of the
    /// stream (a waiting reader wakes). On a Unix socket the peer's later writes fail with
    /// EPIPE, so a request it sends from now on is refused, never half received; on TCP the
    /// kernel still queues what the peer sends (reading it to the end avoids a reset).
    pub fn shutdown_read(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Read),
            Stream::Unix(s) => s.shutdown(Shutdown::Read),
        };
    }

    /// Shuts the socket down in both directions (wakes a blocked reader).
    pub fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }

    /// Reads through a shared reference.
    pub fn read_shared(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }

    /// Writes once through a shared reference (may write less, or fail with WouldBlock).
    pub fn write_shared(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}
