//! What a running request waits on (app, script, client, body), and the thread's current request, so a script's pump can say when it waits on its script.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// What a running request is waiting on, as the slow log and status report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Waiting {
    /// The app is computing or producing output.
    App = 0,
    /// Its response is being written to the web server.
    Client = 1,
    /// It reads the request body, which has not arrived yet.
    Body = 2,
    /// A CGI script it runs: the pump waits for the script's output (or for it to read
    /// its body).
    Script = 3,
    /// Its body is parked off any thread until a descriptor is ready (a forwarded request
    /// waiting for its backend under the FastCGI server).
    Parked = 4,
}

impl Waiting {
    /// The value stored as u8; anything unknown reads as `App`.
    pub(crate) fn from_u8(v: u8) -> Waiting {
        match v {
            1 => Waiting::Client,
            2 => Waiting::Body,
            3 => Waiting::Script,
            4 => Waiting::Parked,
            _ => Waiting::App,
        }
    }

    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Waiting::App => "app",
            Waiting::Client => "client",
            Waiting::Body => "body",
            Waiting::Script => "script",
            Waiting::Parked => "parked",
        }
    }
}

thread_local! {
    /// The waiting slot of the observed request this thread runs, if any.
    static CURRENT: RefCell<Option<Arc<AtomicU8>>> = const { RefCell::new(None) };
}

/// Marks `slot` as this thread's current request until dropped (then the one before is
/// restored, so nothing leaks into the thread's next request).
pub(crate) struct Current {
    before: Option<Arc<AtomicU8>>,
}

impl Current {
    pub(crate) fn enter(slot: &Arc<AtomicU8>) -> Current {
        let before = CURRENT.with(|c| c.replace(Some(Arc::clone(slot))));
        Current { before }
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        let before = self.before.take();
        CURRENT.with(|c| *c.borrow_mut() = before);
    }
}

/// Says whether this thread's request now waits on its CGI script (`true`) or is back in
/// the app (`false`); a no-op when no observed request runs here.
pub fn on_script(waiting: bool) {
    let v = if waiting {
        Waiting::Script
    } else {
        Waiting::App
    };
    CURRENT.with(|c| {
        if let Some(slot) = c.borrow().as_ref() {
            slot.store(v as u8, Relaxed);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_request_is_marked_and_restored() {
        let outer = Arc::new(AtomicU8::new(0));
        let inner = Arc::new(AtomicU8::new(0));
        on_script(true); // no request: nothing to mark
        {
            let _a = Current::enter(&outer);
            {
                let _b = Current::enter(&inner);
                on_script(true);
            }
            assert_eq!(Waiting::from_u8(inner.load(Relaxed)), Waiting::Script);
            assert_eq!(Waiting::from_u8(outer.load(Relaxed)), Waiting::App);
            on_script(true);
            assert_eq!(Waiting::from_u8(outer.load(Relaxed)), Waiting::Script);
            on_script(false);
        }
        assert_eq!(Waiting::from_u8(outer.load(Relaxed)), Waiting::App);
        on_script(true);
        assert_eq!(Waiting::from_u8(outer.load(Relaxed)), Waiting::App);
        assert_eq!(Waiting::Script.as_str(), "script");
    }
}
