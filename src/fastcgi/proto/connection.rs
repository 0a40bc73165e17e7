//! Sans-IO FastCGI responder state machine for one connection: bytes in, events and bytes out.
//!
//! The caller (the socket server) feeds received bytes to [`Connection::process`], which
//! consumes whole records until it has something to say: [`Progress::NeedData`] (read
//! more), an [`Event`] for the application, or [`Progress::Transmit`] (write
//! [`Connection::transmit`] before feeding more). The application's answer goes in with
//! [`Connection::stdout`], [`Connection::stderr`] and [`Connection::end_request`] (or
//! [`Connection::cut`]) and comes out of [`Connection::transmit`], the shape of a
//! `poll_transmit`: the caller writes what it can and reports it with
//! [`Connection::transmitted`]; [`Connection::disposition`] says when to close.
//!
//! Every protocol decision is made here: the response waits until the peer has sent the
//! whole STDIN stream (a web server may stop reading while it still writes); a request the
//! app finished early drains the rest of its STDIN before END_REQUEST; ABORT_REQUEST at any
//! point; management replies bounded; a connection to close lingers while the peer may
//! still be writing. One request at a time is served per connection (no multiplexing): a
//! BEGIN_REQUEST for another id while one is active is answered with CANT_MPX_CONN.

use std::ops::Range;

use thiserror::Error;

use super::output::Output;
use super::pairs::{self, PairsError};
pub use super::params::{Limits, ManagementValues, Params};
use super::record::{
    self, CodecError, FCGI_KEEP_CONN, HEADER_LEN, NULL_REQUEST_ID, ProtocolStatus, Record,
    RecordType, Role,
};

/// What the peer's bytes meant for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The PARAMS stream of a new request ended: the request can start.
    Request {
        /// The request id used by the response records.
        request_id: u16,
        /// Whether FCGI_KEEP_CONN was set (the connection outlives the request).
        keep_conn: bool,
        /// The request's parameters.
        params: Params,
    },
    /// Request body bytes: this range of the input given to [`Connection::process`].
    Stdin(Range<usize>),
    /// The empty STDIN record: the request body is complete.
    StdinEnd,
    /// ABORT_REQUEST for the running request: stop the app, then call
    /// [`Connection::end_request`].
    Abort,
}

/// What [`Connection::process`] needs from its caller next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Every whole record in the input was consumed: read more bytes (and write
    /// [`Connection::transmit`] if it is not empty).
    NeedData,
    /// Something for the application.
    Event(Event),
    /// Write [`Connection::transmit`] before feeding more input: management replies reached
    /// their bound, or the end of STDIN released a finished response.
    Transmit,
}

/// What becomes of the socket once [`Connection::transmit`] is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// It carries more records.
    Open,
    /// Close it: the peer has nothing more to send.
    Close,
    /// Stop writing, then read and discard until the peer closes (or a time bound passes):
    /// the peer may still be sending, and closing at once could reset the reply away.
    Linger,
}

/// Violations after which the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The record layer failed (bad version, malformed BEGIN_REQUEST body).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The PARAMS stream or a GET_VALUES body could not be decoded within the limits.
    #[error("bad name-value pairs: {0}")]
    Pairs(#[from] PairsError),
    /// The PARAMS stream grew over [`Limits::max_params_bytes`].
    #[error("PARAMS stream over {0} bytes")]
    ParamsTooLarge(usize),
    /// BEGIN_REQUEST on the null request id, which belongs to management records.
    #[error("BEGIN_REQUEST on request id 0")]
    BeginOnNullId,
    /// BEGIN_REQUEST for the id that is already active.
    #[error("duplicate BEGIN_REQUEST for request {0}")]
    DuplicateBegin(u16),
    /// STDIN arrived before the PARAMS stream ended.
    #[error("STDIN before the end of PARAMS for request {0}")]
    StdinBeforeParams(u16),
    /// PARAMS arrived after the PARAMS stream ended.
    #[error("PARAMS after the end of PARAMS for request {0}")]
    ParamsAfterEnd(u16),
    /// STDIN arrived after the STDIN stream ended.
    #[error("STDIN after the end of STDIN for request {0}")]
    StdinAfterEnd(u16),
    /// The STDIN stream went past the bound set with [`Connection::limit_body`].
    #[error("request body longer than {0} bytes (declared or allowed)")]
    BodyTooLong(u64),
}

