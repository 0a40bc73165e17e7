//! The one OS module, and the only one with unsafe code: OS calls std does not offer safely (adopting inherited descriptors, posix_spawn) and socket queries.
#![allow(unsafe_code)]

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;

/// Duplicates inherited descriptor `fd` into an owned, close-on-exec descriptor.
///
/// The original number stays open (it may be 0, stdin) but gets `FD_CLOEXEC`, like the
/// duplicate, so scripts started later never inherit the listener.
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
    // The inherited number itself must not leak into scripts either.
    fcntl(borrowed, FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    borrowed.try_clone_to_owned()
}

fn libc_ebadf() -> i32 {
    nix::errno::Errno::EBADF as i32
}

/// A process started by [`spawn_in_group`]: its pid and the parent's ends of its pipes.
#[derive(Debug)]
pub struct Spawned {
    /// Process id, also its process group id.
    pub pid: i32,
    /// Write end of its stdin.
    pub stdin: OwnedFd,
    /// Read end of its stdout.
    pub stdout: OwnedFd,
    /// Read end of its stderr.
    pub stderr: OwnedFd,
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Starts `program` (argv = its path only) with exactly `env`, in directory `cwd`, as the
/// leader of a new process group, with pipes on fds 0-2, an empty signal mask and default
/// signal dispositions, and no other descriptor (all above 2 are closed in the child).
///
/// This is `posix_spawn`, which glibc implements with `clone(CLONE_VM | CLONE_VFORK)`: no
/// copy of the parent's page tables, unlike `fork`, whatever the parent's size or thread
/// count. (`std::process::Command` falls back to `fork` in a static binary when asked to
/// change directory.)
pub fn spawn_in_group(
    program: &Path,
    cwd: &Path,
    env: &[(OsString, OsString)],
) -> io::Result<Spawned> {
    let prog = cstring(program.as_os_str().as_bytes())?;
    let dir = cstring(cwd.as_os_str().as_bytes())?;
    let env_c = env
        .iter()
        .map(|(k, v)| cstring(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<io::Result<Vec<CString>>>()?;
    let mut envp: Vec<*mut libc::c_char> = env_c.iter().map(|c| c.as_ptr().cast_mut()).collect();
    envp.push(std::ptr::null_mut());
    let argv: [*mut libc::c_char; 2] = [prog.as_ptr().cast_mut(), std::ptr::null_mut()];
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from);
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer handed to libc below points into a value that outlives the call
    // (the C strings, the argv/envp arrays ending in a null pointer, the file-action and
    // attribute objects, which are initialised before use and destroyed exactly once after
    // posix_spawn returns). The descriptors named in the file actions are open and owned by
    // this function until it returns. posix_spawn does not retain any of these pointers.
    unsafe {
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        check(libc::posix_spawn_file_actions_init(&mut fa))?;
        if let Err(e) = check(libc::posix_spawnattr_init(&mut attr)) {
            libc::posix_spawn_file_actions_destroy(&mut fa);
            return Err(e);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        let mut defaults: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigemptyset(&mut defaults);
        for sig in [
            libc::SIGPIPE,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGCHLD,
        ] {
            libc::sigaddset(&mut defaults, sig);
        }
        let flags = libc::POSIX_SPAWN_SETPGROUP
            | libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF;
        let setup = check(libc::posix_spawn_file_actions_adddup2(
            &mut fa,
            in_r.as_raw_fd(),
            0,
        ))
        .and_then(|()| {
            check(libc::posix_spawn_file_actions_adddup2(
                &mut fa,
                out_w.as_raw_fd(),
                1,
            ))
        })
        .and_then(|()| {
            check(libc::posix_spawn_file_actions_adddup2(
                &mut fa,
                err_w.as_raw_fd(),
                2,
            ))
        })
        .and_then(|()| {
            check(libc::posix_spawn_file_actions_addchdir_np(
                &mut fa,
                dir.as_ptr(),
            ))
        })
        // Descriptors cgate itself inherited without close-on-exec (a parent's jobserver, a
        // leaked socket) must not reach scripts either: close everything above 2.
        .and_then(|()| check(libc::posix_spawn_file_actions_addclosefrom_np(&mut fa, 3)))
        .and_then(|()| {
            check(libc::posix_spawnattr_setflags(
                &mut attr,
                flags as libc::c_short,
            ))
        })
        .and_then(|()| check(libc::posix_spawnattr_setpgroup(&mut attr, 0)))
        .and_then(|()| check(libc::posix_spawnattr_setsigmask(&mut attr, &empty)))
        .and_then(|()| check(libc::posix_spawnattr_setsigdefault(&mut attr, &defaults)));
        let spawned = setup.and_then(|()| {
            check(libc::posix_spawn(
                &mut pid,
                prog.as_ptr(),
                &fa,
                &attr,
                argv.as_ptr(),
                envp.as_ptr(),
            ))
        });
        libc::posix_spawn_file_actions_destroy(&mut fa);
        libc::posix_spawnattr_destroy(&mut attr);
        spawned?;
    }
    drop((in_r, out_w, err_w));
    Ok(Spawned {
        pid,
        stdin: in_w,
        stdout: out_r,
        stderr: err_r,
    })
}

/// `true` when `fd` is a socket in the listening state (how spawn-fcgi and mod_fcgid hand
/// over the FastCGI socket on fd 0).
pub fn is_listening_socket(fd: impl std::os::fd::AsFd) -> bool {
    nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::AcceptConn).unwrap_or(false)
}

/// `true` when standard input is a listening socket.
pub fn stdin_is_listener() -> bool {
    is_listening_socket(std::os::fd::AsFd::as_fd(&std::io::stdin()))
}
