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
    /// Response records in order: the unsent tail of earlier requests' replies, then the
    /// running request's (from `start`).
    pub resp: Vec<u8>,
    resp_sent: usize,
    /// Where the running request's records begin in `resp`.
    start: usize,
    /// While set, the running request's records wait: the peer is still sending its
    /// STDIN. Earlier requests' bytes before `start` are never held.
    pub held: bool,
}

impl Output {
    /// A request starts with its STDIN open: what it queues is held, what earlier requests
    /// left unsent is not.
    pub fn hold(&mut self) {
        self.held = true;
        self.start = self.resp.len();
    }

    /// End of the response bytes that may be written now.
    fn sendable_end(&self) -> usize {
        if self.held {
            self.start
        } else {
            self.resp.len()
        }
    }

    /// True while a response write has begun and not reached the end of what is
    /// sendable: nothing else may be written in the middle of those records.
    fn resp_in_progress(&self) -> bool {
        self.resp_sent > 0 && self.resp_sent < self.sendable_end()
    }

    /// The bytes to write now: the rest of a response write already begun, else unsent
    /// management replies, else the sendable response. Empty when nothing can be written.
    pub fn pending(&self) -> &[u8] {
        if !self.resp_in_progress() && self.mgmt_sent < self.mgmt.len() {
            return &self.mgmt[self.mgmt_sent..];
        }
        let end = self.sendable_end();
        self.resp.get(self.resp_sent..end).unwrap_or_default()
    }

    /// Records that `n` bytes of [`Self::pending`] were written.
    pub fn advance(&mut self, n: usize) {
        if !self.resp_in_progress() && self.mgmt_sent < self.mgmt.len() {
            self.mgmt_sent = (self.mgmt_sent + n).min(self.mgmt.len());
            if self.mgmt_sent == self.mgmt.len() {
                self.mgmt.clear();
                self.mgmt_sent = 0;
            }
            return;
        }
        let end = self.sendable_end();
        self.resp_sent = (self.resp_sent + n).min(end.max(self.resp_sent));
        if self.resp_sent == self.resp.len() {
            self.resp_sent = 0;
            self.start = 0;
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

    /// Drops the running request's unwritten response when none of it has gone out (so no
    /// record is cut); earlier requests' unsent bytes stay.
    pub fn discard_unsent_resp(&mut self) {
        if self.resp_sent <= self.start {
            self.resp.truncate(self.start);
            if self.resp_sent == self.resp.len() {
                self.resp.clear();
                self.resp_sent = 0;
                self.start = 0;
            }
        }
    }
}
