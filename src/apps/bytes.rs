//! The `bytes:N` app: N bytes of `x`, for measuring larger responses.

use std::borrow::Cow;
use std::sync::OnceLock;

use crate::gateway::{App, AppError, Body, Request, Response};

/// The largest N accepted by `bytes:N` (64 MiB).
pub const MAX_BYTES: usize = 64 << 20;

const BLOCK: usize = 1 << 20;

fn block() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| vec![b'x'; BLOCK])
}

/// Answers `200 OK`, `application/octet-stream`, with `len` bytes of `x`.
#[derive(Debug, Clone, Copy)]
pub struct Bytes {
    len: usize,
}

impl Bytes {
    /// An app answering `len` bytes (at most [`MAX_BYTES`]).
    pub fn new(len: usize) -> Option<Self> {
        (len <= MAX_BYTES).then_some(Bytes { len })
    }
}

impl App for Bytes {
    fn call<'a>(
        &self,
        _req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        let len = self.len.to_string();
        resp.start(
            "200 OK",
            [
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", len.as_str()),
            ],
        )?;
        if self.len <= BLOCK {
            return Ok(Body::Full(Cow::Borrowed(&block()[..self.len])));
        }
        let mut left = self.len;
        Ok(Body::stream(std::iter::from_fn(move || {
            let n = left.min(BLOCK);
            left -= n;
            (n > 0).then(|| Ok(block()[..n].to_vec()))
        })))
    }
}
