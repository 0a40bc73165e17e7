//! The per-request environ: CGI meta-variables as bytes, plus the gateway facts beside them.

use std::ops::Range;

/// Which gateway produced a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayKind {
    /// Classic CGI (RFC 3875): environment variables and stdin.
    Cgi,
    /// FastCGI responder over a socket.
    FastCgi,
    /// `cgate request`: built from the command line for local testing.
    Local,
    /// `cgate serve`: HTTP straight from a client.
    Http,
}

impl GatewayKind {
    /// The lower-case name used in diagnostics (`cgi`, `fastcgi`, `local`, `http`).
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayKind::Cgi => "cgi",
            GatewayKind::FastCgi => "fastcgi",
            GatewayKind::Local => "local",
            GatewayKind::Http => "http",
        }
    }
}

/// Facts about the gateway that are not CGI variables (PEP 3333's `wsgi.*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayFacts {
    /// The gateway serving this request.
    pub kind: GatewayKind,
    /// `true` when the request came over HTTPS (`HTTPS=on|1` or `REQUEST_SCHEME=https`).
    pub https: bool,
    /// Other requests may run at the same time in other threads of this process.
    pub multithread: bool,
    /// Other processes may serve the same application at the same time.
    pub multiprocess: bool,
    /// The process serves this one request and exits.
    pub run_once: bool,
}

impl GatewayFacts {
    /// A CGI run: one request per process, maybe several processes.
    pub const fn cgi() -> Self {
        GatewayFacts {
            kind: GatewayKind::Cgi,
            https: false,
            multithread: false,
            multiprocess: true,
            run_once: true,
        }
    }

    /// The FastCGI responder: one process, many threads, many requests each.
    pub const fn fastcgi() -> Self {
        GatewayFacts {
            kind: GatewayKind::FastCgi,
            https: false,
            multithread: true,
            multiprocess: false,
            run_once: false,
        }
    }

    /// The facts of the gateway `kind` (one of [`GatewayFacts::cgi`], [`GatewayFacts::fastcgi`],
    /// [`GatewayFacts::local`], [`GatewayFacts::http`]).
    pub const fn new(kind: GatewayKind) -> Self {
        match kind {
            GatewayKind::Cgi => GatewayFacts::cgi(),
            GatewayKind::FastCgi => GatewayFacts::fastcgi(),
            GatewayKind::Local => GatewayFacts::local(),
            GatewayKind::Http => GatewayFacts::http(),
        }
    }

    /// `cgate serve`: one process, many threads, many requests each, HTTP from the client.
    pub const fn http() -> Self {
        GatewayFacts {
            kind: GatewayKind::Http,
            https: false,
            multithread: true,
            multiprocess: false,
            run_once: false,
        }
    }

    /// `cgate request` and the test client: one request in this process.
    pub const fn local() -> Self {
        GatewayFacts {
            kind: GatewayKind::Local,
            https: false,
            multithread: false,
            multiprocess: false,
            run_once: true,
        }
    }

    /// The same facts with `https` set.
    #[must_use]
    pub const fn with_https(mut self, https: bool) -> Self {
        self.https = https;
        self
    }

