//! The application interface: app trait, environ, input, errors, response rules and the driver.

pub mod app;
pub mod blocking;
pub mod deferred;
pub mod driver;
pub mod environ;
pub mod error;
pub mod head;
pub mod input;
pub mod request;
pub mod response;
pub mod rules;
pub mod sink;
pub mod status;

pub use app::{App, Body, Chunks, app_fn};
pub use blocking::{about_to_block, blocking};
pub use deferred::{Deferred, Interest, Step, Turn, Wake};
pub use driver::run_app;
pub use environ::{Environ, GatewayFacts, GatewayKind};
pub use error::AppError;
pub use head::{Head, HeadError, Header, HeaderValue, IntoHeaders};
pub use input::{BodyLength, Input, parse_content_length};
pub use request::{Form, Request, form_decode};
pub use response::{Outcome, Response, Sink};
pub use sink::{CgiSink, MemorySink, send_plain};
pub use status::{IntoStatus, Status};
