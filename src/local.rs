//! The local testing gateway behind `cgate request`: a CGI request built from arguments.

use std::fs::File;
use std::io::{self, Read, Write};

use crate::gateway::head::{is_field_value, is_token};
use crate::gateway::{App, BodyLength, CgiSink, Environ, GatewayFacts, Input, Request, run_app};

/// A request described on the command line.
#[derive(Debug, Clone, Default)]
pub struct LocalRequest {
    /// HTTP method (default GET, or POST when there is a body).
    pub method: Option<String>,
    /// `Name: value` header lines.
    pub headers: Vec<String>,
    /// The body: text, `@FILE`, or `@-` for stdin.
    pub data: Option<String>,
    /// The request target: `/path?query`.
    pub target: String,
    /// SCRIPT_NAME for the app (default empty: the app is mounted at the root).
    pub script_name: String,
}

/// Why a local request could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A `-H` value is not `Name: value` with a token name and a clean value.
    #[error("invalid header {0:?} (expected 'Name: value')")]
    Header(String),
    /// The target does not start with `/`, or decodes to a NUL or an invalid escape.
    #[error("invalid target {0:?} (expected /path?query; %00 and bad escapes are refused)")]
    Target(String),
    /// The `@FILE` body could not be opened.
    #[error("cannot read body {0}: {1}")]
    Body(String, io::Error),
}

/// Decodes `%XX` escapes; refuses NUL and malformed escapes.
pub(crate) fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    (!out.contains(&0)).then_some(out)
}

/// The gateway facts of `cgate request`.
pub(crate) const LOCAL_FACTS: GatewayFacts = GatewayFacts::local();

/// A request as parts, turned into the environ a local run gives an app (shared by
/// `cgate request` and the test client).
pub(crate) struct Parts<'p> {
    pub(crate) method: Option<&'p str>,
    pub(crate) target: &'p str,
    pub(crate) script_name: &'p str,
    pub(crate) headers: &'p [(&'p str, &'p str)],
    pub(crate) body_len: Option<u64>,
}

impl Parts<'_> {
    /// The environ: CGI variables from the target, one `HTTP_*` per header (a name given
    /// twice, look-alikes included, marks it ambiguous: the driver answers 400).
    pub(crate) fn environ(&self, facts: GatewayFacts) -> Result<Environ, LocalError> {
        let bad_target = || LocalError::Target(self.target.to_owned());
        if !self.target.starts_with('/') {
            return Err(bad_target());
        }
        let (path, query) = self.target.split_once('?').unwrap_or((self.target, ""));
        let path_info = percent_decode(path.as_bytes()).ok_or_else(bad_target)?;
        let mut env = Environ::new(facts);
        let default = if self.body_len.is_some() {
            "POST"
        } else {
            "GET"
        };
        env.set("GATEWAY_INTERFACE", "CGI/1.1");
        env.set(
            "SERVER_SOFTWARE",
            concat!("cgate/", env!("CARGO_PKG_VERSION")),
        );
        env.set("SERVER_PROTOCOL", "HTTP/1.1");
        env.set("SERVER_NAME", "localhost");
        env.set("SERVER_PORT", if facts.https { "443" } else { "80" });
        env.set("REQUEST_SCHEME", facts.url_scheme());
        if facts.https {
            env.set("HTTPS", "on");
        }
        env.set("REMOTE_ADDR", "127.0.0.1");
        env.set("REQUEST_METHOD", self.method.unwrap_or(default));
        env.set("REQUEST_URI", self.target);
        env.set("SCRIPT_NAME", self.script_name);
        env.set("PATH_INFO", path_info);
        env.set("QUERY_STRING", query);
        if let Some(n) = self.body_len {
            env.set("CONTENT_LENGTH", n.to_string());
        }
        for &(name, value) in self.headers {
            if !is_token(name.as_bytes()) || !is_field_value(value.as_bytes()) {
                return Err(LocalError::Header(format!("{name}: {value}")));
            }
            let key = name.to_ascii_uppercase().replace('-', "_");
            match key.as_str() {
                "CONTENT_TYPE" => env.set("CONTENT_TYPE", value),
                "CONTENT_LENGTH" => {}
                "HOST" => {
                    env.add_header_var("HTTP_HOST", value);
                    let host = value.rsplit_once(':').map_or(value, |(h, _)| h);
                    env.set("SERVER_NAME", host);
                }
                _ => env.add_header_var(format!("HTTP_{key}"), value),
            }
        }
        Ok(env)
    }
}

enum Data {
    None,
    Bytes(Vec<u8>),
    File(File, u64),
}

impl LocalRequest {
    fn body(&self) -> Result<Data, LocalError> {
        match self.data.as_deref() {
            None => Ok(Data::None),
            Some("@-") => {
                let mut v = Vec::new();
                io::stdin()
                    .read_to_end(&mut v)
                    .map_err(|e| LocalError::Body("stdin".into(), e))?;
                Ok(Data::Bytes(v))
            }
            Some(d) if d.starts_with('@') => {
                let path = &d[1..];
                let f = File::open(path).map_err(|e| LocalError::Body(path.into(), e))?;
                let len = f
                    .metadata()
                    .map_err(|e| LocalError::Body(path.into(), e))?
                    .len();
                Ok(Data::File(f, len))
            }
            Some(d) => Ok(Data::Bytes(d.as_bytes().to_vec())),
        }
    }

    /// The environ this request gives an app.
    pub fn environ(&self, body_len: Option<u64>) -> Result<Environ, LocalError> {
        let mut headers = Vec::with_capacity(self.headers.len());
        for h in &self.headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| LocalError::Header(h.clone()))?;
            headers.push((name, value.trim_matches([' ', '\t'])));
        }
        let method = self.method.as_deref();
        let parts = Parts {
            method,
            target: &self.target,
            script_name: &self.script_name,
            headers: &headers,
            body_len,
        };
        parts.environ(LOCAL_FACTS)
    }

    /// Runs `app` on this request, writing the CGI response to `out` and log lines to `err`.
    /// Returns the exit code: 0 for a complete 1xx-3xx response, 1 otherwise.
    pub fn run(
        &self,
        app: &dyn App,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<i32, LocalError> {
        let data = self.body()?;
        let len = match &data {
            Data::None => None,
            Data::Bytes(b) => Some(b.len() as u64),
            Data::File(_, n) => Some(*n),
        };
        let env = self.environ(len)?;
        let mut empty: &[u8] = &[];
        let mut bytes_src;
        let mut file_src;
        let src: &mut dyn Read = match data {
            Data::None => &mut empty,
            Data::Bytes(b) => {
                bytes_src = io::Cursor::new(b);
                &mut bytes_src
            }
            Data::File(f, _) => {
                file_src = f;
                &mut file_src
            }
        };
        let input = Input::new(src, BodyLength::Exact(len.unwrap_or(0)));
        let mut req = Request::new(env, input, err);
        let mut sink = CgiSink::new(out);
        let outcome = run_app(app, &mut req, &mut sink);
        Ok(if outcome.complete && outcome.status < 400 {
            0
        } else {
            1
        })
    }
}
