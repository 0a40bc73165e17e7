//! FastCGI 1.0 protocol core, pure: record codec, name-value pairs and the sans-IO connection.
//!
//! Nothing here performs I/O, reads a clock or spawns a thread (a test checks the imports):
//! the server in [`super::server`] drives [`Connection`] with the bytes it reads and writes
//! the bytes it produces, and the forwarding client reuses the same codec.

pub mod connection;
mod management;
mod output;
pub mod pairs;
mod params;
pub mod record;
mod respond;

pub use connection::{
    Connection, Disposition, Event, Limits, ManagementValues, Params, Progress, ProtocolError,
};
pub use output::MGMT_OUTPUT_MAX;
pub use pairs::{PairLimits, PairRange, PairsError};
pub use record::{CodecError, ProtocolStatus, Record, RecordType, Role};
