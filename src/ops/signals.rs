//! The signals the server acts on, received synchronously with `sigwait` (never fatal by accident).
//!
//! | signal | meaning |
//! | --- | --- |
//! | SIGTERM, SIGINT | graceful stop: no new connections, requests in flight finish |
//! | the same again, or SIGQUIT | stop now: socket file removed, scripts stopped |
//! | SIGHUP | zero-loss reload (a new process takes the listening socket over) |
//! | SIGUSR1 | reopen the access log |
//! | SIGUSR2 | ignored (logged) |

use std::path::PathBuf;
use std::sync::Mutex;

use nix::sys::signal::{SigSet, Signal};

/// What a received signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// Graceful stop (SIGTERM, SIGINT).
    Stop(Signal),
    /// Stop now (SIGQUIT).
    Quit,
    /// Reload (SIGHUP).
    Reload,
    /// Reopen log files (SIGUSR1).
    Reopen,
    /// A signal with no use; logged and ignored.
    Ignored(Signal),
}

/// Held by the thread that stops the process at once, from its decision to its exit.
static EXITING: Mutex<()> = Mutex::new(());

/// Waits if another thread is stopping the process at once (so its exit code stands).
pub fn join_exit() {
    drop(EXITING.lock());
}

/// The blocked signal set the server waits on.
pub struct Signals {
    set: SigSet,
}

const HANDLED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

impl Signals {
    /// Blocks the handled signals in this thread (and so in every thread started after).
    pub fn block() -> std::io::Result<Signals> {
        let mut set = SigSet::empty();
        for s in HANDLED {
            set.add(s);
        }
        set.thread_block().map_err(std::io::Error::from)?;
        Ok(Signals { set })
    }

    /// Waits for the next handled signal.
    pub fn wait(&self) -> Wanted {
        match self.set.wait() {
            Ok(Signal::SIGTERM) | Err(_) => Wanted::Stop(Signal::SIGTERM),
            Ok(Signal::SIGINT) => Wanted::Stop(Signal::SIGINT),
            Ok(Signal::SIGQUIT) => Wanted::Quit,
            Ok(Signal::SIGHUP) => Wanted::Reload,
            Ok(Signal::SIGUSR1) => Wanted::Reopen,
            Ok(other) => Wanted::Ignored(other),
        }
    }

    /// While the server drains (after a stop or a reload): a thread that answers the next
    /// stop signal by exiting at once, after removing `file` and stopping scripts; SIGUSR1
    /// still reopens logs, anything else is ignored.
    pub fn exit_on_next(&self, file: Option<PathBuf>) {
        let me = Signals { set: self.set };
        let spawned = std::thread::Builder::new()
            .name("cgate-signals".into())
            .spawn(move || {
                let _exiting = loop {
                    match me.wait() {
                        Wanted::Stop(sig) => {
                            let held = EXITING.lock();
                            super::event(&format!("second {sig}: stopping now"));
                            break held;
                        }
                        Wanted::Quit => {
                            let held = EXITING.lock();
                            super::event("SIGQUIT: stopping now");
                            break held;
                        }
                        Wanted::Reopen => super::access::reopen(),
                        Wanted::Reload => super::event("SIGHUP ignored: already stopping"),
                        Wanted::Ignored(sig) => super::event(&format!("{sig} ignored")),
                    }
                };
                if let Some(p) = &file {
                    let _ = std::fs::remove_file(p);
                }
                super::terminate_scripts(super::SCRIPT_KILL_GRACE);
                super::access::flush();
                std::process::exit(1);
            });
        if let Err(e) = spawned {
            super::event(&format!("cannot start the signal thread: {e}"));
        }
    }
}
