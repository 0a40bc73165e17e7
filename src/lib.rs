//! cgate: one application interface (PEP 3333 semantics in Rust) served by CGI, FastCGI and local testing gateways.
//!
//! An app implements [`App`]: it reads the [`Request`], calls [`Response::start`] and returns
//! a [`Body`]. [`run`] serves it behind the same command line as the `cgate` binary: `cgi`,
//! `fastcgi --listen ADDR`, `request TARGET`, or auto-detection. [`testing`] runs it in a
//! test without any server.
//!
//! ```
//! use cgate::{App, AppError, Body, Request, Response, Status};
//!
//! struct Hi {
//!     greeting: String,
//! }
//!
//! impl App for Hi {
//!     fn call<'a>(&'a self, req: &'a mut Request<'_>, resp: &mut Response<'_>)
//!         -> Result<Body<'a>, AppError> {
//!         if req.environ.method() != "GET" {
//!             return Err(AppError::method_not_allowed("GET"));
//!         }
//!         resp.start(Status::OK, [("Content-Type", "text/plain")])?;
//!         Ok(Body::from(self.greeting.as_str())) // borrowed from the app: no copy
//!     }
//! }
//!
//! // In a binary: `fn main() { std::process::exit(cgate::run(Hi { .. })) }`.
//! let app = Hi { greeting: "hi\n".into() };
//! let r = cgate::testing::TestRequest::get("/").run(&app);
//! assert_eq!((r.status, r.text().as_str()), (200, "hi\n"));
//! assert_eq!(cgate::testing::TestRequest::new("PUT", "/").run(&app).header("allow"), Some("GET"));
//! ```
//!
//! # From WSGI
//!
//! | PEP 3333 | cgate |
//! |---|---|
//! | `application(environ, start_response)` | [`App::call`]`(&self, req, resp)`, or [`app_fn`] for a closure |
//! | `environ` (CGI keys) | [`Request::environ`]: an [`Environ`] of raw bytes (`get`, `get_str`, `method`, `path_info`, `script_name`) |
//! | `wsgi.url_scheme`, `wsgi.multithread`, `wsgi.multiprocess`, `wsgi.run_once` | [`Environ::gateway`]: [`GatewayFacts`] |
//! | `wsgi.input` | [`Request::input`]: an [`Input`] (`std::io::Read`) that ends at CONTENT_LENGTH; [`Request::read_body`] caps it (413) |
//! | `wsgi.errors` | [`Request::errors`] (a `Write`), [`Request::log`] |
//! | `start_response(status, headers)` | [`Response::start`]`(Status::OK \| 200 \| "200 OK", headers)`: validated at once, sent with the first body byte |
//! | `start_response(..., exc_info)` | call [`Response::start`] again before the first byte, or return an [`AppError`]: its status is answered |
//! | the returned iterable | [`Body`]: `Full` (gets a Content-Length), `Stream` (each chunk flushed), `File`, `Empty` |
//! | `write(data)` from `start_response` | [`Response::write`]: sent and flushed at once |
//! | `close()` on the iterable | `Drop` of the body's iterator, and [`Request::on_close`] (runs on every path) |
//! | `wsgi.file_wrapper` | [`Body::file`]: sendfile on CGI stdout |
//! | an exception | an [`AppError`] (`?` on any error: 500; [`AppError::bad_request`], [`AppError::not_found`], ...), or a panic (caught: 500) |
//! | `wsgiref.util` | [`Request::query`], [`Request::read_form`], [`Request::header`], [`Request::shift_path_info`], [`Request::request_uri`], [`Request::url`] |
//! | middleware | an app holding apps: [`middleware::Router`], [`middleware::Compress`], [`middleware::Validate`], [`middleware::ErrorPage`]; response rewriting with [`middleware::Transform`] |
//!
//! The rules of PEP 3333 hold at one boundary: hop-by-hop headers, CR/LF/NUL and a second
//! or non-numeric Content-Length are refused by `start`; a body longer than its
//! Content-Length is truncated; errors before the first byte become a clean answer, after it
//! the response is cut. The FastCGI codec is the documented [`fastcgi`] module (for tests and
//! fuzzing).
#![deny(unsafe_code)]
#![deny(missing_docs)]

#[doc(hidden)]
pub mod apps;
pub(crate) mod call;
/// Not part of the API: the CGI reply parser, reachable for the fuzz targets and their regression tests.
#[doc(hidden)]
pub mod cgi;
pub(crate) mod cli;
pub mod fastcgi;
#[doc(hidden)]
pub mod gateway;
/// Not part of the API: the local gateway, reachable for the fuzz regression tests.
#[doc(hidden)]
pub mod local;
pub mod middleware;
/// Not part of the API: reachable for the project's in-process server tests only.
#[doc(hidden)]
pub mod net;
pub(crate) mod ops;
pub(crate) mod os;
pub(crate) mod serve;
pub mod testing;

use std::sync::Arc;

pub use gateway::{
    App, AppError, Body, Deferred, Environ, Form, GatewayFacts, GatewayKind, Head, HeadError,
    Header, HeaderValue, Input, Interest, IntoHeaders, IntoStatus, Request, Response, Status, Step,
    Turn, Wake, about_to_block, app_fn, blocking,
};

/// Runs `app` behind the same command line as the `cgate` binary (`cgi`, `fastcgi`,
/// `request`, and auto-detection), and returns the exit code for `std::process::exit`.
pub fn run(app: impl App + 'static) -> i32 {
    cli::main_with(std::env::args_os(), Some(Arc::new(app)))
}

/// The `cgate` binary's entry point: runs the command line with the built-in apps.
#[doc(hidden)]
pub fn main() -> i32 {
    cli::main()
}
