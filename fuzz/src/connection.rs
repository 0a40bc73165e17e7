//! The responder state machine fed one stream whole and cut into pieces: the two runs must
//! agree (same events, same output bytes, same error), and what it writes is whole records.
//!
//! Library paths: `cgate::fastcgi::proto::{Connection, Event, Limits, ManagementValues,
//! ProtocolError}` (`Connection::{new, process, output, close_requested, stdout, stderr,
//! end_request, recycle_params}`), `cgate::fastcgi::proto::record::parse_record`.

use cgate::fastcgi::proto::record::parse_record;
use cgate::fastcgi::proto::{
    Connection, Event, Limits, ManagementValues, PairLimits, ProtocolError,
};

use crate::split::{chunks, cuts_and_stream};

/// An event with its borrowed bytes copied, so runs over different buffers compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A request started: id, keep_conn and its `(name, value)` pairs.
    Request(u16, bool, Vec<(Vec<u8>, Vec<u8>)>),
    /// STDIN bytes.
    Stdin(Vec<u8>),
    /// The body ended.
    StdinEnd,
    /// The request was aborted.
    Abort,
}

/// What one run produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// Events in order.
    pub events: Vec<Seen>,
    /// Every byte the connection asked to send, in order.
    pub output: Vec<u8>,
    /// The error that ended the run, if any.
    pub error: Option<ProtocolError>,
    /// Whether the connection asked to be closed.
    pub closed: bool,
}

fn new_connection() -> Connection {
    let limits = Limits {
        max_params_bytes: 4096,
        pairs: PairLimits {
            max_name_len: 256,
            max_value_len: 1024,
            max_pairs: 32,
        },
    };
    let values = ManagementValues {
        max_conns: 4,
        max_reqs: 4,
        mpxs_conns: false,
    };
    Connection::new(limits, values)
}

/// Feeds `pieces` in order, keeping unconsumed bytes for the next piece as a server does.
/// The "app" answers each request the same way whatever the cuts: on STDIN it echoes the
/// bytes to STDERR, at the end of the body (or an abort) it writes a body and ends.
pub fn run(pieces: &[&[u8]]) -> Trace {
    let mut conn = new_connection();
    let mut trace = Trace::default();
    let mut buf = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        let mut used = 0;
        loop {
            match conn.process(&buf[used..]) {
                Ok((0, _)) => break,
                Ok((n, event)) => {
                    used += n;
                    if let Some(event) = event {
                        react(&mut conn, event, &mut trace);
                    }
                }
                Err(e) => {
                    trace.error = Some(e);
                    trace.output.append(conn.output());
                    return trace;
                }
            }
            trace.output.append(conn.output());
            if conn.close_requested() || trace.closed {
                trace.closed = true;
                return trace;
            }
        }
        buf.drain(..used);
    }
    trace
}

fn react(conn: &mut Connection, event: Event<'_>, trace: &mut Trace) {
    let seen = match event {
        Event::Request {
            request_id,
            keep_conn,
            params,
        } => {
            let pairs = params
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect();
            conn.recycle_params(params);
            Seen::Request(request_id, keep_conn, pairs)
        }
        Event::Stdin(data) => {
            conn.stderr(data, &mut trace.output);
            Seen::Stdin(data.to_vec())
        }
        Event::StdinEnd => Seen::StdinEnd,
        Event::Abort => Seen::Abort,
    };
    if matches!(seen, Seen::StdinEnd | Seen::Abort) {
        conn.stdout(b"Status: 200 OK\r\n\r\nok", &mut trace.output);
        if !conn.end_request(0, &mut trace.output) {
            trace.closed = true;
        }
    }
    trace.events.push(seen);
}

/// Whole vs split agree; the output is a sequence of whole version-1 records.
pub fn check(data: &[u8]) {
    let (cuts, stream) = cuts_and_stream(data);
    let whole = run(&[stream]);
    let split = run(&chunks(stream, &cuts));
    assert_eq!(whole, split, "whole and split runs differ (cuts {cuts:?})");
    let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(
        whole,
        run(&bytewise),
        "whole and byte-at-a-time runs differ"
    );
    let mut rest = &whole.output[..];
    while !rest.is_empty() {
        let (_, used) = parse_record(rest)
            .expect("output parses")
            .expect("output is whole records");
        rest = &rest[used..];
    }
}
