//! Compression middleware on the transform hook: gzip and zstd chosen by Accept-Encoding q-values.

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::transform::{Filter, Transform};
use crate::gateway::{App, AppError, Body, Head, HeadError, Request, Response};

/// A content coding the middleware can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Coding {
    /// `gzip` (RFC 1952), level 6.
    Gzip,
    /// `zstd` (RFC 8878), level 3.
    Zstd,
}

impl Coding {
    /// The coding named `token` (`gzip`, `zstd`; any case).
    pub fn from_token(token: &str) -> Option<Coding> {
        match token.trim().to_ascii_lowercase().as_str() {
            "gzip" => Some(Coding::Gzip),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }

    /// The token used in Accept-Encoding and Content-Encoding.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Zstd => "zstd",
        }
    }
}

/// Compresses replies with the coding the client prefers among `codings`.
///
/// The choice follows the Accept-Encoding q-values (`*` counts for codings not named, `q=0`
/// refuses; ties go to the order of `codings`); no header, no compression. Every chunk the
/// app flushes is flushed through the encoder, so streams (`text/event-stream` included)
/// arrive chunk by chunk. Left alone: HEAD requests, 1xx/204/206/304, replies that already
/// have a Content-Encoding, a Content-Range or `Cache-Control: no-transform`, and media that
/// are compressed already. A compressed reply loses its Content-Length (a complete body gets
/// the compressed one), gets `Content-Encoding` and has a strong ETag made weak; every reply
/// whose form depends on Accept-Encoding (HEAD and 304 included) gets
/// `Vary: Accept-Encoding`.
pub struct Compress<A> {
    filter: Filter<A, Chooser>,
}

type Chooser = Box<dyn Fn(&Request<'_>) -> Option<Encode> + Send + Sync>;

impl<A: App> Compress<A> {
    /// Wraps `inner`, offering `codings` in this order of preference.
    pub fn new(inner: A, codings: &[Coding]) -> Self {
        let offered = codings.to_vec();
        let choose: Chooser = Box::new(move |req| {
            let head_request = req.environ.method().eq_ignore_ascii_case("HEAD");
            let coding = req
                .header("Accept-Encoding")
                .and_then(|a| choose(a, &offered))
                .filter(|_| !head_request);
            Some(Encode { coding, enc: None })
        });
        Compress {
            filter: Filter::new(inner, choose),
        }
    }
}

impl<A: App> App for Compress<A> {
    fn call<'a>(
        &'a self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        self.filter.call(req, resp)
    }
}

/// The q-value of one Accept-Encoding element (`None` when malformed).
fn qvalue(params: &str) -> Option<f32> {
    let mut q = 1.0;
    for p in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
            let ok = v.len() <= 5 && v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            q = v
                .parse::<f32>()
                .ok()
                .filter(|q| ok && (0.0..=1.0).contains(q))?;
        }
    }
    Some(q)
}

/// The coding to use for an Accept-Encoding value: the highest q above 0 among `offered`,
/// ties broken by the order of `offered`.
pub(crate) fn choose(accept: &[u8], offered: &[Coding]) -> Option<Coding> {
    let accept = std::str::from_utf8(accept).ok()?;
    let mut star = None;
    let mut named: Vec<(Coding, f32)> = Vec::new();
    for item in accept.split(',') {
        let (coding, params) = item.split_once(';').unwrap_or((item, ""));
        let Some(q) = qvalue(params) else { continue };
        match coding.trim().to_ascii_lowercase().as_str() {
            "*" => star = Some(q),
            "gzip" | "x-gzip" => named.push((Coding::Gzip, q)),
            "zstd" => named.push((Coding::Zstd, q)),
            _ => {}
        }
    }
    let q_of = |c: Coding| {
        named
            .iter()
            .find(|(n, _)| *n == c)
            .map(|&(_, q)| q)
            .or(star)
            .unwrap_or(0.0)
    };
    let mut best: Option<(Coding, f32)> = None;
    for &c in offered {
        let q = q_of(c);
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((c, q));
        }
    }
    best.map(|(c, _)| c)
}

