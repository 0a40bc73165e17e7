//! The one in-process app runner: an app run through the gateway driver into a sink, and
//! what came out (outcome, the sink, the error stream as text).

use std::io::Read;

use cgate::App;
use cgate::gateway::{
    BodyLength, Environ, Head, Input, MemorySink, Outcome, Request, Sink, run_app,
};

/// What one request produced.
pub struct Run<S = MemorySink> {
    /// The driver's outcome.
    pub outcome: Outcome,
    /// The sink, with everything sent to it.
    pub sink: S,
    /// The request's error stream.
    pub errors: String,
}

/// Runs `app` once for `env`, its body read from `body` up to `length`, into `sink`.
pub fn run_app_into<S: Sink>(
    app: &dyn App,
    env: Environ,
    body: &mut dyn Read,
    length: BodyLength,
    mut sink: S,
) -> Run<S> {
    let mut errors = Vec::new();
    let outcome = {
        let mut req = Request::new(env, Input::new(body, length), &mut errors);
        run_app(app, &mut req, &mut sink)
    };
    Run {
        outcome,
        sink,
        errors: String::from_utf8_lossy(&errors).into_owned(),
    }
}

impl Run<MemorySink> {
    /// The status code sent (0 without a head).
    pub fn status(&self) -> u16 {
        self.sink.head.as_ref().map_or(0, |h| h.code())
    }

    /// The status line sent, e.g. `200 OK` (empty without a head).
    pub fn status_line(&self) -> &str {
        self.sink.head.as_ref().map_or("", Head::status)
    }

    /// The first value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        let h = self.sink.head.as_ref()?;
        h.get(name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The header names, in order.
    pub fn header_names(&self) -> Vec<String> {
        let h = self.sink.head.as_ref().expect("a head was sent");
        h.headers().iter().map(|h| h.name.clone()).collect()
    }

    /// The headers as `(name, value)` text pairs, in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        headers(self.sink.head.as_ref().expect("a head was sent"))
    }
}

/// A head's headers as `(name, value)` text pairs, in order.
pub fn headers(head: &Head) -> Vec<(String, String)> {
    head.headers()
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                String::from_utf8_lossy(&h.value).into_owned(),
            )
        })
        .collect()
}
