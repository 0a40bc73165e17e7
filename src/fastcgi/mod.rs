//! FastCGI 1.0 responder protocol core: record codec, name-value pairs and the sans-IO connection.
//!
//! Nothing in this module performs I/O, reads a clock or spawns a thread; the socket
//! server drives [`Connection`] with the bytes it reads and writes the bytes it produces.

pub mod connection;
pub mod pairs;
pub mod pool;
pub mod record;
pub mod request;
pub mod responder;
pub mod server;
pub mod spool;

pub use connection::{Connection, Event, Limits, ManagementValues, Params, ProtocolError};
pub use pairs::{PairLimits, PairRange, PairsError};
pub use record::{CodecError, ProtocolStatus, Record, RecordType, Role};
