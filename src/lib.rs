//! cgate: one application interface (PEP 3333 semantics in Rust) served by CGI, FastCGI and local testing gateways.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod gateway;

pub use gateway::{App, AppError, Body, Environ, Request, Response, app_fn};