/// The request the application was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Req {
    pub id: u16,
    pub keep_conn: bool,
    pub stderr_sent: bool,
    /// STDIN content bytes received so far.
    pub body_seen: u64,
    /// Most STDIN content bytes accepted.
    pub body_max: u64,
}

impl Req {
    /// Counts `n` more body bytes against the bound.
    fn take(&mut self, n: usize) -> Result<(), ProtocolError> {
        self.body_seen = self.body_seen.saturating_add(n as u64);
        if self.body_seen > self.body_max {
            return Err(ProtocolError::BodyTooLong(self.body_max));
        }
        Ok(())
    }
}

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// No request is active.
    Idle,
    /// BEGIN_REQUEST accepted; the PARAMS stream is being collected.
    Params { id: u16, keep_conn: bool },
    /// The application has the request; its STDIN is still arriving (the response waits).
    Body(Req),
    /// The application has the request and all of its STDIN.
    Running(Req),
    /// The application finished before STDIN ended: the rest of STDIN is skipped to its
    /// empty record, then the waiting response (with END_REQUEST) goes out.
    Draining(Req),
    /// ABORT_REQUEST arrived; the application is stopping. `stdin_open`: the peer may
    /// still have STDIN records in flight.
    Aborted { req: Req, stdin_open: bool },
    /// Finished: what is queued goes out, then the socket closes; input is discarded.
    Closing { linger: bool },
}

/// Longest buffer capacity kept by [`Connection::recycle_params`] for reuse.
const RECYCLE_MAX_BYTES: usize = 64 * 1024;

/// The responder side of one FastCGI connection.
#[derive(Debug)]
pub struct Connection {
    pub(super) limits: Limits,
    pub(super) values: ManagementValues,
    pub(super) state: State,
    pub(super) params: Params,
    pub(super) out: Output,
}

impl Connection {
    /// A connection in its initial state, with no request active.
    pub fn new(limits: Limits, values: ManagementValues) -> Self {
        Self {
            limits,
            values,
            state: State::Idle,
            params: Params::default(),
            out: Output::default(),
        }
    }

    /// The id of the request in progress (collecting PARAMS, running, draining or
    /// aborted), if any.
    pub fn active_request(&self) -> Option<u16> {
        match self.state {
            State::Idle | State::Closing { .. } => None,
            State::Params { id, .. } => Some(id),
            State::Body(r) | State::Running(r) | State::Draining(r) => Some(r.id),
            State::Aborted { req, .. } => Some(req.id),
        }
    }

    /// True while the running request's STDIN is still arriving and the app may read it.
    pub fn stdin_open(&self) -> bool {
        matches!(self.state, State::Body(_))
    }

    /// True once ABORT_REQUEST arrived for the running request (until it is ended).
    pub fn aborted(&self) -> bool {
        matches!(self.state, State::Aborted { .. })
    }

    /// What becomes of the socket once [`Self::transmit`] is written.
    pub fn disposition(&self) -> Disposition {
        match self.state {
            State::Closing { linger: true } => Disposition::Linger,
            State::Closing { linger: false } => Disposition::Close,
            _ => Disposition::Open,
        }
    }

    /// Bounds the running request's STDIN stream to `max` content bytes (its
    /// CONTENT_LENGTH, or the server's body limit); more is a [`ProtocolError::BodyTooLong`].
    pub fn limit_body(&mut self, max: u64) {
        if let State::Body(req) | State::Running(req) = &mut self.state {
            req.body_max = max;
        }
    }

    /// Gives back a finished request's params so their buffers are reused by the next
    /// request (buffers over 64 KiB are dropped instead).
    pub fn recycle_params(&mut self, mut params: Params) {
        if params.raw.capacity() <= RECYCLE_MAX_BYTES
            && params.raw.capacity() >= self.params.raw.capacity()
        {
            params.raw.clear();
            params.pairs.clear();
            self.params = params;
        }
    }

