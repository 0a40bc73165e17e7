//! The backend's CGI reply into the app's [`Response`]: the head parsed and validated, then
//! the body passed on one read batch at a time; FCGI_STDERR to the request's error stream.

use std::io::{self, Write};
use std::os::fd::BorrowedFd;

use crate::cgi::reply::{BodyRule, DEFAULT_MAX_HEADER_BYTES, Progress, ReplyParser};
use crate::fastcgi::client::Handler;
use crate::gateway::{Head, Response};

/// Most body bytes held before they are passed on (within one read batch).
const HOLD_LIMIT: usize = 256 * 1024;

/// One try's view of the response.
pub struct Bridge<'r, 's, 'e> {
    resp: &'r mut Response<'s>,
    errors: &'e mut dyn Write,
    st: BridgeState,
}

/// What a bridge knows between two turns of a parked request.
#[derive(Debug)]
pub struct BridgeState {
    parser: Option<ReplyParser>,
    body: BodyRule,
    held: Vec<u8>,
    /// Why the backend's reply head was refused (the caller answers 502).
    pub bad_reply: Option<String>,
    /// The response was handed over (head set): the request cannot be retried.
    pub started: bool,
}

impl Default for BridgeState {
    fn default() -> Self {
        BridgeState {
            parser: Some(ReplyParser::new(DEFAULT_MAX_HEADER_BYTES)),
            body: BodyRule::Forward,
            held: Vec::new(),
            bad_reply: None,
            started: false,
        }
    }
}

impl std::ops::Deref for Bridge<'_, '_, '_> {
    type Target = BridgeState;
    fn deref(&self) -> &BridgeState {
        &self.st
    }
}

impl std::ops::DerefMut for Bridge<'_, '_, '_> {
    fn deref_mut(&mut self) -> &mut BridgeState {
        &mut self.st
    }
}

impl<'r, 's, 'e> Bridge<'r, 's, 'e> {
    /// A bridge into `resp`, logging the backend's stderr to `errors`.
    pub fn new(resp: &'r mut Response<'s>, errors: &'e mut dyn Write) -> Self {
        Self::with_state(resp, errors, BridgeState::default())
    }

    /// A bridge that goes on from `st` (a parked request's next turn).
    pub fn with_state(
        resp: &'r mut Response<'s>,
        errors: &'e mut dyn Write,
        st: BridgeState,
    ) -> Self {
        Bridge { resp, errors, st }
    }

    /// What the bridge knows, for the next turn.
    pub fn into_state(self) -> BridgeState {
        self.st
    }

    fn refuse(&mut self, why: String) -> io::Error {
        self.parser = None;
        let e = io::Error::other(why.clone());
        self.bad_reply = Some(why);
        e
    }

    fn start(&mut self, progress: Progress) -> io::Result<()> {
        match progress {
            Progress::NeedMore => Ok(()),
            Progress::Error(e) => {
                Err(self.refuse(format!("invalid reply head from the backend: {e}")))
            }
            Progress::Head { head, body } => {
                self.parser = None;
                let head = Head::from_owned(&head.status, head.headers)
                    .map_err(|e| self.refuse(format!("reply head refused: {e}")))?;
                self.resp
                    .start_head(head)
                    .map_err(|e| self.refuse(e.to_string()))?;
                self.started = true;
                if self.body == BodyRule::Forward && self.held.is_empty() {
                    // The body bytes that came with the head are held as they are (no copy).
                    self.held = body;
                    return Ok(());
                }
                self.take_body(&body)
            }
        }
    }

    /// Body bytes after the head, by the head's rule (RFC 3875 6.3: a status-only reply
    /// has no body).
    fn take_body(&mut self, data: &[u8]) -> io::Result<()> {
        match self.body {
            BodyRule::Forward => self.held.extend_from_slice(data),
            BodyRule::Discard => {}
            BodyRule::MustBeEmpty if data.is_empty() => {}
            BodyRule::MustBeEmpty => {
                return Err(self.refuse("a body after a reply without Content-Type".into()));
            }
        }
        Ok(())
    }

    /// The reply ended (END_REQUEST): the head must be complete. Returns the body bytes
    /// still held, for the app to return as its final body.
    pub fn finish(&mut self) -> io::Result<Vec<u8>> {
        if let Some(mut p) = self.parser.take() {
            let progress = p.finish();
            self.start(progress)?;
            if !self.started {
                return Err(self.refuse("the backend's reply has no head".into()));
            }
        }
        Ok(std::mem::take(&mut self.held))
    }
}

impl Handler for Bridge<'_, '_, '_> {
    fn stdout(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(p) = self.parser.as_mut() {
            let progress = p.feed(data);
            if let Progress::Head { head, .. } = &progress {
                self.body = head.body;
            }
            return self.start(progress);
        }
        self.take_body(data)?;
        if self.held.len() >= HOLD_LIMIT {
            self.resp.write(&self.st.held)?;
            self.held.clear();
        }
        Ok(())
    }

    fn stderr(&mut self, data: &[u8]) {
        let _ = self.errors.write_all(data);
    }

    fn batch_end(&mut self, ended: bool) -> io::Result<()> {
        if !ended && !self.held.is_empty() {
            self.resp.write(&self.st.held)?;
            self.held.clear();
        }
        Ok(())
    }

    fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        self.resp.watch_fd()
    }

    fn client_gone(&mut self) -> bool {
        self.resp.client_gone()
    }

    fn about_to_wait(&mut self) {
        crate::gateway::about_to_block();
    }
}
