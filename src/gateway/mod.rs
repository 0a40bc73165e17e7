//! The application interface: app trait, environ, input, errors, response rules and the driver.

pub mod app;
pub mod blocking;
pub mod driver;
pub mod environ;
pub mod head;
pub mod input;
pub mod response;
pub mod sink;

pub use app::{App, AppError, Body, Chunks, FnApp, Request, app_fn};
pub use blocking::about_to_block;
pub use driver::run_app;
pub use environ::{Environ, GatewayFacts, GatewayKind};
pub use head::{Head, HeadError, Header};
pub use input::{BodyLength, Input, parse_content_length};
pub use response::{Outcome, Response, Sink};
pub use sink::{CgiSink, MemorySink, send_plain};
