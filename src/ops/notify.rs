//! `sd_notify` without libsystemd: one datagram to the Unix socket named by $NOTIFY_SOCKET.
//!
//! A path socket or, with a leading `@`, one in the abstract namespace. Failures are
//! ignored (the service manager is not there or does not listen): notification is advice.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `READY=1`, `RELOADING=1`, `STOPPING=1`, `MAINPID=N`; several may be
/// joined with newlines) to the service manager, if $NOTIFY_SOCKET names one.
pub fn notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = target.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(name) {
            let _ = sock.send_to_addr(state.as_bytes(), &addr);
        }
    } else {
        let _ = sock.send_to(state.as_bytes(), std::path::Path::new(&target));
    }
}

/// `RELOADING=1` with the monotonic timestamp systemd 253+ expects beside it.
pub fn reloading() {
    let usec = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0);
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}
