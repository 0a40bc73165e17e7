//! cgate: one application interface (PEP 3333 semantics in Rust) served by CGI, FastCGI and local testing gateways.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod gateway;

pub use gateway::{App, AppError, Body, Environ, Request, Response, app_fn};
pub mod apps;
pub mod cgi;
pub mod middleware;
pub mod net;
pub mod cli;
pub mod fastcgi;
pub mod local;

use std::sync::Arc;

/// Runs `app` behind the same command line as the `cgate` binary (`cgi`, `fastcgi`,
/// `request`, and auto-detection), and returns the exit code for `std::process::exit`.
pub fn run(app: impl App + 'static) -> i32 {
    cli::main_with(std::env::args_os(), Some(Arc::new(app)))
}
