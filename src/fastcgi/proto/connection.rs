//! Sans-IO FastCGI responder state machine for one connection: bytes in, events and bytes out.
//!
//! The caller (the socket server) feeds received bytes to [`Connection::process`], which
//! consumes at most one record per call and may return an [`Event`]. Management replies
//! are queued in [`Connection::output`]; response records for the active request are
//! appended by [`Connection::stdout`], [`Connection::stderr`] and
//! [`Connection::end_request`] to a buffer of the caller's choice, so a small response can
//! leave in one write. One request at a time is served per connection (no multiplexing):
//! a BEGIN_REQUEST for another id while one is active is answered with CANT_MPX_CONN.

use thiserror::Error;

use super::pairs::{self, PairLimits, PairRange, PairsError};
use super::record::{
    self, CodecError, FCGI_KEEP_CONN, NULL_REQUEST_ID, ProtocolStatus, RecordType, Role,
};

/// Bounds applied to each request on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes accepted in one request's PARAMS stream (checked before each record's
    /// content is appended). Default 1048576 (1 MiB). Streams over 64 KiB spanning many
    /// records are accepted up to this bound.
    pub max_params_bytes: usize,
    /// Bounds on the name-value pairs of PARAMS and GET_VALUES (see [`PairLimits`]).
    pub pairs: PairLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_params_bytes: 1024 * 1024,
            pairs: PairLimits::default(),
        }
    }
}

/// Values reported in GET_VALUES_RESULT; they must describe the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagementValues {
    /// `FCGI_MAX_CONNS`: most concurrent connections the application accepts.
    pub max_conns: u32,
    /// `FCGI_MAX_REQS`: most concurrent requests the application accepts.
    pub max_reqs: u32,
    /// `FCGI_MPXS_CONNS`: whether one connection may carry concurrent requests.
    pub mpxs_conns: bool,
}

/// The decoded PARAMS stream of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// The PARAMS stream bytes, concatenated across records.
    pub raw: Vec<u8>,
    /// `(name, value)` ranges into [`Params::raw`], in stream order (duplicates kept).
    pub pairs: Vec<PairRange>,
}

impl Params {
    /// Iterates over `(name, value)` byte slices in stream order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], &[u8])> + '_ {
        self.pairs.iter().map(|(name, value)| {
            let name = self.raw.get(name.clone()).unwrap_or_default();
            let value = self.raw.get(value.clone()).unwrap_or_default();
            (name, value)
        })
    }

    /// The value of the last pair named `name` (the last one wins on duplicates).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// What the peer's bytes meant for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'b> {
    /// The PARAMS stream of a new request ended: the request can start.
    Request {
        /// The request id used by the response records.
        request_id: u16,
        /// Whether FCGI_KEEP_CONN was set (the connection outlives the request).
        keep_conn: bool,
        /// The request's parameters.
        params: Params,
    },
    /// Request body bytes, borrowed from the input given to [`Connection::process`].
    Stdin(&'b [u8]),
    /// The empty STDIN record: the request body is complete.
    StdinEnd,
    /// ABORT_REQUEST for the active request; answer with [`Connection::end_request`].
    Abort,
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
}

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No request is active.
    Idle,
    /// BEGIN_REQUEST accepted; the PARAMS stream is being collected.
    Params { id: u16, keep_conn: bool },
    /// The request was handed to the application; STDIN may still be flowing.
    Running {
        id: u16,
        keep_conn: bool,
        stdin_done: bool,
        aborted: bool,
        stderr_sent: bool,
    },
}

/// Longest buffer capacity kept by [`Connection::recycle_params`] for reuse.
const RECYCLE_MAX_BYTES: usize = 64 * 1024;

/// The responder side of one FastCGI connection.
#[derive(Debug)]
pub struct Connection {
    limits: Limits,
    values: ManagementValues,
    state: State,
    params: Params,
    output: Vec<u8>,
    close_requested: bool,
}

impl Connection {
    /// A connection in its initial state, with no request active.
    pub fn new(limits: Limits, values: ManagementValues) -> Self {
        Self {
            limits,
            values,
            state: State::Idle,
            params: Params::default(),
            output: Vec::new(),
            close_requested: false,
        }
    }