    /// `"https"` or `"http"`.
    pub fn url_scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

/// The CGI meta-variables of one request, kept as raw bytes.
///
/// Names and values may hold any bytes (non-UTF-8 survives); [`Environ::get_str`] gives a
/// `&str` view where the bytes are valid UTF-8. Setting a name that is already present
/// replaces it. From a gateway, a repeated variable follows the operator's last word (the
/// last one wins) except a request header: an `HTTP_*` name that arrives twice (a repeated
/// header, or look-alikes such as `X-Forwarded-For` and `X_Forwarded_For`) is ambiguous, and
/// the request is refused with 400 before any app runs. `HTTP_PROXY` is never stored
/// (httpoxy). All pairs live in one buffer, so building an environ costs two allocations.
#[derive(Debug, Clone)]
pub struct Environ {
    buf: Vec<u8>,
    vars: VarIndex,
    /// The first request-header name that arrived twice.
    ambiguous: Option<Range<usize>>,
    /// Bytes at the start of SCRIPT_NAME that name a mount point (see
    /// [`Environ::mount_point`]).
    mount: usize,
    /// Facts about the gateway that produced this request.
    pub gateway: GatewayFacts,
}

/// `(name, value)` byte ranges into an environ's buffer.
pub type VarIndex = Vec<(Range<usize>, Range<usize>)>;

/// The one variable name that is dropped on the way in (CVE-2016-5385 family).
pub const HTTPOXY: &[u8] = b"HTTP_PROXY";

/// Names a gateway drops from what the web server hands over: `HTTP_PROXY` (httpoxy), and
/// the `Content-Type` / `Content-Length` headers as `HTTP_*` copies (nginx passes every
/// header that way), which PEP 3333 keeps out of the environ: the body's type and length
/// are `CONTENT_TYPE` and `CONTENT_LENGTH` only.
pub const DROPPED_ON_INPUT: &[&[u8]] = &[HTTPOXY, b"HTTP_CONTENT_TYPE", b"HTTP_CONTENT_LENGTH"];

impl Environ {
    /// An empty environ for the given gateway facts.
    pub fn new(gateway: GatewayFacts) -> Self {
        Environ {
            buf: Vec::new(),
            vars: Vec::new(),
            ambiguous: None,
            mount: 0,
            gateway,
        }
    }

    /// An empty environ on the memory of an earlier one ([`Environ::into_parts`]), so a
    /// gateway that builds one per request reuses its buffer and index.
    pub fn reuse((mut buf, mut vars): (Vec<u8>, VarIndex), gateway: GatewayFacts) -> Self {
        buf.clear();
        vars.clear();
        Environ {
            buf,
            vars,
            ambiguous: None,
            mount: 0,
            gateway,
        }
    }

    /// Builds an environ from a buffer and an index of `(name, value)` ranges into it, as the
    /// FastCGI params decoder produces them, without copying. Later duplicates win, but an
    /// `HTTP_*` name given twice keeps its first value and marks the environ ambiguous (see
    /// [`Environ::ambiguous_header`]); ranges outside the buffer and the names in
    /// [`DROPPED_ON_INPUT`] are dropped.
    pub fn from_indexed(buf: Vec<u8>, pairs: VarIndex, gateway: GatewayFacts) -> Self {
        let mut env = Environ {
            buf,
            vars: Vec::with_capacity(pairs.len()),
            ambiguous: None,
            mount: 0,
            gateway,
        };
        for (n, v) in pairs {
            let (Some(name), Some(_)) = (env.buf.get(n.clone()), env.buf.get(v.clone())) else {
                continue;
            };
            if DROPPED_ON_INPUT.contains(&name) {
                continue;
            }
            if let Some(i) = env.position(name) {
                if name.starts_with(b"HTTP_") {
                    env.ambiguous.get_or_insert(n);
                    continue;
                }
                env.vars.remove(i);
            }
            env.vars.push((n, v));
        }
        env
    }

    /// Sets a request header's `HTTP_*` variable as a gateway does: a name already present
    /// is not replaced and marks the environ ambiguous.
    pub fn add_header_var(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let name = name.as_ref();
        if self.position(name).is_some() {
            if self.ambiguous.is_none() {
                let start = self.buf.len();
                self.buf.extend_from_slice(name);
                self.ambiguous = Some(start..self.buf.len());
            }
            return;
        }
        self.set(name, value);
    }

    /// The first `HTTP_*` name that a gateway received twice, if any: such a request is
    /// answered 400 without calling the app, since either copy may be a client's look-alike.
    pub fn ambiguous_header(&self) -> Option<&[u8]> {
        self.buf.get(self.ambiguous.clone()?)
    }

    /// Gives back the buffer and the index (emptied) so a gateway can reuse their memory.
    pub fn into_parts(mut self) -> (Vec<u8>, VarIndex) {
        self.buf.clear();
        self.vars.clear();
        (self.buf, self.vars)
    }