    /// Consumes whole records from the front of `input` until there is something to report.
    ///
    /// Returns the bytes consumed and what the caller should do next. Records that need no
    /// answer from the application (management records, STDIN skipped while draining,
    /// records for other ids) are handled here. An error means the connection must be
    /// closed (after writing [`Self::transmit`], if desired).
    pub fn process(&mut self, input: &[u8]) -> Result<(usize, Progress), ProtocolError> {
        let mut used = 0;
        loop {
            if let State::Closing { .. } = self.state {
                return Ok((input.len(), Progress::NeedData));
            }
            if self.out.mgmt_full() {
                return Ok((used, Progress::Transmit));
            }
            let rest = input.get(used..).unwrap_or_default();
            let parsed = record::parse_record(rest).inspect_err(|_| self.fail())?;
            let Some((rec, n)) = parsed else {
                return Ok((used, Progress::NeedData));
            };
            let at = used + HEADER_LEN;
            used += n;
            match self.record(&rec, at) {
                Ok(None) => {}
                Ok(Some(progress)) => return Ok((used, progress)),
                Err(e) => {
                    self.fail();
                    return Err(e);
                }
            }
        }
    }

    /// After a protocol error: nothing more is consumed or answered, and a response still
    /// waiting for STDIN's end never goes out.
    fn fail(&mut self) {
        self.state = State::Closing { linger: false };
    }

    /// Handles one record whose content starts at input offset `at`.
    fn record(&mut self, rec: &Record<'_>, at: usize) -> Result<Option<Progress>, ProtocolError> {
        let id = rec.request_id;
        if id == NULL_REQUEST_ID {
            if rec.record_type == RecordType::BeginRequest {
                return Err(ProtocolError::BeginOnNullId);
            }
            self.management(rec.record_type, rec.content)?;
            return Ok(None);
        }
        let range = at..at + rec.content.len();
        match rec.record_type {
            RecordType::BeginRequest => self.begin(id, rec.content),
            RecordType::Params => self.params_record(id, rec.content),
            RecordType::Stdin => self.stdin_record(id, range),
            RecordType::AbortRequest => Ok(self.abort(id)),
            // DATA belongs to the Filter role; the rest are records a web server does not
            // send. None of them affect a responder.
            _ => Ok(None),
        }
    }

    /// Handles BEGIN_REQUEST.
    fn begin(&mut self, id: u16, content: &[u8]) -> Result<Option<Progress>, ProtocolError> {
        let (role, flags) = record::parse_begin_request(content)?;
        let keep_conn = flags & FCGI_KEEP_CONN != 0;
        match self.active_request() {
            Some(active) if active == id => return Err(ProtocolError::DuplicateBegin(id)),
            Some(_) => {
                let status = ProtocolStatus::CantMpxConn;
                record::encode_end_request(&mut self.out.mgmt, id, 0, status);
            }
            None if role != Role::Responder => {
                let status = ProtocolStatus::UnknownRole;
                record::encode_end_request(&mut self.out.mgmt, id, 0, status);
                if !keep_conn {
                    // Its PARAMS and STDIN may still be on the way.
                    self.state = State::Closing { linger: true };
                    return Ok(Some(Progress::Transmit));
                }
            }
            None => {
                self.params.raw.clear();
                self.params.pairs.clear();
                self.state = State::Params { id, keep_conn };
            }
        }
        Ok(None)
    }

    /// Handles a PARAMS record.
    fn params_record(
        &mut self,
        id: u16,
        content: &[u8],
    ) -> Result<Option<Progress>, ProtocolError> {
        match self.state {
            State::Params {
                id: active,
                keep_conn,
            } if active == id => {
                if !content.is_empty() {
                    let max = self.limits.max_params_bytes;
                    if content.len() > max.saturating_sub(self.params.raw.len()) {
                        return Err(ProtocolError::ParamsTooLarge(max));
                    }
                    self.params.raw.extend_from_slice(content);
                    return Ok(None);
                }
                let mut params = std::mem::take(&mut self.params);
                pairs::decode_pairs(&params.raw, &self.limits.pairs, &mut params.pairs)?;
                self.state = State::Body(Req {
                    id,
                    keep_conn,
                    stderr_sent: false,
                    body_seen: 0,
                    body_max: u64::MAX,
                });
                self.out.hold();
                Ok(Some(Progress::Event(Event::Request {
                    request_id: id,
                    keep_conn,
                    params,
                })))
            }
            State::Body(r) | State::Running(r) | State::Draining(r) if r.id == id => {
                Err(ProtocolError::ParamsAfterEnd(id))
            }
            _ => Ok(None),
        }
    }

