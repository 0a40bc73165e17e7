//! OS queries on inherited descriptors (safe wrappers over nix).

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt};

/// `true` when `fd` is a socket in the listening state (how spawn-fcgi and mod_fcgid hand
/// over the FastCGI socket on fd 0).
pub fn is_listening_socket(fd: impl AsFd) -> bool {
    getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false)
}

/// `true` when standard input is a listening socket.
pub fn stdin_is_listener() -> bool {
    is_listening_socket(std::io::stdin().as_fd())
}
