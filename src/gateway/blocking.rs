//! Hints an app (or a gateway's I/O) gives about blocking, so a server can move other work off the thread.

use std::cell::{Cell, RefCell};

/// How a server runs a blocking section on its thread.
pub(crate) type Wrap = fn(&mut dyn FnMut());

thread_local! {
    static HOOK: RefCell<Option<Box<dyn Fn()>>> = const { RefCell::new(None) };
    static WRAP: Cell<Option<Wrap>> = const { Cell::new(None) };
}

/// Says that the current request is about to block for a while (a child process, a
/// database query, waiting on the network).
///
/// The FastCGI server runs requests inline on a few event-loop threads; when one of them
/// is about to wait, this hands the other ready connections to another thread at once
/// instead of after the watchdog's 2 ms. Under the other gateways it does nothing. Cheap:
/// call it freely.
pub fn about_to_block() {
    HOOK.with(|h| {
        if let Some(f) = h.borrow().as_ref() {
            f();
        }
    });
}

/// Runs `wait`, something that may block for a while (a `poll()` on a child process or a
/// backend, a query), and returns its result.
///
/// `cgate serve` runs requests inline on a few event-loop threads; while `wait` runs, the
/// thread's loop is handed to another thread, so its other connections go on. Elsewhere it
/// only runs `wait` (the FastCGI server moves work off on [`about_to_block`] instead). It
/// costs a thread hand-off under `serve`: wrap real waits, not every call.
pub fn blocking<R>(wait: impl FnOnce() -> R) -> R {
    let Some(wrap) = WRAP.with(Cell::get) else {
        return wait();
    };
    let mut wait = Some(wait);
    let mut out = None;
    wrap(&mut || {
        if let Some(w) = wait.take() {
            out = Some(w());
        }
    });
    match (out, wait) {
        (Some(r), _) => r,
        (None, Some(w)) => w(), // the wrapper did not run it: run it here
        (None, None) => unreachable!("a blocking section ran but gave no result"),
    }
}

/// Installs (or with `None`, removes) the current thread's handler for [`about_to_block`];
/// used by servers.
pub(crate) fn set_hook(hook: Option<Box<dyn Fn()>>) {
    HOOK.with(|h| *h.borrow_mut() = hook);
}

/// Installs (or with `None`, removes) how [`blocking`] runs its wait on the current thread;
/// used by servers.
pub(crate) fn set_wrap(wrap: Option<Wrap>) {
    WRAP.with(|w| w.set(wrap));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twice(f: &mut dyn FnMut()) {
        f();
        f(); // a second call must not run the wait again
    }

    #[test]
    fn a_wrapped_wait_runs_once_and_gives_its_result() {
        let mut runs = 0;
        assert_eq!(blocking(|| 7), 7);
        set_wrap(Some(twice));
        let r = blocking(|| {
            runs += 1;
            "done"
        });
        set_wrap(None);
        assert_eq!((r, runs), ("done", 1));
    }
}
