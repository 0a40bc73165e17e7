//! The environ of one HTTP request, as an nginx `fastcgi_params` setup gives it (pure: no I/O).
//!
//! `REQUEST_URI` is the target as sent; `PATH_INFO` and `DOCUMENT_URI` are its path
//! percent-decoded, with `//` merged and `.`/`..` segments resolved (nginx's `$uri`);
//! `SCRIPT_NAME` is empty (a `--mount` moves its prefix there). Header fields become `HTTP_*`
//! (names of letters, digits and `-` only, as nginx's `ignore_invalid_headers`; repeated
//! fields joined with `, `, cookies with `; `), except `Proxy` (httpoxy), `Content-Type`,
//! `Content-Length` and `Transfer-Encoding`, which the body variables replace.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::Version;
use hyper::http::request::Parts;

use crate::gateway::{Environ, GatewayFacts};

/// The gateway facts of `cgate serve`.
pub const SERVE_FACTS: GatewayFacts = GatewayFacts::http();

/// `SERVER_SOFTWARE` under `cgate serve`.
pub const SOFTWARE: &str = concat!("cgate/", env!("CARGO_PKG_VERSION"));

/// Why a request was refused before any app ran (always a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// The target's path is not `/...` (e.g. `*`).
    #[error("the request target must be a path starting with /")]
    NotAPath,
    /// A `%` not followed by two hex digits.
    #[error("bad percent-escape in the path")]
    BadEscape,
    /// The decoded path holds a NUL byte.
    #[error("NUL byte in the path")]
    Nul,
    /// `..` would climb above the root.
    #[error("the path climbs above the root")]
    AboveRoot,
}

/// The two ends of the connection a request came in on.
#[derive(Debug, Clone, Copy)]
pub struct Peers {
    /// Our end (SERVER_ADDR, SERVER_PORT).
    pub local: SocketAddr,
    /// The client's end (REMOTE_ADDR, REMOTE_PORT).
    pub remote: SocketAddr,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes; refuses malformed escapes and NUL.
pub fn percent_decode(s: &[u8]) -> Result<Vec<u8>, BadRequest> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'%' {
            let hi = s.get(i + 1).copied().and_then(hex);
            let lo = s.get(i + 2).copied().and_then(hex);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(BadRequest::BadEscape);
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err(BadRequest::Nul);
    }
    Ok(out)
}

