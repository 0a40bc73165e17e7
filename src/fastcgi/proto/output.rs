//! The bytes a connection owes its peer: management replies (always sendable, bounded) and response records (held while STDIN is open).

/// Most management-reply bytes queued before [`super::Connection::process`] stops consuming
/// input and asks for them to be written first (16 KiB).
pub const MGMT_OUTPUT_MAX: usize = 16 * 1024;

/// Response buffers larger than this are released once sent.
const KEEP_CAPACITY: usize = 64 * 1024;

/// The two output queues of a connection, with how much of each has been written.
#[derive(Debug, Default)]
pub(super) struct Output {
    /// Replies to management records (request id 0) and refusals of requests the app never
    /// saw: sendable at any time.
    pub mgmt: Vec<u8>,
    mgmt_sent: usize,
    /// Records of the running request's response, in order.
    pub resp: Vec<u8>,
    resp_sent: usize,
    /// While set, `resp` waits: the peer is still sending the request's STDIN.
    pub held: bool,
}

impl Output {
    /// The bytes to write now: unsent management replies first, then the response unless
    /// it is held. Empty when nothing can be written.
    pub fn pending(&self) -> &[u8] {
        if self.mgmt_sent < self.mgmt.len() {
            return &self.mgmt[self.mgmt_sent..];
        }
        if self.held {
            return &[];
        }
        &self.resp[self.resp_sent..]
    }

    /// Records that `n` bytes of [`Self::pending`] were written.
    pub fn advance(&mut self, n: usize) {
        if self.mgmt_sent < self.mgmt.len() {
            self.mgmt_sent = (self.mgmt_sent + n).min(self.mgmt.len());
            if self.mgmt_sent == self.mgmt.len() {
                self.mgmt.clear();
                self.mgmt_sent = 0;
            }
            return;
        }
        if self.held {
            return;
        }
        self.resp_sent = (self.resp_sent + n).min(self.resp.len());
        if self.resp_sent == self.resp.len() {
            self.resp_sent = 0;
            if self.resp.capacity() > KEEP_CAPACITY {
                self.resp = Vec::new();
            } else {
                self.resp.clear();
            }
        }
    }

    /// True when management replies reached [`MGMT_OUTPUT_MAX`] and must be written before
    /// more input is consumed.
    pub fn mgmt_full(&self) -> bool {
        self.mgmt.len() - self.mgmt_sent >= MGMT_OUTPUT_MAX
    }

    /// True while management replies wait to be written.
    pub fn mgmt_unsent(&self) -> bool {
        self.mgmt_sent < self.mgmt.len()
    }

    /// Response bytes queued and not written yet (held or not).
    pub fn resp_unsent(&self) -> usize {
        self.resp.len() - self.resp_sent
    }

    /// Drops the unwritten response when none of it has gone out (so no record is cut).
    pub fn discard_unsent_resp(&mut self) {
        if self.resp_sent == 0 {
            self.resp.clear();
        }
    }
}
