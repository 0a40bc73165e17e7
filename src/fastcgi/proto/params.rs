//! What a connection is configured with (limits, management values) and what a request carries (its decoded PARAMS).

use super::pairs::{PairLimits, PairRange};

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
