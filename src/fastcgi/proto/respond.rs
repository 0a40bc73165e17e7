//! The response side of a connection: STDOUT/STDERR records, END_REQUEST or a cut, and the poll-style output.

use super::connection::{Connection, State};
use super::record::{self, ProtocolStatus, RecordType};

impl Connection {
    /// Appends `data` as STDOUT records of the running request (nothing for empty data,
    /// when no request is running, or once it was aborted).
    pub fn stdout(&mut self, data: &[u8]) {
        if let State::Body(req) | State::Running(req) = self.state {
            record::encode_stream(&mut self.out.resp, RecordType::Stdout, req.id, data);
        }
    }

    /// Appends `data` as STDERR records of the running request (same conditions as
    /// [`Self::stdout`]).
    pub fn stderr(&mut self, data: &[u8]) {
        if let State::Body(req) | State::Running(req) = &mut self.state
            && !data.is_empty()
        {
            req.stderr_sent = true;
            record::encode_stream(&mut self.out.resp, RecordType::Stderr, req.id, data);
        }
    }

    /// The application is done: the empty STDOUT record, the empty STDERR record if any
    /// STDERR was sent, then END_REQUEST(REQUEST_COMPLETE, `app_status`).
    ///
    /// While STDIN is still arriving the response waits and the rest of STDIN is skipped to
    /// its empty record (the draining state). After ABORT_REQUEST, whatever of the response
    /// has not gone out yet is dropped and only the terminators and END_REQUEST are sent.
    pub fn end_request(&mut self, app_status: u32) {
        let req = match self.state {
            State::Body(req) | State::Running(req) => req,
            State::Aborted { req, .. } => {
                self.out.discard_unsent_resp();
                req
            }
            _ => return,
        };
        let out = &mut self.out.resp;
        record::encode_record(out, RecordType::Stdout, req.id, &[]);
        if req.stderr_sent {
            record::encode_record(out, RecordType::Stderr, req.id, &[]);
        }
        let status = ProtocolStatus::RequestComplete;
        record::encode_end_request(out, req.id, app_status, status);
        self.finish(req);
    }

    /// Refuses the running request with a bare END_REQUEST carrying `status` (for example
    /// [`ProtocolStatus::Overloaded`]) and no STDOUT; it waits for STDIN like
    /// [`Self::end_request`].
    pub fn reject_request(&mut self, status: ProtocolStatus) {
        let req = match self.state {
            State::Body(req) | State::Running(req) => req,
            _ => return,
        };
        record::encode_end_request(&mut self.out.resp, req.id, 0, status);
        self.finish(req);
    }

    /// Moves on once the response is complete in the queue.
    fn finish(&mut self, req: super::connection::Req) {
        match self.state {
            State::Body(_) => self.state = State::Draining(req),
            // After ABORT_REQUEST the peer expects END_REQUEST now, not after its STDIN.
            _ => self.release(req),
        }
    }

    /// The response is cut (the app failed after its first bytes): what is queued goes
    /// out, no END_REQUEST follows, and the connection closes (lingering while the peer may
    /// still be sending STDIN) so the web server sees the reply truncated.
    pub fn cut(&mut self) {
        let peer_sending = match self.state {
            State::Body(_) | State::Draining(_) => true,
            State::Running(_) => false,
            State::Aborted { stdin_open, .. } => stdin_open,
            _ => return,
        };
        self.out.held = false;
        self.state = State::Closing {
            linger: peer_sending,
        };
    }

    /// The bytes to write to the peer now (management replies first, then the response
    /// unless it waits for the end of STDIN); empty when there is nothing to write.
    pub fn transmit(&self) -> &[u8] {
        self.out.pending()
    }

    /// Reports that the first `n` bytes of [`Self::transmit`] were written.
    pub fn transmitted(&mut self, n: usize) {
        self.out.advance(n);
    }

    /// True while management replies wait to be written (the peer is not reading them).
    pub fn management_pending(&self) -> bool {
        self.out.mgmt_unsent()
    }

    /// Response bytes queued and not yet written (including ones waiting for STDIN's end).
    pub fn queued_response(&self) -> usize {
        self.out.resp_unsent()
    }
}
