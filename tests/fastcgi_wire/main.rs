//! Raw FastCGI records against the real `cgate` binary over Unix and TCP sockets, one test per threat.

#[path = "../support/mod.rs"]
mod support;

use support::fcgi_bytes;

mod body_end;
mod client;
mod framing;
mod hardening;
mod lifecycle;
mod limits;
mod metadata;
mod protocol;
mod server;
mod sockets;
mod stopping;
mod watch;
