//! The one OS module, and the only one with unsafe code: OS calls std does not offer safely (adopting inherited descriptors, starting scripts) and socket queries.
#![allow(unsafe_code)]

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
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

/// A process started by [`spawn_script`]: its pid and the parent's ends of its pipes.
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

/// The descriptor number an executed file is handed over on: a `#!` script is run by the
/// kernel as `INTERPRETER /dev/fd/3`, so there it stays open (not close-on-exec).
pub const SCRIPT_FD: i32 = 3;

/// What the child needs, all prepared before it exists: it only makes system calls.
struct ChildPlan {
    argv: [*mut libc::c_char; 2],
    envp: *const *mut libc::c_char,
    cwd: *const libc::c_char,
    fds: [i32; 3],
    file: i32,
    interpreted: bool,
    parent: libc::pid_t,
    /// Written by the child when a step fails (the memory is shared until it execs).
    errno: i32,
}

/// The child side: runs on its own stack in the parent's memory (CLONE_VM | CLONE_VFORK)
/// until `execveat`, so it calls nothing but async-signal-safe functions and allocates
/// nothing. Every signal stays blocked until all handlers are back to their defaults.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to the parent's ChildPlan, alive and not touched by the parent
    // (suspended by CLONE_VFORK) until this child execs or exits. Only libc system-call
    // wrappers are called, with pointers into that plan or into this frame.
    unsafe {
        let plan = &mut *arg.cast::<ChildPlan>();
        let fail = |plan: &mut ChildPlan| -> ! {
            plan.errno = *libc::__errno_location();
            if plan.errno == 0 {
                plan.errno = libc::EINVAL;
            }
            libc::_exit(127)
        };
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..65 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            fail(plan);
        }
        // Dies with the thread that started it (which waits for it, so: with cgate, even
        // on SIGKILL); if the parent is already gone, do not run at all.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 || libc::getppid() != plan.parent
        {
            fail(plan);
        }
        for (to, from) in plan.fds.iter().enumerate() {
            if libc::dup2(*from, to as i32) < 0 {
                fail(plan);
            }
        }
        let keep = if plan.interpreted { 0 } else { libc::O_CLOEXEC };
        let moved = if plan.file == SCRIPT_FD {
            libc::fcntl(
                SCRIPT_FD,
                libc::F_SETFD,
                if keep == 0 { 0 } else { libc::FD_CLOEXEC },
            )
        } else {
            libc::dup3(plan.file, SCRIPT_FD, keep)
        };
        if moved < 0 || libc::close_range(SCRIPT_FD as u32 + 1, u32::MAX, 0) != 0 {
            fail(plan);
        }
        if libc::chdir(plan.cwd) != 0 {
            fail(plan);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execveat(
            SCRIPT_FD,
            c"".as_ptr(),
            plan.argv.as_ptr(),
            plan.envp,
            libc::AT_EMPTY_PATH,
        );
        fail(plan)
    }
}

/// Bytes of stack the child runs on until it execs.
const CHILD_STACK: usize = 64 * 1024;

