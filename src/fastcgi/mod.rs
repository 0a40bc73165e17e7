//! FastCGI 1.0: the pure protocol core ([`proto`], public: the codec for tests and fuzzing) and the socket server built on it (`server`, internal).
//!
//! `proto` never does I/O; `server` only moves bytes between sockets and `proto`, and runs
//! the app through the gateway driver.

pub mod proto;
pub(crate) mod server;

pub use proto::{
    CodecError, Connection, Event, Limits, ManagementValues, PairLimits, PairRange, PairsError,
    Params, ProtocolError, ProtocolStatus, Record, RecordType, Role, connection, pairs, record,
};