    /// Bytes the connection wants sent to the peer on its own (management replies,
    /// rejections). The caller writes them and clears the vector.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    /// True once a request rejected or ended by the connection itself (unknown role,
    /// abort during PARAMS) had FCGI_KEEP_CONN clear: close after writing [`Self::output`].
    pub fn close_requested(&self) -> bool {
        self.close_requested
    }

    /// The id of the request in progress (collecting PARAMS or running), if any.
    pub fn active_request(&self) -> Option<u16> {
        match self.state {
            State::Idle => None,
            State::Params { id, .. } | State::Running { id, .. } => Some(id),
        }
    }

    /// True when the running request's STDIN stream has ended.
    pub fn stdin_finished(&self) -> bool {
        matches!(
            self.state,
            State::Running {
                stdin_done: true,
                ..
            }
        )
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

    /// Consumes at most one record from the front of `input`.
    ///
    /// Returns `(0, None)` when `input` holds no whole record yet, `(n, None)` when a
    /// record of `n` bytes was handled internally or ignored, and `(n, Some(event))`
    /// when it means something to the application. An error means the connection must
    /// be closed (after writing [`Self::output`], if desired).
    pub fn process<'b>(
        &mut self,
        input: &'b [u8],
    ) -> Result<(usize, Option<Event<'b>>), ProtocolError> {
        let Some((rec, used)) = record::parse_record(input)? else {
            return Ok((0, None));
        };
        let id = rec.request_id;
        if id == NULL_REQUEST_ID {
            self.management(rec.record_type, rec.content)?;
            return Ok((used, None));
        }
        let event = match rec.record_type {
            RecordType::BeginRequest => {
                self.begin(id, rec.content)?;
                None
            }
            RecordType::Params => self.params_record(id, rec.content)?,
            RecordType::Stdin => self.stdin_record(id, rec.content)?,
            RecordType::AbortRequest => self.abort(id),
            // DATA belongs to the Filter role; the rest are records a web server does not
            // send. None of them affect a responder.
            _ => None,
        };
        Ok((used, event))
    }

    /// Handles a record with the null request id.
    fn management(&mut self, record_type: RecordType, content: &[u8]) -> Result<(), ProtocolError> {
        match record_type {
            RecordType::GetValues => self.get_values(content),
            // Replies from a peer; answering them could start an endless exchange.
            RecordType::GetValuesResult | RecordType::UnknownType => Ok(()),
            other => {
                record::encode_unknown_type(&mut self.output, other.as_u8());
                Ok(())
            }
        }
    }

