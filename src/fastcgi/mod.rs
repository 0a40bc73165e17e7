//! FastCGI 1.0: the pure protocol core ([`proto`], public: the codec for tests and fuzzing) and the socket server built on it (`server`, internal).
//!
//! `proto` never does I/O; `server` only moves bytes between sockets and `proto`, and runs
//! the app through the gateway driver.

pub mod client;
pub mod proto;
/// Not part of the API: reachable for the project's in-process server tests only.
#[doc(hidden)]
pub mod server;

pub use proto::{
    CodecError, Connection, Disposition, Event, Limits, MGMT_OUTPUT_MAX, ManagementValues,
    PairLimits, PairRange, PairsError, Params, Progress, ProtocolError, ProtocolStatus, Record,
    RecordType, Role, connection, pairs, record,
};
