//! Validate middleware: checks that the gateway and the app both keep the interface contract.

use crate::gateway::{App, AppError, Body, Request, Response, parse_content_length};

/// Wraps an app (in tests, typically) and fails the request with a clear error when either
/// side breaks the contract: the gateway's environ (required variables, path forms, strict
/// CONTENT_LENGTH, no `HTTP_CONTENT_*`, no `HTTP_PROXY`) or the app (returning without
/// `start`). Every violation is logged to the error stream as `validate: ...`.
pub struct Validate<A> {
    inner: A,
}

impl<A: App> Validate<A> {
    /// Wraps `inner`.
    pub fn new(inner: A) -> Self {
        Validate { inner }
    }
}

/// The environ rules a gateway must keep; returns the first one broken.
pub(crate) fn check_environ(req: &Request<'_>) -> Result<(), String> {
    let env = &req.environ;
    for name in [
        "REQUEST_METHOD",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
    ] {
        if env.get(name).is_none_or(<[u8]>::is_empty) {
            return Err(format!("environ lacks {name}"));
        }
    }
    for name in ["SCRIPT_NAME", "PATH_INFO"] {
        if let Some(v) = env.get(name) {
            if !v.is_empty() && v[0] != b'/' {
                return Err(format!("{name} must be empty or start with '/'"));
            }
        }
    }
    if env.script_name() == b"/" {
        return Err("SCRIPT_NAME must not be '/' (use an empty SCRIPT_NAME)".into());
    }
    if parse_content_length(env.get("CONTENT_LENGTH")).is_err() {
        return Err("malformed CONTENT_LENGTH reached the app".into());
    }
    for name in ["HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_PROXY"] {
        if env.get(name).is_some() {
            return Err(format!("environ must not hold {name}"));
        }
    }
    if req.input.content_length()
        != parse_content_length(env.get("CONTENT_LENGTH"))
            .ok()
            .flatten()
        && env.get("CONTENT_LENGTH").is_some_and(|v| !v.is_empty())
    {
        return Err("input length differs from CONTENT_LENGTH".into());
    }
    Ok(())
}

impl<A: App> App for Validate<A> {
    fn call<'a>(
        &'a self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        if let Err(e) = check_environ(req) {
            req.log(&format!("validate: gateway broke the contract: {e}"));
            return Err(AppError::msg(format!("validate: {e}")));
        }
        let body = self.inner.call(req, resp)?;
        if resp.pending_head().is_none() && !resp.headers_sent() {
            let e = "validate: app returned a body without calling start()";
            return Err(AppError::msg(e));
        }
        Ok(body)
    }
}
