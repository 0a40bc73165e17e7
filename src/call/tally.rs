//! What `cgate call --repeat` counts: each reply's status (its body dropped), and per run the latencies, errors and the first error.

use std::io;
use std::time::Duration;

use super::{EXIT_MET, verdict};
use crate::cgi::reply::{Progress, ReplyParser};
use crate::fastcgi::client::request::Handler;

/// Only the status is kept; the body is read and dropped.
pub(super) struct StatusOnly {
    parser: Option<ReplyParser>,
    /// The reply's status, once its head came.
    pub status: Option<u16>,
    /// The first FCGI_STDERR bytes.
    pub stderr: Vec<u8>,
}

impl StatusOnly {
    /// Ready for a reply.
    pub fn new() -> StatusOnly {
        StatusOnly {
            parser: Some(ReplyParser::new(
                crate::cgi::reply::DEFAULT_MAX_HEADER_BYTES,
            )),
            status: None,
            stderr: Vec::new(),
        }
    }
}

impl Handler for StatusOnly {
    fn stdout(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(p) = self.parser.as_mut() {
            match p.feed(data) {
                Progress::NeedMore => return Ok(()),
                Progress::Head { head, .. } => {
                    self.status = crate::gateway::head::parse_status(&head.status).ok();
                }
                Progress::Error(_) => {}
            }
            self.parser = None;
        }
        Ok(())
    }

    fn stderr(&mut self, data: &[u8]) {
        let room = STDERR_KEPT.saturating_sub(self.stderr.len());
        self.stderr.extend_from_slice(&data[..data.len().min(room)]);
    }
}

/// FCGI_STDERR bytes kept per request, shown with the first error.
const STDERR_KEPT: usize = 1024;

/// What the load measured.
#[derive(Default)]
pub(super) struct Tally {
    /// Each answered or failed request's time, in the order they ended.
    pub latencies: Vec<Duration>,
    /// Requests counted, those that failed together included.
    pub requests: u64,
    /// Requests that did not meet the expectation (or failed).
    pub errors: u64,
    /// Requests that got no reply (connection or protocol failures).
    pub failures: u64,
    /// The first error, for the summary.
    pub first_error: Option<String>,
}

impl Tally {
    /// Counts one request: its time and its status (or why it failed).
    pub fn count(
        &mut self,
        took: Duration,
        result: Result<Option<u16>, String>,
        expect: Option<u16>,
    ) {
        self.latencies.push(took);
        self.requests += 1;
        let failed = match result {
            Ok(status) if verdict(status, expect) == EXIT_MET => return,
            Ok(status) => format!("status {status:?}"),
            Err(e) => e,
        };
        self.errors += 1;
        self.first_error.get_or_insert(failed);
    }

    /// Counts `n` requests that failed together for `why`.
    pub fn fail_all(&mut self, why: &str, n: usize) {
        self.requests += n as u64;
        self.errors += n as u64;
        self.failures += n as u64;
        self.first_error.get_or_insert_with(|| why.to_owned());
    }
}
