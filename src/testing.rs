//! A test client for app authors: one-line requests run through the real driver, wrapped in Validate.
//!
//! ```
//! use cgate::testing::TestRequest;
//! let app = cgate::app_fn(|req, resp| {
//!     let name = req.query().get("name").unwrap_or("you").to_owned();
//!     resp.start(200, [("Content-Type", "text/plain")])?;
//!     Ok(format!("hi {name}\n").into())
//! });
//! let r = TestRequest::get("/?name=Ann+B").run(&app);
//! assert_eq!((r.status, r.text().as_str()), (200, "hi Ann B\n"));
//! assert_eq!(r.header("content-length"), Some("9"));
//! assert!(r.complete);
//! ```

use std::io::Cursor;

use crate::gateway::{App, BodyLength, GatewayFacts, Input, MemorySink, Request, Status, run_app};
use crate::local::Parts;
use crate::middleware::Validate;

/// A request to run an app on: method, target (`/path?query`), headers and body.
#[derive(Debug, Clone)]
pub struct TestRequest {
    method: String,
    target: String,
    script_name: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    https: bool,
}

impl TestRequest {
    /// A request with any method.
    pub fn new(method: &str, target: &str) -> Self {
        TestRequest {
            method: method.to_owned(),
            target: target.to_owned(),
            script_name: String::new(),
            headers: Vec::new(),
            body: None,
            https: false,
        }
    }

    /// A GET request.
    pub fn get(target: &str) -> Self {
        TestRequest::new("GET", target)
    }

    /// A POST request with a body.
    pub fn post(target: &str, body: impl Into<Vec<u8>>) -> Self {
        TestRequest::new("POST", target).body(body)
    }

    /// Adds a header (`Content-Type` becomes CONTENT_TYPE, others `HTTP_*`).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body (and CONTENT_LENGTH).
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Mounts the app at `script_name` (SCRIPT_NAME; PATH_INFO is the target's path).
    #[must_use]
    pub fn script_name(mut self, script_name: &str) -> Self {
        self.script_name = script_name.to_owned();
        self
    }

    /// Marks the request as arriving over HTTPS.
    #[must_use]
    pub fn https(mut self) -> Self {
        self.https = true;
        self
    }

    /// Runs `app` (wrapped in [`Validate`]) on this request through the gateways' driver.
    ///
    /// # Panics
    /// When the request itself is invalid (a target not starting with `/`, a header name
    /// that is not a token): a mistake in the test.
    #[must_use]
    pub fn run(&self, app: &dyn App) -> TestResponse {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let body_len = self.body.as_ref().map(|b| b.len() as u64);
        let parts = Parts {
            method: Some(&self.method),
            target: &self.target,
            script_name: &self.script_name,
            headers: &headers,
            body_len,
        };
        let facts = GatewayFacts::local().with_https(self.https);
        let env = parts
            .environ(facts)
            .unwrap_or_else(|e| panic!("invalid test request: {e}"));
        let mut src = Cursor::new(self.body.as_deref().unwrap_or_default());
        let mut errors = Vec::new();
        let mut sink = MemorySink::default();
        let validated = Validate::new(app);
        {
            let input = Input::new(&mut src, BodyLength::Exact(body_len.unwrap_or(0)));
            let mut req = Request::new(env, input, &mut errors);
            let _ = run_app(&validated, &mut req, &mut sink);
        }
        TestResponse::from_sink(sink, &errors)
    }
}

/// What the app answered, as a client would have seen it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TestResponse {
    /// The status code (0 when no head was sent).
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The headers in order, names as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body.
    pub body: Vec<u8>,
    /// The body as it was flushed to the client, one entry per flush.
    pub chunks: Vec<Vec<u8>>,
    /// Lines written to the error stream (the app's and the gateway's).
    pub errors: Vec<String>,
    /// The response ended cleanly on the wire; `false`: it was cut after it started. (An app
    /// error answered with its status page is complete: see `status` and `errors`.)
    pub complete: bool,
}

impl TestResponse {
    fn from_sink(sink: MemorySink, errors: &[u8]) -> Self {
        let (status, reason, headers) = match &sink.head {
            Some(h) => (
                h.code(),
                h.reason().to_owned(),
                h.headers()
                    .iter()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            ),
            None => (0, String::new(), Vec::new()),
        };
        TestResponse {
            status,
            reason,
            headers,
            body: sink.body,
            chunks: sink.flushes,
            errors: String::from_utf8_lossy(errors)
                .lines()
                .map(str::to_owned)
                .collect(),
            complete: sink.finished && !sink.aborted,
        }
    }

    /// The status as a [`Status`] (`None` when no head was sent).
    pub fn status(&self) -> Option<Status> {
        Status::new(self.status)
    }

    /// The first value of header `name` (any case), when it is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of header `name` (any case), as bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The header names in order.
    pub fn header_names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
    }
}
