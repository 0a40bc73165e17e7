//! The abort case: a client leaves while a `cgi:DIR` script is silent; once the front-end passes that on (ABORT_REQUEST or a closed connection), the script's whole process group must end promptly.
//!
//! `/cgi/silent.sh` records its pid (= its process group) in `ROOT/cgi/silent.pid`, then
//! waits forever on a child without writing a byte. The client closes its connection once
//! the pid file is there; the group must be gone within [`GONE_WITHIN`], well before
//! cgate's own idle timeout (30 s) would end it. Whatever is left is killed afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::support::TIMEOUT;
use crate::support::http::Conn;

/// How long the script's group may outlive its client (a failure bound).
const GONE_WITHIN: Duration = Duration::from_secs(10);

fn group_alive(pgid: Pid) -> bool {
    killpg(pgid, None).is_ok()
}

fn wait_for_pid(file: &Path) -> Result<Pid, String> {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            let pid: i32 = text.trim().parse().map_err(|e| format!("{text:?}: {e}"))?;
            return Ok(Pid::from_raw(pid));
        }
        if start.elapsed() > TIMEOUT {
            return Err("the script never started".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// GET /cgi/silent.sh through `port`, leave once it runs, then watch its group.
pub fn client_leaves(port: u16, root: &Path) -> Result<String, String> {
    let pid_file = root.join("cgi/silent.pid");
    let _ = std::fs::remove_file(&pid_file);
    let mut conn = Conn::open(port).map_err(|e| e.to_string())?;
    conn.send_request("GET", "/cgi/silent.sh", &[], b"")
        .map_err(|e| e.to_string())?;
    let pgid = wait_for_pid(&pid_file)?;
    if !group_alive(pgid) {
        return Err(format!("script group {pgid} ended before the client left"));
    }
    drop(conn);
    let left = Instant::now();
    while group_alive(pgid) && left.elapsed() < GONE_WITHIN {
        std::thread::sleep(Duration::from_millis(20));
    }
    if group_alive(pgid) {
        let _ = killpg(pgid, Signal::SIGKILL);
        return Err(format!(
            "script group {pgid} still running {GONE_WITHIN:?} after the client left"
        ));
    }
    Ok("script group gone after the client left".into())
}
