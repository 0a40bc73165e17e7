//! The `echo` app: a diagnostic JSON of the environ, the gateway facts and the body's sha256 (an HTML page for browsers).

mod html;

use std::io::Read;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::gateway::{App, AppError, Body, Request, Response};

/// Answers 200 `application/json`:
/// `{"environ": {...}, "gateway": {...}, "input": {"length": N, "sha256": "<hex>"}}`.
///
/// The body is hashed while it streams in, never held in memory. Environ bytes that are not
/// UTF-8 are shown decoded as ISO-8859-1 (one char per byte, as PEP 3333 does), under
/// `environ`; their names are listed in `non_utf8`. A body that ends before its
/// CONTENT_LENGTH gets a 400 with the error.
///
/// A client whose `Accept` prefers `text/html` to `application/json` (a browser) gets the
/// same facts as a readable HTML page instead (`text/html; charset=utf-8`, `Vary: Accept`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The bytes as text: UTF-8 when valid (`true`), else ISO-8859-1, one char per byte.
fn text(b: &[u8]) -> (String, bool) {
    match std::str::from_utf8(b) {
        Ok(s) => (s.to_owned(), true),
        Err(_) => (b.iter().map(|&c| char::from(c)).collect(), false),
    }
}

impl App for Echo {
    fn call<'a>(
        &self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        let mut hasher = Sha256::new();
        let mut length: u64 = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match req.input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    length += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let body = json!({ "error": e.to_string(), "received": length });
                    resp.start("400 Bad Request", [("Content-Type", "application/json")])?;
                    return Ok(Body::from(format!("{body}\n")));
                }
            }
        }
        let sha256 = hex(&hasher.finalize());
        if html::wanted(req.environ.get("HTTP_ACCEPT")) {
            let page = html::page(&req.environ, length, &sha256);
            resp.start(
                "200 OK",
                [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Vary", "Accept"),
                ],
            )?;
            return Ok(Body::from(page));
        }
        let mut environ = Map::new();
        let mut non_utf8 = Vec::new();
        for (n, v) in req.environ.iter() {
            let (name, ok_n) = text(n);
            let (value, ok_v) = text(v);
            if !(ok_n && ok_v) {
                non_utf8.push(Value::String(name.clone()));
            }
            environ.insert(name, Value::String(value));
        }
        let g = req.environ.gateway;
        let mut out = json!({
            "environ": environ,
            "gateway": {
                "kind": g.kind.as_str(),
                "url_scheme": g.url_scheme(),
                "multithread": g.multithread,
                "multiprocess": g.multiprocess,
                "run_once": g.run_once,
            },
            "input": { "length": length, "sha256": sha256 },
        });
        if !non_utf8.is_empty() {
            out["non_utf8"] = Value::Array(non_utf8);
        }
        resp.start("200 OK", [("Content-Type", "application/json")])?;
        Ok(Body::from(format!("{out}\n")))
    }
}
