//! FastCGI 1.0: the pure protocol core ([`proto`]) and the socket server built on it ([`server`]).
//!
//! `proto` never does I/O; `server` only moves bytes between sockets and `proto`, and runs
//! the app through the gateway driver.

pub mod client;
pub mod proto;
pub mod server;

pub use proto::{
    CodecError, Connection, Event, Limits, ManagementValues, PairLimits, PairRange, PairsError,
    Params, ProtocolError, ProtocolStatus, Record, RecordType, Role, connection, pairs, record,
};
