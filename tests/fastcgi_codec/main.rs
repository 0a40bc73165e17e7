//! FastCGI protocol core: golden bytes for the record and pair codecs, round trips, and the connection.

#[path = "../support/mod.rs"]
mod support;

use support::fcgi_bytes;

mod client;
mod codec;
mod connection;
mod decisions;
mod management;
mod purity;
mod roundtrip;