/// nginx's `$uri` from a raw path: decoded, `//` merged, `.` and `..` resolved; a path that
/// ends in `/`, `/.` or `/..` keeps a trailing `/`.
pub fn normalize_path(raw: &[u8]) -> Result<Vec<u8>, BadRequest> {
    if raw.first() != Some(&b'/') {
        return Err(BadRequest::NotAPath);
    }
    let decoded = percent_decode(raw)?;
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing = false;
    for seg in decoded.split(|&b| b == b'/').skip(1) {
        trailing = matches!(seg, b"" | b"." | b"..");
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop().ok_or(BadRequest::AboveRoot)?;
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if trailing || out.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// `true` for a header name nginx passes on: letters, digits and `-`.
fn passed_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Header fields that never become `HTTP_*`.
const NOT_PASSED: [&str; 4] = [
    "proxy",
    "content-type",
    "content-length",
    "transfer-encoding",
];

/// `HTTP_` + the name upper-cased with `-` as `_`, into `out` (cleared first).
fn meta_name(name: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"HTTP_");
    out.extend(name.bytes().map(|b| match b {
        b'-' => b'_',
        b => b.to_ascii_uppercase(),
    }));
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

/// The host part of a `Host` value (`name`, `name:port`, `[v6]:port`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(host, |(h, _)| h);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// The transport variables of one connection, as text: formatted once per connection, not
/// once per request.
#[derive(Debug, Clone)]
pub struct PeerText {
    remote_addr: Arc<str>,
    remote_port: String,
    server_addr: String,
    server_port: String,
}

impl From<Peers> for PeerText {
    fn from(p: Peers) -> PeerText {
        PeerText {
            remote_addr: p.remote.ip().to_string().into(),
            remote_port: p.remote.port().to_string(),
            server_addr: p.local.ip().to_string(),
            server_port: p.local.port().to_string(),
        }
    }
}

impl PeerText {
    /// REMOTE_ADDR: the client's address.
    pub fn remote_addr(&self) -> &Arc<str> {
        &self.remote_addr
    }
}

/// [`build_into`] a new environ (for tests).
#[cfg(test)]
pub fn build(parts: &Parts, peers: Peers, length: Option<u64>) -> Result<Environ, BadRequest> {
    build_into(Environ::new(SERVE_FACTS), parts, &peers.into(), length)
}

/// Builds the environ of a request into `env`, an empty environ whose memory is reused (a
/// connection's previous request's, emptied by [`Environ::into_parts`]); `length` is the
/// body's declared Content-Length (none for a chunked body or no body: `CONTENT_LENGTH` is
/// then empty, as nginx passes it). Every name is set once: the fixed ones differ, and
/// header names are distinct, lower-case and of letters, digits and `-`, so their `HTTP_*`
/// names differ too.
pub fn build_into(
    mut env: Environ,
    parts: &Parts,
    peers: &PeerText,
    length: Option<u64>,
) -> Result<Environ, BadRequest> {
    debug_assert!(env.is_empty(), "build_into fills an empty environ");
    let uri = &parts.uri;
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let path = normalize_path(uri.path().as_bytes())?;
    let h = &parts.headers;
    let text = |name: hyper::header::HeaderName| h.get(name).map_or(&b""[..], |v| v.as_bytes());
    env.gateway = SERVE_FACTS;
    env.push_new("QUERY_STRING", uri.query().unwrap_or(""));
    env.push_new("REQUEST_METHOD", parts.method.as_str());
    env.push_new("CONTENT_TYPE", text(hyper::header::CONTENT_TYPE));
    match length {
        Some(n) => env.push_new("CONTENT_LENGTH", n.to_string()),
        None => env.push_new("CONTENT_LENGTH", ""),
    }
    env.push_new("SCRIPT_NAME", "");
    env.push_new("PATH_INFO", &path);
    env.push_new("REQUEST_URI", target);
    env.push_new("DOCUMENT_URI", &path);
    env.push_new("SERVER_PROTOCOL", protocol(parts.version));
    env.push_new("REQUEST_SCHEME", "http");
    env.push_new("GATEWAY_INTERFACE", "CGI/1.1");
    env.push_new("SERVER_SOFTWARE", SOFTWARE);
    env.push_new("REMOTE_ADDR", &*peers.remote_addr);
    env.push_new("REMOTE_PORT", &peers.remote_port);
    env.push_new("SERVER_ADDR", &peers.server_addr);
    env.push_new("SERVER_PORT", &peers.server_port);
    let host = uri
        .host()
        .or_else(|| Some(host_name(h.get(hyper::header::HOST)?.to_str().ok()?)))
        .filter(|s| !s.is_empty())
        .unwrap_or(&peers.server_addr);
    env.push_new("SERVER_NAME", host);
    let (mut name_buf, mut value) = (Vec::new(), Vec::new());
    for name in h.keys() {
        let n = name.as_str();
        if !passed_name(n) || NOT_PASSED.contains(&n) {
            continue;
        }
        meta_name(n, &mut name_buf);
        let mut all = h.get_all(name).iter();
        let (Some(first), None) = (all.next(), all.next()) else {
            let sep: &[u8] = if n == "cookie" { b"; " } else { b", " };
            value.clear();
            for (i, v) in h.get_all(name).iter().enumerate() {
                if i > 0 {
                    value.extend_from_slice(sep);
                }
                value.extend_from_slice(v.as_bytes());
            }
            env.push_new(&name_buf, &value);
            continue;
        };
        env.push_new(&name_buf, first.as_bytes());
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: hyper::http::request::Builder) -> Parts {
        req.body(()).expect("valid request").into_parts().0
    }

    fn peers() -> Peers {
        Peers {
            local: "127.0.0.1:8080".parse().expect("addr"),
            remote: "127.0.0.1:40000".parse().expect("addr"),
        }
    }

    #[test]
    fn paths_normalize_as_nginx_uri() {
        let ok = |raw: &str, want: &str| {
            assert_eq!(
                normalize_path(raw.as_bytes()),
                Ok(want.as_bytes().to_vec()),
                "{raw}"
            )
        };
        ok("/", "/");
        ok("/a/b", "/a/b");
        ok("/a//b/", "/a/b/");
        ok("/a/./b/../c", "/a/c");
        ok("/a/b/..", "/a/");
        ok("/a/.", "/a/");
        ok("/a%20b/%2e%2e/c", "/c");
        ok("/x%2Fy", "/x/y");
        ok("/%C3%A9", "/\u{e9}");
        let bad = |raw: &str, e: BadRequest| assert_eq!(normalize_path(raw.as_bytes()), Err(e));
        bad("/..", BadRequest::AboveRoot);
        bad("/a/../../b", BadRequest::AboveRoot);
        bad("/a%00b", BadRequest::Nul);
        bad("/a%zz", BadRequest::BadEscape);
        bad("/a%2", BadRequest::BadEscape);
        bad("*", BadRequest::NotAPath);
    }

    #[test]
    fn nginx_fastcgi_params() {
        let p = parts(
            hyper::Request::post("/a%20b/./c?x=1&y")
                .header("Host", "example.test:8080")
                .header("Content-Type", "text/plain")
                .header("Content-Length", "5")
                .header("X-Multi", "1")
                .header("X-Multi", "2")
                .header("Cookie", "a=1")
                .header("Cookie", "b=2")
                .header("Proxy", "http://evil")
                .header("X_Under", "dropped"),
        );
        let env = build(&p, peers(), Some(5)).expect("environ");
        let got: Vec<(String, String)> = env
            .iter()
            .map(|(n, v)| {
                let s = |b: &[u8]| String::from_utf8(b.to_vec()).expect("utf-8");
                (s(n), s(v))
            })
            .collect();
        let want = [
            ("QUERY_STRING", "x=1&y"),
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_TYPE", "text/plain"),
            ("CONTENT_LENGTH", "5"),
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", "/a b/c"),
            ("REQUEST_URI", "/a%20b/./c?x=1&y"),
            ("DOCUMENT_URI", "/a b/c"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_SCHEME", "http"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_SOFTWARE", SOFTWARE),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("REMOTE_PORT", "40000"),
            ("SERVER_ADDR", "127.0.0.1"),
            ("SERVER_PORT", "8080"),
            ("SERVER_NAME", "example.test"),
            ("HTTP_HOST", "example.test:8080"),
            ("HTTP_X_MULTI", "1, 2"),
            ("HTTP_COOKIE", "a=1; b=2"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(env.gateway, SERVE_FACTS);
    }

    #[test]
    fn chunked_has_no_length_and_no_host_falls_back() {
        let p = parts(
            hyper::Request::put("/")
                .version(Version::HTTP_10)
                .header("Transfer-Encoding", "chunked"),
        );
        let env = build(&p, peers(), None).expect("environ");
        assert_eq!(env.get("CONTENT_LENGTH"), Some(&b""[..]));
        assert_eq!(env.get("HTTP_TRANSFER_ENCODING"), None);
        assert_eq!(env.get_str("SERVER_NAME"), Some("127.0.0.1"));
        assert_eq!(env.get_str("SERVER_PROTOCOL"), Some("HTTP/1.0"));
        assert_eq!(env.get_str("PATH_INFO"), Some("/"));
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("a.test"), "a.test");
        assert_eq!(host_name("a.test:81"), "a.test");
        assert_eq!(host_name("[::1]:81"), "::1");
        assert_eq!(host_name("[::1]"), "::1");
    }
}