    /// Answers GET_VALUES with the known names that were asked for, each at most once.
    fn get_values(&mut self, content: &[u8]) -> Result<(), ProtocolError> {
        const NAMES: [&[u8]; 3] = [b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"];
        let mut asked = [false; NAMES.len()];
        for pair in pairs::iter_pairs(content, &self.limits.pairs) {
            let (name, _) = pair?;
            let name = content.get(name).unwrap_or_default();
            if let Some(i) = NAMES.iter().position(|known| *known == name) {
                asked[i] = true;
            }
        }
        let mut body = Vec::new();
        let values = [
            self.values.max_conns.to_string(),
            self.values.max_reqs.to_string(),
            u8::from(self.values.mpxs_conns).to_string(),
        ];
        for ((name, value), asked) in NAMES.iter().zip(&values).zip(asked) {
            if asked {
                pairs::encode_pair(&mut body, name, value.as_bytes());
            }
        }
        record::encode_record(
            &mut self.output,
            RecordType::GetValuesResult,
            NULL_REQUEST_ID,
            &body,
        );
        Ok(())
    }

    /// Handles BEGIN_REQUEST.
    fn begin(&mut self, id: u16, content: &[u8]) -> Result<(), ProtocolError> {
        let (role, flags) = record::parse_begin_request(content)?;
        let keep_conn = flags & FCGI_KEEP_CONN != 0;
        match self.active_request() {
            Some(active) if active == id => return Err(ProtocolError::DuplicateBegin(id)),
            Some(_) => {
                record::encode_end_request(&mut self.output, id, 0, ProtocolStatus::CantMpxConn);
            }
            None if role != Role::Responder => {
                record::encode_end_request(&mut self.output, id, 0, ProtocolStatus::UnknownRole);
                self.close_requested |= !keep_conn;
            }
            None => {
                self.params.raw.clear();
                self.params.pairs.clear();
                self.state = State::Params { id, keep_conn };
            }
        }
        Ok(())
    }

    /// Handles a PARAMS record.
    fn params_record<'b>(
        &mut self,
        id: u16,
        content: &[u8],
    ) -> Result<Option<Event<'b>>, ProtocolError> {
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
                self.state = State::Running {
                    id,
                    keep_conn,
                    stdin_done: false,
                    aborted: false,
                    stderr_sent: false,
                };
                Ok(Some(Event::Request {
                    request_id: id,
                    keep_conn,
                    params,
                }))
            }
            State::Running { id: active, .. } if active == id => {
                Err(ProtocolError::ParamsAfterEnd(id))
            }
            _ => Ok(None),
        }
    }

    /// Handles a STDIN record.
    fn stdin_record<'b>(
        &mut self,
        id: u16,
        content: &'b [u8],
    ) -> Result<Option<Event<'b>>, ProtocolError> {
        match &mut self.state {
            State::Params { id: active, .. } if *active == id => {
                Err(ProtocolError::StdinBeforeParams(id))
            }
            State::Running {
                id: active,
                stdin_done,
                ..
            } if *active == id => {
                if *stdin_done {
                    Err(ProtocolError::StdinAfterEnd(id))
                } else if content.is_empty() {
                    *stdin_done = true;
                    Ok(Some(Event::StdinEnd))
                } else {
                    Ok(Some(Event::Stdin(content)))
                }
            }
            _ => Ok(None),
        }
    }

    /// Handles ABORT_REQUEST.
    fn abort<'b>(&mut self, id: u16) -> Option<Event<'b>> {
        match &mut self.state {
            State::Params {
                id: active,
                keep_conn,
            } if *active == id => {
                // The application never saw this request: end it here.
                self.close_requested |= !*keep_conn;
                record::encode_end_request(
                    &mut self.output,
                    id,
                    0,
                    ProtocolStatus::RequestComplete,
                );
                self.state = State::Idle;
                None
            }
            State::Running {
                id: active,
                aborted,
                ..
            } if *active == id && !*aborted => {
                *aborted = true;
                Some(Event::Abort)
            }
            _ => None,
        }
    }

    /// Appends `data` as STDOUT records of the running request (nothing for empty data
    /// or when no request is running).
    pub fn stdout(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if let State::Running { id, .. } = self.state {
            record::encode_stream(out, RecordType::Stdout, id, data);
        }
    }

    /// Appends `data` as STDERR records of the running request (nothing for empty data
    /// or when no request is running).
    pub fn stderr(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if let State::Running {
            id, stderr_sent, ..
        } = &mut self.state
            && !data.is_empty()
        {
            *stderr_sent = true;
            record::encode_stream(out, RecordType::Stderr, *id, data);
        }
    }

    /// Ends the running request: the empty STDOUT record, the empty STDERR record if any
    /// STDERR was sent, then END_REQUEST(REQUEST_COMPLETE, `app_status`). Returns whether
    /// the connection stays open (FCGI_KEEP_CONN was set); false when no request was running.
    pub fn end_request(&mut self, app_status: u32, out: &mut Vec<u8>) -> bool {
        let State::Running {
            id,
            keep_conn,
            stderr_sent,
            ..
        } = self.state
        else {
            return false;
        };
        record::encode_record(out, RecordType::Stdout, id, &[]);
        if stderr_sent {
            record::encode_record(out, RecordType::Stderr, id, &[]);
        }
        record::encode_end_request(out, id, app_status, ProtocolStatus::RequestComplete);
        self.state = State::Idle;
        keep_conn
    }

    /// Refuses the running request with a bare END_REQUEST carrying `status` (for example
    /// [`ProtocolStatus::Overloaded`]) and no STDOUT. Returns whether the connection stays
    /// open; false when no request was running.
    pub fn reject_request(&mut self, status: ProtocolStatus, out: &mut Vec<u8>) -> bool {
        let State::Running { id, keep_conn, .. } = self.state else {
            return false;
        };
        record::encode_end_request(out, id, 0, status);
        self.state = State::Idle;
        keep_conn
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
