//! Middleware: apps that wrap apps (prefix router, compression, validation, error pages) and the transform hook they build on.

pub mod compress;
pub mod router;
pub mod transform;
pub mod validate;

pub use compress::{Coding, Compress};
pub use router::Router;
pub use transform::{ErrorPage, Filter, Transform};
pub use validate::Validate;
