//! Raw FastCGI records against the real `cgate` binary over Unix and TCP sockets, one test per threat.

mod support;

#[path = "fastcgi_wire/body_end.rs"]
mod body_end;
#[path = "fastcgi_wire/client.rs"]
mod client;
#[path = "common/fcgi_bytes.rs"]
mod fcgi_bytes;
#[path = "fastcgi_wire/framing.rs"]
mod framing;
#[path = "fastcgi_wire/hardening.rs"]
mod hardening;
#[path = "fastcgi_wire/lifecycle.rs"]
mod lifecycle;
#[path = "fastcgi_wire/limits.rs"]
mod limits;
#[path = "fastcgi_wire/metadata.rs"]
mod metadata;
#[path = "fastcgi_wire/protocol.rs"]
mod protocol;
#[path = "fastcgi_wire/server.rs"]
mod server;
#[path = "fastcgi_wire/sockets.rs"]
mod sockets;
#[path = "fastcgi_wire/watch.rs"]
mod watch;