thread_local! {
    static STACK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A descriptor moved above 2 when it landed on 0-2 (cgate started with those closed), so
/// the child's `dup2` onto 0-2 never overwrites another of its sources.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let raw = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(SCRIPT_FD)).map_err(io::Error::from)?;
    // SAFETY: F_DUPFD_CLOEXEC just returned this new descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Runs the open, checked `file` (never a path: the object checked is the object run)
/// with argv = `argv0` only, exactly `env`, in directory `cwd`, as the leader of a new
/// process group, with pipes on fds 0-2, an empty signal mask and default signal
/// dispositions, killed by the kernel if the thread that started it dies (so with cgate,
/// even on SIGKILL). A `#!` script (`interpreted`) also gets the file on fd 3, where the
/// kernel's `/dev/fd/3` lets the interpreter read it; every other descriptor is closed.
///
/// The child is made with `clone(CLONE_VM | CLONE_VFORK)`, as glibc's `posix_spawn` does:
/// no copy of the parent's page tables, whatever the parent's size, and the parent thread
/// resumes once the child has exec'd, learning any failure's errno from shared memory.
/// (`posix_spawn` itself cannot set the parent-death signal nor exec a descriptor.)
pub fn spawn_script(
    file: BorrowedFd<'_>,
    interpreted: bool,
    argv0: &Path,
    cwd: &Path,
    env: &[(OsString, OsString)],
) -> io::Result<Spawned> {
    let arg0 = cstring(argv0.as_os_str().as_bytes())?;
    let dir = cstring(cwd.as_os_str().as_bytes())?;
    let env_c = env
        .iter()
        .map(|(k, v)| cstring(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<io::Result<Vec<CString>>>()?;
    let mut envp: Vec<*mut libc::c_char> = env_c.iter().map(|c| c.as_ptr().cast_mut()).collect();
    envp.push(std::ptr::null_mut());
    let pipe = || -> io::Result<(OwnedFd, OwnedFd)> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        Ok((above_stdio(r)?, above_stdio(w)?))
    };
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // Only a descriptor on 0-2 (cgate started with those closed) needs a copy above them.
    let moved = match file.as_raw_fd() {
        0..=2 => Some(file.try_clone_to_owned().and_then(above_stdio)?),
        _ => None,
    };
    let file_fd = moved.as_ref().map_or(file.as_raw_fd(), AsRawFd::as_raw_fd);
    let mut plan = ChildPlan {
        argv: [arg0.as_ptr().cast_mut(), std::ptr::null_mut()],
        envp: envp.as_ptr(),
        cwd: dir.as_ptr(),
        fds: [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
        file: file_fd,
        interpreted,
        parent: nix::unistd::getpid().as_raw(),
        errno: 0,
    };
    let pid = STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        stack.resize(CHILD_STACK, 0);
        clone_child(&mut plan, &mut stack)
    })?;
    // SAFETY: the child wrote it (or not) before this thread resumed; read it afresh.
    let errno = unsafe { std::ptr::read_volatile(&plan.errno) };
    if errno != 0 {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(io::Error::from_raw_os_error(errno));
    }
    drop((in_r, out_w, err_w, moved));
    Ok(Spawned {
        pid,
        stdin: in_w,
        stdout: out_r,
        stderr: err_r,
    })
}

/// Starts [`child_main`] on `stack` with every signal blocked in this thread meanwhile (no
/// handler may run in the child while it shares this memory); answers its pid once it has
/// exec'd or failed.
fn clone_child(plan: &mut ChildPlan, stack: &mut [u8]) -> io::Result<libc::pid_t> {
    // SAFETY: the signal sets are plain values initialised by sigfillset/pthread_sigmask.
    // `stack` is a live buffer of CHILD_STACK bytes owned by this thread, and its top is
    // aligned down to 16 bytes as the ABI wants; the child only runs until execveat or
    // _exit (CLONE_VFORK suspends this thread until then), so the stack and `plan`
    // outlive it. The mask is restored whatever clone answers.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let top = stack.as_mut_ptr().add(stack.len());
        let top = top.sub(top as usize % 16);
        let pid = libc::clone(
            child_main,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (plan as *mut ChildPlan).cast(),
        );
        let err = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 { Err(err) } else { Ok(pid) }
    }
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

/// Most script groups the [`group_guard`] process tracks at once (beyond, new ones are not
/// tracked: they still die with the thread that started them, not their children).
const GUARD_SLOTS: usize = 4096;

/// The write end of the pipe to the group guard, started on first use.
static GUARD: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();

/// Tells the group guard that script group `pgid` now runs (`true`) or is about to be
/// reaped (`false`, sent before the reap, so the guard never signals a reused id).
///
/// The guard is a small process forked once, on the first script: it reads these 4-byte
/// notes from a pipe only cgate holds, and when the pipe reaches end of file (cgate
/// exited, however it died, SIGKILL included) it sends SIGKILL to every group still
/// listed and exits. So a script's children die with cgate too, not only the script
/// (which its parent-death signal already kills).
pub fn group_guard(pgid: i32, running: bool) {
    let Some(fd) = GUARD.get_or_init(start_guard) else {
        return;
    };
    let note = if running { pgid } else { -pgid };
    // A 4-byte write to a pipe is atomic; a failure only means no guard.
    let _ = nix::unistd::write(fd, &note.to_ne_bytes());
}

fn start_guard() -> Option<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ok()?;
    // SAFETY: fork in a threaded process; the child only makes async-signal-safe system
    // calls (guard_main) and never returns into Rust code that could take a lock or
    // allocate. The parent just keeps the write end.
    let pid = unsafe { libc::fork() };
    match pid {
        0 => guard_main(r.as_raw_fd()),
        p if p > 0 => {
            drop(r);
            Some(w)
        }
        _ => None,
    }
}

/// The guard's whole life: see [`group_guard`].
fn guard_main(r: i32) -> ! {
    // SAFETY: raw system calls on plain values and on this frame's arrays; runs in the
    // forked child only, which exits here.
    unsafe {
        if r > 0 {
            libc::close_range(0, r as u32 - 1, 0);
        }
        libc::close_range(r as u32 + 1, u32::MAX, 0);
        libc::setsid();
        for sig in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        let mut groups = [0i32; GUARD_SLOTS];
        let mut n = 0usize;
        let mut notes = [0i32; 256];
        loop {
            let got = libc::read(r, notes.as_mut_ptr().cast(), std::mem::size_of_val(&notes));
            if got < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            if got <= 0 {
                break;
            }
            for &note in notes.iter().take(got as usize / 4) {
                if note > 0 && n < GUARD_SLOTS {
                    groups[n] = note;
                    n += 1;
                } else if let Some(i) = groups[..n].iter().position(|&g| g == -note) {
                    n -= 1;
                    groups[i] = groups[n];
                }
            }
        }
        for &g in &groups[..n] {
            libc::kill(-g, libc::SIGKILL);
        }
        libc::_exit(0)
    }
}

/// The accept queue of a listening TCP socket, from `TCP_INFO`: connections waiting to be
/// accepted now (`tcpi_unacked` on a listener) and the queue's bound (`tcpi_sacked`, the
/// backlog in force). `None` when the kernel says nothing (not TCP, not listening).
pub fn tcp_accept_queue(fd: BorrowedFd<'_>) -> Option<(u32, u32)> {
    /// `TCP_LISTEN` of the kernel's TCP states.
    const TCP_LISTEN: u8 = 10;
    // SAFETY: `tcp_info` is plain integers, so all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `fd` is a live descriptor for the call; `info` and `len` are valid for writes
    // and `len` holds the buffer's size, which the kernel never exceeds.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    let listening = info.tcpi_state == TCP_LISTEN;
    (r == 0 && listening).then_some((info.tcpi_unacked, info.tcpi_sacked))
}
