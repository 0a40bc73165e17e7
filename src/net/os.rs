//! The one module with unsafe code: adopting inherited listening descriptors by number.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use nix::fcntl::{FcntlArg, fcntl};

/// Duplicates inherited descriptor `fd` into an owned, close-on-exec descriptor.
///
/// The original number is left as it is (it may be 0, stdin); the duplicate carries
/// `FD_CLOEXEC`, so scripts started later never inherit the listener.
pub fn adopt_fd(fd: i32) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc_ebadf()));
    }
    // SAFETY: `fd` is a descriptor number handed to this process by its parent (spawn-fcgi,
    // mod_fcgid, systemd). We only borrow it for the duration of the F_GETFD check and the
    // duplication below, never close it, and the call happens once at start-up before any
    // other code could close or reuse that number. F_GETFD first confirms it is open, so the
    // borrow never refers to a closed descriptor.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    fcntl(borrowed, FcntlArg::F_GETFD).map_err(io::Error::from)?;
    borrowed.try_clone_to_owned()
}

fn libc_ebadf() -> i32 {
    nix::errno::Errno::EBADF as i32
}
