//! `ListenAddr`: parses `unix:/path`, `/path`, `host:port`, `fd:N` and `systemd`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the FastCGI server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A Unix socket path (`unix:/run/cgate.sock` or `/run/cgate.sock`).
    Unix(PathBuf),
    /// A TCP address (`127.0.0.1:9000`, `[::1]:9000`, `localhost:9000`).
    Tcp(SocketAddr),
    /// An inherited listening socket (`fd:0`, as spawn-fcgi and mod_fcgid pass it).
    Fd(i32),
    /// systemd socket activation (`systemd`: LISTEN_FDS / LISTEN_PID, first fd 3).
    Systemd,
}

/// Why an address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid listen address {0:?} (expected unix:/path, /path, host:port, fd:N or systemd)")]
pub struct AddrError(pub String);

impl std::str::FromStr for ListenAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, AddrError> {
        let err = || AddrError(s.to_owned());
        if let Some(path) = unix_socket_path(s) {
            return path.map(ListenAddr::Unix).map_err(|()| err());
        }
        if let Some(n) = s.strip_prefix("fd:") {
            return n.parse().map(ListenAddr::Fd).map_err(|_| err());
        }
        if s == "systemd" {
            return Ok(ListenAddr::Systemd);
        }
        if let Some(port) = s.strip_prefix("localhost:") {
            let port: u16 = port.parse().map_err(|_| err())?;
            return Ok(ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], port))));
        }
        if let Some(port) = s.strip_prefix(':') {
            let port: u16 = port.parse().map_err(|_| err())?;
            return Ok(ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], port))));
        }
        s.parse().map(ListenAddr::Tcp).map_err(|_| err())
    }
}

/// The socket path named by `unix:/p`, `unix:./p`, `/p` or `./p` (listen and backend
/// addresses alike): `Some(Ok(path))`; `Some(Err(()))` for `unix:` with another path; `None`
/// when `s` names no Unix socket.
pub(crate) fn unix_socket_path(s: &str) -> Option<Result<PathBuf, ()>> {
    if let Some(p) = s.strip_prefix("unix:") {
        return Some(if p.starts_with('/') || p.starts_with('.') {
            Ok(p.into())
        } else {
            Err(())
        });
    }
    (s.starts_with('/') || s.starts_with("./")).then(|| Ok(s.into()))
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Fd(n) => write!(f, "fd:{n}"),
            ListenAddr::Systemd => f.write_str("systemd"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let p = |s: &str| s.parse::<ListenAddr>();
        assert_eq!(
            p("unix:/run/x.sock"),
            Ok(ListenAddr::Unix("/run/x.sock".into()))
        );
        assert_eq!(p("/tmp/a"), Ok(ListenAddr::Unix("/tmp/a".into())));
        assert_eq!(
            p("127.0.0.1:9000"),
            Ok(ListenAddr::Tcp("127.0.0.1:9000".parse().unwrap()))
        );
        assert_eq!(
            p(":9000"),
            Ok(ListenAddr::Tcp("127.0.0.1:9000".parse().unwrap()))
        );
        assert_eq!(
            p("[::1]:9"),
            Ok(ListenAddr::Tcp("[::1]:9".parse().unwrap()))
        );
        assert_eq!(p("fd:0"), Ok(ListenAddr::Fd(0)));
        assert_eq!(p("systemd"), Ok(ListenAddr::Systemd));
        for bad in ["unix:rel", "fd:x", "host", "1.2.3.4:99999", ""] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