    /// Handles a STDIN record whose content is `range` of the input.
    fn stdin_record(
        &mut self,
        id: u16,
        range: Range<usize>,
    ) -> Result<Option<Progress>, ProtocolError> {
        let n = range.len();
        match &mut self.state {
            State::Params { id: active, .. } if *active == id => {
                Err(ProtocolError::StdinBeforeParams(id))
            }
            State::Body(req) if req.id == id => {
                if n == 0 {
                    self.state = State::Running(*req);
                    self.out.held = false;
                    return Ok(Some(Progress::Event(Event::StdinEnd)));
                }
                req.take(n)?;
                Ok(Some(Progress::Event(Event::Stdin(range))))
            }
            State::Running(req) if req.id == id => Err(ProtocolError::StdinAfterEnd(id)),
            State::Draining(req) if req.id == id => {
                if n == 0 {
                    let req = *req;
                    self.release(req);
                    return Ok(Some(Progress::Transmit));
                }
                req.take(n)?;
                Ok(None)
            }
            State::Aborted { req, stdin_open } if req.id == id => {
                *stdin_open &= n != 0;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Handles ABORT_REQUEST.
    fn abort(&mut self, id: u16) -> Option<Progress> {
        match self.state {
            State::Params {
                id: active,
                keep_conn,
            } if active == id => {
                // The application never saw this request: end it here, in the response
                // queue, after what earlier requests left unsent (their records may carry
                // the same id; the management queue goes first).
                let status = ProtocolStatus::RequestComplete;
                record::encode_end_request(&mut self.out.resp, id, 0, status);
                self.state = if keep_conn {
                    State::Idle
                } else {
                    State::Closing { linger: false }
                };
                Some(Progress::Transmit)
            }
            State::Body(req) | State::Running(req) if req.id == id => {
                let stdin_open = matches!(self.state, State::Body(_));
                self.state = State::Aborted { req, stdin_open };
                self.out.held = false;
                Some(Progress::Event(Event::Abort))
            }
            State::Draining(req) if req.id == id => {
                // The response is complete; the peer wants no more STDIN skipped.
                self.release(req);
                Some(Progress::Transmit)
            }
            _ => None,
        }
    }

    /// The running request is over on the wire: its queued response may go out, then the
    /// connection is idle, or closing. A close always lingers (the writing side shut, what
    /// still arrives read and dropped until the peer closes or a bounded time passes): a
    /// peer may write more after its empty STDIN record (flup sends an empty FCGI_DATA), and
    /// closing a socket with unread bytes resets it, which the peer sees as EPIPE.
    pub(super) fn release(&mut self, req: Req) {
        self.out.held = false;
        self.state = if req.keep_conn {
            State::Idle
        } else {
            State::Closing { linger: true }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycle_keeps_small_buffers_only() {
        let values = ManagementValues {
            max_conns: 1,
            max_reqs: 1,
            mpxs_conns: false,
        };
        let mut conn = Connection::new(Limits::default(), values);
        conn.recycle_params(Params {
            raw: Vec::with_capacity(1024),
            pairs: vec![(0..1, 1..2)],
        });
        assert!(conn.params.raw.capacity() >= 1024);
        assert!(conn.params.pairs.is_empty());
        conn.recycle_params(Params {
            raw: Vec::with_capacity(RECYCLE_MAX_BYTES + 1),
            pairs: Vec::new(),
        });
        assert!(conn.params.raw.capacity() <= RECYCLE_MAX_BYTES);
    }
}