    fn position(&self, name: &[u8]) -> Option<usize> {
        self.vars
            .iter()
            .position(|(n, _)| self.buf.get(n.clone()) == Some(name))
    }

    /// Sets `name` to `value`, replacing an earlier value. `HTTP_PROXY` is ignored. Setting
    /// `SCRIPT_NAME` clears its mount point.
    pub fn set(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let name = name.as_ref();
        let Some(var) = self.append(name, value.as_ref()) else {
            return;
        };
        match self.position(name) {
            Some(i) => self.vars[i] = var,
            None => self.vars.push(var),
        }
    }

    /// Stores `name` and `value` in the buffer and returns their ranges; `None` for
    /// `HTTP_PROXY`, which is never stored. Storing `SCRIPT_NAME` clears its mount point.
    fn append(&mut self, name: &[u8], value: &[u8]) -> Option<(Range<usize>, Range<usize>)> {
        if name == HTTPOXY {
            return None;
        }
        if name == b"SCRIPT_NAME" {
            self.mount = 0;
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(name);
        let mid = self.buf.len();
        self.buf.extend_from_slice(value);
        Some((start..mid, mid..self.buf.len()))
    }

    /// Adds `name`, which the caller knows is not set yet (a gateway filling a fresh environ
    /// with distinct names): [`Environ::set`] without its search for an earlier value.
    /// `HTTP_PROXY` is ignored.
    pub fn push_new(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (name, value) = (name.as_ref(), value.as_ref());
        debug_assert!(
            self.position(name).is_none(),
            "push_new of a name already set"
        );
        if let Some(var) = self.append(name, value) {
            self.vars.push(var);
        }
    }

    /// Removes `name`; returns whether it was present.
    pub fn remove(&mut self, name: impl AsRef<[u8]>) -> bool {
        match self.position(name.as_ref()) {
            Some(i) => {
                self.vars.remove(i);
                true
            }
            None => false,
        }
    }

    /// The raw value of `name`.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        let name = name.as_ref();
        self.vars.iter().find_map(|(n, v)| {
            if self.buf.get(n.clone()) == Some(name) {
                self.buf.get(v.clone())
            } else {
                None
            }
        })
    }

