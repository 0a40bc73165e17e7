//! What a request's reply is handed to ([`Handler`]), and how a request ended ([`End`]) or
//! failed ([`CallError`], with what the retry rule needs to know).

use std::io;
use std::os::fd::BorrowedFd;

use super::exchange::{Exchange, Failure, TryFacts, retry_safe};
use crate::fastcgi::proto::ProtocolStatus;

/// Where the reply goes.
pub trait Handler {
    /// STDOUT bytes of one record.
    fn stdout(&mut self, data: &[u8]) -> io::Result<()>;
    /// STDERR bytes of one record.
    fn stderr(&mut self, data: &[u8]);
    /// The records of one read were handed over; `ended` when END_REQUEST was among them.
    /// A streaming handler passes what it holds on to its client here.
    fn batch_end(&mut self, ended: bool) -> io::Result<()> {
        let _ = ended;
        Ok(())
    }
    /// A descriptor that turns readable when the client may have gone.
    fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// Whether the client is gone (asked when [`Handler::watch_fd`] turned readable).
    fn client_gone(&mut self) -> bool {
        false
    }
    /// The backend has been silent for [`SILENT_BEFORE_HINT`](super::request::SILENT_BEFORE_HINT) and the request waits on (once
    /// per request): a server running requests inline can move its other work elsewhere.
    fn about_to_wait(&mut self) {}
}

/// How a request ended at the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// END_REQUEST's application status.
    pub app_status: u32,
    /// END_REQUEST's protocol status.
    pub status: ProtocolStatus,
    /// The whole request went out and nothing followed END_REQUEST: the connection may
    /// carry another request.
    pub reusable: bool,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct CallError {
    /// How far it had gone, for the retry decision.
    pub failure: Failure,
    /// Some reply byte had come (the backend acted; the reply may be partly out).
    pub output_seen: bool,
    /// The failure was on our side of the gateway: the client left or its body failed.
    pub client_side: bool,
    /// The backend made no progress within the timeout.
    pub timed_out: bool,
    /// What happened.
    pub what: String,
}

impl CallError {
    /// Whether the request may be sent again (see [`retry_safe`]); `reused`: the connection
    /// had carried a request before.
    pub fn retry_safe(&self, reused: bool, idempotent: bool) -> bool {
        let facts = TryFacts {
            output_seen: self.output_seen,
            reused,
            idempotent,
        };
        !self.client_side && retry_safe(self.failure, facts)
    }

    pub(super) fn io(x: &Exchange, e: &io::Error, doing: &str) -> CallError {
        let failure = match e.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Failure::Dropped,
            io::ErrorKind::UnexpectedEof => Failure::Eof,
            _ => Failure::Other,
        };
        CallError {
            failure,
            output_seen: x.output_seen(),
            client_side: false,
            timed_out: e.kind() == io::ErrorKind::TimedOut,
            what: format!("{doing}: {e}"),
        }
    }

    pub(super) fn client(x: &Exchange, what: String) -> CallError {
        CallError {
            failure: Failure::Other,
            output_seen: x.output_seen(),
            client_side: true,
            timed_out: false,
            what,
        }
    }
}
