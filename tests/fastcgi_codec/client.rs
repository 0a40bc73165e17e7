//! In-memory web-server side for the FastCGI tests: hand-built records and a connection driver.
//!
//! Records are built here byte by byte, independently of the encoders under test, and
//! every input is driven through `Connection::process` both whole and one byte at a time.

use cgate::fastcgi::{
    Connection, Disposition, Event, Limits, ManagementValues, Progress, ProtocolError,
};

pub use crate::fcgi_bytes::{
    ABORT, BEGIN, DATA, END, GET_VALUES, GET_VALUES_RESULT, PARAMS, STDERR, STDIN, STDOUT,
    UNKNOWN_TYPE, nv, rec,
};

/// BEGIN_REQUEST with a role and flags.
pub fn begin(id: u16, role: u16, flags: u8) -> Vec<u8> {
    crate::fcgi_bytes::begin_padded(id, role, flags, 0)
}

/// An owned copy of an [`Event`], so events can outlive the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Request {
        id: u16,
        keep_conn: bool,
        params: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Stdin(Vec<u8>),
    StdinEnd,
    Abort,
}

impl Ev {
    /// A request event with string params.
    pub fn request(id: u16, keep_conn: bool, params: &[(&str, &str)]) -> Self {
        let params = params
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        Ev::Request {
            id,
            keep_conn,
            params,
        }
    }
}

fn own(event: Event, input: &[u8]) -> Ev {
    match event {
        Event::Request {
            request_id,
            keep_conn,
            params,
        } => Ev::Request {
            id: request_id,
            keep_conn,
            params: params
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
        },
        Event::Stdin(range) => Ev::Stdin(input[range].to_vec()),
        Event::StdinEnd => Ev::StdinEnd,
        Event::Abort => Ev::Abort,
    }
}

/// What a connection made of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub events: Vec<Ev>,
    /// Everything `Connection::transmit` offered, in order.
    pub output: Vec<u8>,
    pub error: Option<ProtocolError>,
    /// Input bytes left unconsumed (0 after an error, where it depends on how input arrived).
    pub leftover: usize,
    pub disposition: Disposition,
    pub active: Option<u16>,
    pub stdin_open: bool,
}

/// Values reported by GET_VALUES in these tests.
pub fn values() -> ManagementValues {
    ManagementValues {
        max_conns: 100,
        max_reqs: 4,
        mpxs_conns: false,
    }
}

/// Takes what the connection offers to transmit (as if all of it were written).
pub fn take(conn: &mut Connection) -> Vec<u8> {
    let out = conn.transmit().to_vec();
    conn.transmitted(out.len());
    out
}

/// Feeds `chunks` in order, processing everything available after each one and taking
/// the output after each step.
pub fn feed(conn: &mut Connection, chunks: impl IntoIterator<Item = Vec<u8>>) -> Outcome {
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let mut output = Vec::new();
    let mut error = None;
    'outer: for chunk in chunks {
        buf.extend_from_slice(&chunk);
        loop {
            match conn.process(&buf) {
                Ok((used, progress)) => {
                    let need = progress == Progress::NeedData;
                    if let Progress::Event(event) = progress {
                        events.push(own(event, &buf));
                    } else {
                        assert!(need || used > 0 || !conn.transmit().is_empty());
                    }
                    buf.drain(..used);
                    output.extend(take(conn));
                    if need {
                        break;
                    }
                }
                Err(e) => {
                    error = Some(e);
                    break 'outer;
                }
            }
        }
    }
    output.extend(take(conn));
    Outcome {
        events,
        output,
        error,
        leftover: if error.is_some() { 0 } else { buf.len() },
        disposition: conn.disposition(),
        active: conn.active_request(),
        stdin_open: conn.stdin_open(),
    }
}

/// Drives `input` whole into `whole` and one byte at a time into `bytewise` (two
/// connections in the same state); asserts both agree and returns the outcome.
pub fn drive_pair(whole: &mut Connection, bytewise: &mut Connection, input: &[u8]) -> Outcome {
    let a = feed(whole, [input.to_vec()]);
    let b = feed(bytewise, input.iter().map(|b| vec![*b]));
    assert_eq!(a, b, "whole and byte-at-a-time feeds differ");
    a
}

/// Drives `input` into a fresh connection with `limits`, whole and byte by byte.
pub fn drive_limits(limits: Limits, input: &[u8]) -> Outcome {
    let mut whole = Connection::new(limits, values());
    drive_pair(&mut whole, &mut Connection::new(limits, values()), input)
}

/// Drives `input` into a fresh connection with default limits, whole and byte by byte.
pub fn drive(input: &[u8]) -> Outcome {
    drive_limits(Limits::default(), input)
}

/// Concatenates record byte vectors.
pub fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// Two connections in lockstep: one fed whole, one fed byte by byte.
pub struct Both {
    pub whole: Connection,
    pub bytewise: Connection,
}

impl Both {
    /// Two fresh connections with `limits`.
    pub fn new(limits: Limits) -> Self {
        Both {
            whole: Connection::new(limits, values()),
            bytewise: Connection::new(limits, values()),
        }
    }

    /// Drives `input` into both (see [`drive_pair`]).
    pub fn drive(&mut self, input: &[u8]) -> Outcome {
        drive_pair(&mut self.whole, &mut self.bytewise, input)
    }

    /// Runs an output-side call on both connections; asserts they return and transmit the
    /// same, and returns that.
    pub fn respond<R: PartialEq + std::fmt::Debug>(
        &mut self,
        call: impl Fn(&mut Connection) -> R,
    ) -> (R, Vec<u8>) {
        let ra = call(&mut self.whole);
        let rb = call(&mut self.bytewise);
        let (a, b) = (take(&mut self.whole), take(&mut self.bytewise));
        assert_eq!((&ra, &a), (&rb, &b), "connections diverged");
        (ra, a)
    }
}