    /// The value of `name` when it is valid UTF-8.
    pub fn get_str(&self, name: impl AsRef<[u8]>) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All `(name, value)` pairs, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.vars
            .iter()
            .filter_map(|(n, v)| Some((self.buf.get(n.clone())?, self.buf.get(v.clone())?)))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// `true` when there are no variables.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// `true` when `HTTPS` is `on`/`1` (any case) or `REQUEST_SCHEME` is `https`.
    pub fn detect_https(&self) -> bool {
        let on = |v: Option<&[u8]>| v.is_some_and(|v| v.eq_ignore_ascii_case(b"on") || v == b"1");
        on(self.get("HTTPS"))
            || self
                .get("REQUEST_SCHEME")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"https"))
    }

    /// `REQUEST_METHOD`, or `GET` when absent or not UTF-8.
    pub fn method(&self) -> &str {
        self.get_str("REQUEST_METHOD").unwrap_or("GET")
    }

    /// `PATH_INFO` as bytes (empty when absent).
    pub fn path_info(&self) -> &[u8] {
        self.get("PATH_INFO").unwrap_or_default()
    }

    /// `SCRIPT_NAME` as bytes (empty when absent).
    pub fn script_name(&self) -> &[u8] {
        self.get("SCRIPT_NAME").unwrap_or_default()
    }

    /// Marks the whole of the current `SCRIPT_NAME` as a mount point: a URL prefix an app
    /// was mounted at (by [`Router`](crate::middleware::Router)), which names no file. An
    /// app that maps URL paths to files (`cgi:DIR`) maps only what follows it.
    pub fn set_mount_point(&mut self) {
        self.mount = self.script_name().len();
    }

    /// The leading part of `SCRIPT_NAME` that is a mount point ([`Environ::set_mount_point`]);
    /// empty unless a router mounted the app (a gateway's own `SCRIPT_NAME` may name a file).
    pub fn mount_point(&self) -> &[u8] {
        self.script_name().get(..self.mount).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> GatewayFacts {
        GatewayFacts::local()
    }

    #[test]
    fn last_duplicate_wins_and_httpoxy_is_dropped() {
        let mut e = Environ::new(facts());
        e.set("A", "1");
        e.set("HTTP_PROXY", "evil");
        e.set("A", b"\xff2");
        assert_eq!(e.get("A"), Some(&b"\xff2"[..]));
        assert_eq!(e.get_str("A"), None);
        assert_eq!(e.get("HTTP_PROXY"), None);
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn from_indexed_keeps_bytes_and_order() {
        let buf = b"AxByAzHTTP_PROXYq".to_vec();
        let pairs = vec![
            (0..1, 1..2),
            (2..3, 3..4),
            (4..5, 5..6),
            (6..16, 16..17),
            (0..1, 99..100),
        ];
        let e = Environ::from_indexed(buf, pairs, facts());
        let all: Vec<_> = e.iter().collect();
        assert_eq!(all, vec![(&b"B"[..], &b"y"[..]), (&b"A"[..], &b"z"[..])]);
    }

    #[test]
    fn from_indexed_drops_http_content_copies() {
        let buf = b"HTTP_CONTENT_TYPEtHTTP_CONTENT_LENGTH5CONTENT_LENGTH5".to_vec();
        let pairs = vec![(0..17, 17..18), (18..37, 37..38), (38..52, 52..53)];
        let e = Environ::from_indexed(buf, pairs, facts());
        let all: Vec<_> = e.iter().collect();
        assert_eq!(all, vec![(&b"CONTENT_LENGTH"[..], &b"5"[..])]);
    }

    #[test]
    fn request_header_given_twice_is_ambiguous() {
        let buf = b"HTTP_X_FORWARDED_FOR10.0.0.1HTTP_X_FORWARDED_FOR6.6.6.6AxAy".to_vec();
        let pairs = vec![
            (0..20, 20..28),
            (28..48, 48..55),
            (55..56, 56..57),
            (57..58, 58..59),
        ];
        let e = Environ::from_indexed(buf, pairs, facts());
        assert_eq!(e.ambiguous_header(), Some(&b"HTTP_X_FORWARDED_FOR"[..]));
        assert_eq!(e.get("HTTP_X_FORWARDED_FOR"), Some(&b"10.0.0.1"[..]));
        assert_eq!(e.get("A"), Some(&b"y"[..]), "other names: the last wins");
        let mut e = Environ::new(facts());
        e.add_header_var("HTTP_A", "1");
        assert_eq!(e.ambiguous_header(), None);
        e.add_header_var("HTTP_A", "2");
        assert_eq!(e.ambiguous_header(), Some(&b"HTTP_A"[..]));
        assert_eq!(e.get("HTTP_A"), Some(&b"1"[..]));
    }

    #[test]
    fn https_detection() {
        let mut e = Environ::new(facts());
        assert!(!e.detect_https());
        e.set("HTTPS", "ON");
        assert!(e.detect_https());
        e.set("HTTPS", "off");
        assert!(!e.detect_https());
        e.set("REQUEST_SCHEME", "https");
        assert!(e.detect_https());
    }

    #[test]
    fn reuse_keeps_the_memory_and_nothing_else() {
        let mut e = Environ::new(facts());
        e.set("SCRIPT_NAME", "/app");
        e.set_mount_point();
        e.set("HTTP_X", "1");
        let cap = e.buf.capacity();
        let mut e = Environ::reuse(e.into_parts(), facts());
        assert!(e.is_empty() && e.mount_point().is_empty());
        assert_eq!(e.buf.capacity(), cap);
        e.push_new("A", "1");
        e.push_new("HTTP_PROXY", "http://evil/");
        e.push_new("B", "");
        let got: Vec<_> = e.iter().collect();
        assert_eq!(got, [(&b"A"[..], &b"1"[..]), (&b"B"[..], &b""[..])]);
        e.set("A", "2");
        assert_eq!((e.get("A"), e.len()), (Some(&b"2"[..]), 2));
    }
}
