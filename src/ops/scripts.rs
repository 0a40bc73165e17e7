//! Stopping the scripts still running when the server exits: TERM to each child's process group, KILL after a grace, reap.
//!
//! The script runner keeps no process-wide list the server can reach, so this finds the
//! server's children in /proc (scripts are process-group leaders, see
//! [`crate::os::spawn_in_group`]). The successor started by a reload is a child too and is
//! spared ([`spare`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{Pid, getpgid};

static SPARED: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Never stops process `pid` (the reload successor).
pub fn spare(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        SPARED.lock().unwrap_or_else(|p| p.into_inner()).push(pid);
    }
}

/// The pids whose parent is this process, from /proc/PID/stat (field 4).
fn children() -> Vec<i32> {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let spared = SPARED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| !spared.contains(pid))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let (_, rest) = s.rsplit_once(") ")?;
                    rest.split(' ').nth(1)?.parse::<i32>().ok()
                })
                == Some(me)
        })
        .collect()
}

fn signal_all(pids: &[i32], sig: Signal) {
    for &pid in pids {
        let p = Pid::from_raw(pid);
        if getpgid(Some(p)) == Ok(p) {
            let _ = killpg(p, sig);
        } else {
            let _ = kill(p, sig);
        }
    }
}

/// Reaps what has exited; returns the pids still alive.
fn reap(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|&pid| {
            !matches!(
                waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
                Ok(nix::sys::wait::WaitStatus::Exited(..)
                    | nix::sys::wait::WaitStatus::Signaled(..))
                    | Err(nix::errno::Errno::ECHILD)
            )
        })
        .collect()
}

/// Sends SIGTERM to every child's process group, SIGKILL to those left after `grace`, and
/// reaps them. Returns how many there were.
pub fn terminate_all(grace: Duration) -> usize {
    let pids = children();
    if pids.is_empty() {
        return 0;
    }
    signal_all(&pids, Signal::SIGTERM);
    let deadline = Instant::now().checked_add(grace);
    let mut left = reap(&pids);
    while !left.is_empty() && deadline.is_some_and(|d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(10));
        left = reap(&left);
    }
    if !left.is_empty() {
        signal_all(&left, Signal::SIGKILL);
        let stop = Instant::now() + Duration::from_secs(1);
        while !left.is_empty() && Instant::now() < stop {
            std::thread::sleep(Duration::from_millis(5));
            left = reap(&left);
        }
    }
    pids.len()
}
