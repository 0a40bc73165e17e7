//! Listening addresses and the few OS calls the server needs.

pub mod addr;
pub mod listener;
pub mod sys;

pub use addr::ListenAddr;
