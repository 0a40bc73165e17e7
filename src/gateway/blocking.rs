//! A hint an app (or a gateway's I/O) gives before it blocks, so a server can move other work off the thread.

use std::cell::RefCell;

thread_local! {
    static HOOK: RefCell<Option<Box<dyn Fn()>>> = const { RefCell::new(None) };
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

/// Installs (or with `None`, removes) the current thread's handler for [`about_to_block`];
/// used by servers.
pub(crate) fn set_hook(hook: Option<Box<dyn Fn()>>) {
    HOOK.with(|h| *h.borrow_mut() = hook);
}
