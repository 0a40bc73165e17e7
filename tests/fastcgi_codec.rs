//! FastCGI protocol core: golden bytes for the record and pair codecs, round trips, and the connection.

#[path = "fastcgi_codec/client.rs"]
mod client;
#[path = "fastcgi_codec/codec.rs"]
mod codec;
#[path = "fastcgi_codec/connection.rs"]
mod connection;
#[path = "fastcgi_codec/decisions.rs"]
mod decisions;
#[path = "common/fcgi_bytes.rs"]
mod fcgi_bytes;
#[path = "fastcgi_codec/management.rs"]
mod management;
#[path = "fastcgi_codec/purity.rs"]
mod purity;
#[path = "fastcgi_codec/roundtrip.rs"]
mod roundtrip;
