//! Operations of `cgate fastcgi` against the real binary: option ranges, signals, start-up and access log lines, status and metrics, slow log, reload, sd_notify, privilege drop.

#[path = "../support/mod.rs"]
mod support;

#[allow(dead_code, unused_imports)]
#[path = "../fastcgi_wire/client.rs"]
mod client;
use support::fcgi_bytes;
#[allow(dead_code)]
#[path = "../fastcgi_wire/server.rs"]
mod server;

mod dead;
mod gauges;
mod harness;
mod logs;
mod options;
mod privs;
mod reload;
mod reload_cmd;
mod signals;
mod slow;
mod status;
mod systemd;
