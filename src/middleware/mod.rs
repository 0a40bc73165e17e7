//! Middleware: apps that wrap apps (prefix router, gzip, contract validation).

pub mod gzip;
pub mod router;
pub mod validate;

pub use gzip::Gzip;
pub use router::Router;
pub use validate::Validate;
