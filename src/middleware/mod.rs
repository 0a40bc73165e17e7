//! Middleware: apps that wrap apps (prefix router, compression, validation, error pages) and the transform hook they build on.
//!
//! Two kinds, both plain [`App`](crate::App)s holding an app:
//!
//! - **call or refuse**: look at the request, answer or fail yourself, or call
//!   `self.inner.call(req, resp)` (after changing the environ, as [`Router`] moves PATH_INFO
//!   to SCRIPT_NAME). The inner app's body is returned as is, so nothing is copied.
//! - **rewrite the reply**: a [`Transform`] run by [`Filter`] sees the head before it is sent
//!   (whenever the inner app called `start` and `write`), then every chunk, every flush and
//!   the end; [`Compress`] is one (gzip and zstd in about a hundred lines with the HTTP
//!   rules), adding a header is five.
//!
//! Errors keep their meaning through both: an inner error before the first byte still
//! becomes its status page (or [`ErrorPage`]'s), after it the reply is cut.

mod compress;
mod router;
mod transform;
mod validate;

pub use compress::{Coding, Compress};
pub use router::Router;
pub use transform::{ErrorPage, Filter, Transform};
pub use validate::Validate;
