//! Gzip middleware: compresses a streamed response on the fly when the client accepts gzip.

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::gateway::driver::drive;
use crate::gateway::{App, AppError, Body, Head, Request, Response, Sink};

/// Wraps an app and gzips its responses for clients whose Accept-Encoding allows gzip.
///
/// Each chunk the app produces is compressed and flushed at once (sync flush), so streaming
/// keeps working. Content-Length is dropped (the length changes), `Content-Encoding: gzip` is
/// set and `Vary: Accept-Encoding` is added to every response that could have been
/// compressed. Left alone: HEAD requests, 1xx/204/304, responses that already have a
/// Content-Encoding, and media types that are already compressed (images but SVG, audio,
/// video, zip/gzip archives).
pub struct Gzip<A> {
    inner: A,
    level: Compression,
}

impl<A: App> Gzip<A> {
    /// Gzip with the default level (6).
    pub fn new(inner: A) -> Self {
        Gzip {
            inner,
            level: Compression::default(),
        }
    }
}

/// `true` when an Accept-Encoding value allows gzip (`gzip` or `*` with a non-zero q).
pub fn accepts_gzip(accept: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(accept) else {
        return false;
    };
    let mut star = None;
    let mut gzip = None;
    for item in s.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q > 0.0),
            "*" => star = Some(q > 0.0),
            _ => {}
        }
    }
    gzip.or(star).unwrap_or(false)
}

fn compressible(head: &Head) -> bool {
    let code = head.code();
    if code < 200 || code == 204 || code == 304 || head.get("content-encoding").is_some() {
        return false;
    }
    let ct = head
        .get("content-type")
        .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
        .unwrap_or_default();
    let skip = (ct.starts_with("image/") && !ct.starts_with("image/svg"))
        || ct.starts_with("audio/")
        || ct.starts_with("video/")
        || ct.starts_with("application/zip")
        || ct.starts_with("application/gzip")
        || ct.starts_with("application/x-gzip");
    !skip
}

fn add_vary(head: &mut Head) {
    let has = head.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("vary")
            && String::from_utf8_lossy(&h.value)
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case("accept-encoding") || v.trim() == "*")
    });
    if !has {
        let _ = head.push("Vary", "Accept-Encoding");
    }
}

struct GzipSink<'o, 's> {
    outer: &'o mut Response<'s>,
    accept: bool,
    encoder: Option<GzEncoder<Vec<u8>>>,
    level: Compression,
}

impl GzipSink<'_, '_> {
    fn pass(&mut self) -> io::Result<()> {
        if let Some(enc) = self.encoder.as_mut() {
            let out = std::mem::take(enc.get_mut());
            self.outer.write(&out)?;
        }
        Ok(())
    }
}

impl Sink for GzipSink<'_, '_> {
    fn send_head(&mut self, head: &Head) -> io::Result<()> {
        let mut head = head.clone();
        if compressible(&head) {
            add_vary(&mut head);
            if self.accept {
                head.remove("content-length");
                let _ = head.push("Content-Encoding", "gzip");
                self.encoder = Some(GzEncoder::new(Vec::new(), self.level));
            }
        }
        self.outer.start_head(head).map_err(io::Error::other)
    }

    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()> {
        match self.encoder.as_mut() {
            Some(enc) => enc.write_all(chunk),
            None => self.outer.write(chunk),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(enc) = self.encoder.as_mut() {
            enc.flush()?;
        }
        self.pass()
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(enc) = self.encoder.take() {
            let out = enc.finish()?;
            self.outer.write(&out)?;
        }
        Ok(())
    }

    fn abort(&mut self) {
        self.encoder = None;
    }

    fn client_gone(&mut self) -> bool {
        self.outer.client_gone()
    }

    fn watch_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.outer.watch_fd()
    }
}

impl<A: App> App for Gzip<A> {
    fn call<'a>(
        &self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        let head_request = req.environ.method().eq_ignore_ascii_case("HEAD");
        let accept = !head_request
            && req
                .environ
                .get("HTTP_ACCEPT_ENCODING")
                .is_some_and(accepts_gzip);
        let mut sink = GzipSink {
            outer: resp,
            accept,
            encoder: None,
            level: self.level,
        };
        let mut inner = Response::new(&mut sink);
        drive(&self.inner, req, &mut inner)?;
        Ok(Body::Empty)
    }
}
