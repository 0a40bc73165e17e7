//! cgate: one application interface (PEP 3333 semantics in Rust) served by CGI, FastCGI and local testing gateways.
//!
//! An app implements [`App`]: it reads the [`Request`] (environ, input, error stream), calls
//! [`Response::start`] and returns a [`Body`]. [`run`] serves it behind the same command line
//! as the `cgate` binary: `cgi`, `fastcgi --listen ADDR`, `request TARGET`, or auto-detection.
//!
//! ```
//! use cgate::{App, AppError, Body, Request, Response};
//!
//! struct Hi;
//!
//! impl App for Hi {
//!     fn call<'a>(&self, req: &'a mut Request<'_>, resp: &mut Response<'_>)
//!         -> Result<Body<'a>, AppError> {
//!         let who = req.environ.get_str("QUERY_STRING").unwrap_or("").to_owned();
//!         resp.start("200 OK", [("Content-Type", "text/plain")])?;
//!         Ok(Body::from(format!("hi {who}\n")))
//!     }
//! }
//!
//! // In a binary: `fn main() { std::process::exit(cgate::run(Hi)) }`.
//! // Here, the local gateway runs it once, as `cgate request '/?you'` would:
//! let req = cgate::local::LocalRequest { target: "/?you".into(), ..Default::default() };
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! assert_eq!(req.run(&Hi, &mut out, &mut err).unwrap(), 0);
//! assert_eq!(
//!     out,
//!     b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\nhi you\n"
//! );
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod apps;
pub mod cgi;
pub mod cli;
pub mod fastcgi;
pub mod gateway;
pub mod local;
pub mod middleware;
pub mod net;
pub mod os;
pub mod serve;

use std::sync::Arc;

pub use gateway::{App, AppError, Body, Environ, Request, Response, app_fn};

/// Runs `app` behind the same command line as the `cgate` binary (`cgi`, `fastcgi`,
/// `request`, and auto-detection), and returns the exit code for `std::process::exit`.
pub fn run(app: impl App + 'static) -> i32 {
    cli::main_with(std::env::args_os(), Some(Arc::new(app)))
}
