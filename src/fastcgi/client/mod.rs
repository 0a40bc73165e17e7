//! The FastCGI client (the web server's side): a pure exchange and the socket side under it.
//!
//! [`exchange`] holds every protocol decision (encoding, reply decoding, when a retry is
//! safe) without I/O; [`conn`] and [`request`] only move bytes. Used by `cgate call` and by
//! the `fcgi:` forwarding app.

mod buffers;
pub mod conn;
pub mod exchange;
mod handler;
pub mod request;
mod values;

pub use conn::{BackendAddr, Conn};
pub use exchange::{BackendValues, Exchange, Failure, Reply};
pub use request::{Call, CallError, End, Handler};