/// Whether the reply's form could depend on Accept-Encoding at all.
fn negotiable(head: &Head) -> bool {
    let code = head.code();
    let ct = head
        .get("content-type")
        .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
        .unwrap_or_default();
    let precompressed = (ct.starts_with("image/") && !ct.starts_with("image/svg"))
        || [
            "audio/",
            "video/",
            "font/woff",
            "application/zip",
            "application/gzip",
        ]
        .iter()
        .chain(&["application/x-gzip", "application/zstd"])
        .any(|p| ct.starts_with(p));
    code >= 200
        && code != 204
        && code != 206
        && head.get("content-encoding").is_none()
        && head.get("content-range").is_none()
        && !head.has_token("cache-control", "no-transform")
        && !precompressed
}

enum Encoder {
    Gzip(GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    fn new(coding: Coding) -> io::Result<Self> {
        Ok(match coding {
            Coding::Gzip => Encoder::Gzip(GzEncoder::new(Vec::new(), Compression::new(6))),
            Coding::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?),
        })
    }

    /// Compresses `chunk`; with `flush`, flushes the encoder; moves its output to `out`.
    fn write(&mut self, chunk: &[u8], flush: bool, out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => {
                e.write_all(chunk)?;
                if flush {
                    e.flush()?;
                }
                out.append(e.get_mut());
            }
            Encoder::Zstd(e) => {
                e.write_all(chunk)?;
                if flush {
                    e.flush()?;
                }
                out.append(e.get_mut());
            }
        }
        Ok(())
    }

    fn finish(self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut rest = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Zstd(e) => e.finish()?,
        };
        out.append(&mut rest);
        Ok(())
    }
}

/// The per-request transform: `coding` is the client's choice, `enc` set once the head
/// shows the reply may be compressed.
struct Encode {
    coding: Option<Coding>,
    enc: Option<Encoder>,
}

impl Transform for Encode {
    fn head(&mut self, head: &mut Head) -> Result<(), HeadError> {
        if !negotiable(head) {
            return Ok(());
        }
        if !head.has_token("vary", "accept-encoding") && !head.has_token("vary", "*") {
            head.push("Vary", "Accept-Encoding")?;
        }
        let Some(coding) = self.coding.filter(|_| head.code() != 304) else {
            return Ok(());
        };
        let Ok(enc) = Encoder::new(coding) else {
            return Ok(());
        };
        head.remove("content-length");
        head.push("Content-Encoding", coding.token())?;
        if let Some(tag) = head.get("etag").filter(|t| t.starts_with(b"\"")) {
            let weak = [b"W/", tag].concat();
            head.set("ETag", weak)?;
        }
        self.enc = Some(enc);
        Ok(())
    }

    fn chunk(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        match self.enc.as_mut() {
            Some(e) => e.write(chunk, false, out),
            None => {
                out.extend_from_slice(chunk);
                Ok(())
            }
        }
    }

    fn flush(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        match self.enc.as_mut() {
            Some(e) => e.write(&[], true, out),
            None => Ok(()),
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        match self.enc.take() {
            Some(e) => e.finish(out),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_follows_q_values() {
        let both = [Coding::Zstd, Coding::Gzip];
        let cases: [(&str, Option<Coding>); 11] = [
            ("gzip", Some(Coding::Gzip)),
            ("zstd, gzip", Some(Coding::Zstd)),
            ("gzip;q=1, zstd;q=0.5", Some(Coding::Gzip)),
            ("gzip;q=0.5, zstd;q=0.9", Some(Coding::Zstd)),
            ("*", Some(Coding::Zstd)),
            ("*;q=0.1, zstd;q=0", Some(Coding::Gzip)),
            ("gzip;q=0, zstd;q=0", None),
            ("br, identity", None),
            ("x-gzip;Q=0.3", Some(Coding::Gzip)),
            ("gzip;q=2, zstd;q=abc", None),
            ("", None),
        ];
        for (accept, want) in cases {
            assert_eq!(choose(accept.as_bytes(), &both), want, "{accept:?}");
        }
        assert_eq!(choose(b"zstd, gzip", &[Coding::Gzip]), Some(Coding::Gzip));
        assert_eq!(
            choose(b"gzip, zstd", &[Coding::Gzip, Coding::Zstd]),
            Some(Coding::Gzip)
        );
    }
}
