//! Listening addresses (unix:, path, host:port, fd:N, systemd) and the listener/stream types.

pub mod addr;
pub mod listener;

pub use addr::ListenAddr;
