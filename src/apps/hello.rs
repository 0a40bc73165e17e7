//! The `hello` app: 200 `text/plain; charset=utf-8` with `Hello, world!\n`.

use crate::gateway::{App, AppError, Body, Request, Response};

/// Answers every request with `Hello, world!\n`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Hello;

impl App for Hello {
    fn call<'a>(
        &self,
        _req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        resp.start("200 OK", [("Content-Type", "text/plain; charset=utf-8")])?;
        Ok(Body::from("Hello, world!\n"))
    }
}
