//! The sans-IO responder state machine fed one stream whole, cut into pieces and one byte at
//! a time: the three runs must agree exactly (same events, same output bytes, same
//! disposition, active request and error), what it writes is whole version-1 records, and it
//! never stalls (a `Transmit` that consumed nothing has bytes to write). A fourth run feeds the
//! cut stream and writes output only a few bytes at a time (`transmit` / `transmitted(n)` as a
//! slow socket does): it must still write whole records, see the same events, end the same way
//! and give the same management replies in the same order.
//!
//! Library paths: `cgate::fastcgi::proto::{Connection, Disposition, Event, Limits,
//! ManagementValues, PairLimits, Progress, ProtocolError, ProtocolStatus}` (`Connection::{new,
//! process, transmit, transmitted, disposition, active_request, limit_body, recycle_params,
//! stdout, stderr, end_request, reject_request, cut}`), `cgate::fastcgi::proto::record::
//! parse_record`.

use cgate::fastcgi::proto::record::parse_record;
use cgate::fastcgi::proto::{
    Connection, Disposition, Event, Limits, ManagementValues, PairLimits, Progress, ProtocolError,
    ProtocolStatus,
};

use crate::split::{chunks, cuts_and_stream};

/// Body bound the "limited" app policy sets, so `BodyTooLong` is reached too.
const BODY_LIMIT: u64 = 64;

/// An event with its bytes copied out of the input buffer, so runs over different buffers
/// compare.
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
#[derive(Debug, PartialEq, Eq)]
pub struct Trace {
    /// Events in order.
    pub events: Vec<Seen>,
    /// Every byte `transmit` offered and was reported written, in order.
    pub output: Vec<u8>,
    /// The error that ended the run, if any.
    pub error: Option<ProtocolError>,
    /// What becomes of the socket at the end.
    pub disposition: Disposition,
    /// The request still in progress at the end.
    pub active: Option<u16>,
}

/// How the "app" answers a request, chosen by its number of params so every run of one
/// stream makes the same choice: each respond path of the connection gets exercised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Echo STDIN to STDERR, answer at the end of the body (body bounded to BODY_LIMIT).
    AtEnd,
    /// Answer and end at once, before the body arrives (the draining path).
    Early,
    /// Write a little, then cut the response (no END_REQUEST).
    Cut,
    /// Refuse with END_REQUEST(OVERLOADED).
    Reject,
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

/// Writes what the connection offers: everything (`None`) or at most `n` bytes.
fn write(conn: &mut Connection, out: &mut Vec<u8>, at_most: Option<usize>) {
    let pending = conn.transmit();
    let n = at_most.map_or(pending.len(), |n| n.min(pending.len()));
    out.extend_from_slice(&pending[..n]);
    conn.transmitted(n);
}

/// Feeds `pieces` in order, keeping unconsumed bytes for the next piece as a server does,
/// and writes output after every step (`write_at_most` bytes a step, or all of it). At the
/// end everything still offered is written.
pub fn run(pieces: &[&[u8]], write_at_most: Option<usize>) -> Trace {
    let mut conn = new_connection();
    let mut events = Vec::new();
    let mut output = Vec::new();
    let mut error = None;
    let mut policy = Policy::AtEnd;
    let mut buf = Vec::new();
    'outer: for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let (used, progress) = match conn.process(&buf) {
                Ok(step) => step,
                Err(e) => {
                    error = Some(e);
                    break 'outer;
                }
            };
            let need = progress == Progress::NeedData;
            let progress_was_transmit = progress == Progress::Transmit;
            if let Progress::Event(event) = progress {
                let seen = own(&mut conn, event, &buf);
                react(&mut conn, &seen, &mut policy);
                events.push(seen);
            } else {
                assert!(
                    need || used > 0 || !conn.transmit().is_empty(),
                    "Transmit with nothing consumed and nothing to write: a stall"
                );
            }
            buf.drain(..used);
            write(&mut conn, &mut output, write_at_most);
            if progress_was_transmit {
                // Its contract: write all of it before feeding more input.
                while !conn.transmit().is_empty() {
                    write(&mut conn, &mut output, write_at_most);
                }
            }
            if need {
                break;
            }
        }
    }
    while !conn.transmit().is_empty() {
        write(&mut conn, &mut output, write_at_most);
    }
    Trace {
        events,
        output,
        error,
        disposition: conn.disposition(),
        active: conn.active_request(),
    }
}

/// Copies `event` out of `buf`, giving a request's params back to the connection for reuse.
fn own(conn: &mut Connection, event: Event, buf: &[u8]) -> Seen {
    match event {
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
        Event::Stdin(range) => Seen::Stdin(
            buf.get(range.clone())
                .unwrap_or_else(|| panic!("STDIN range {range:?} outside the input"))
                .to_vec(),
        ),
        Event::StdinEnd => Seen::StdinEnd,
        Event::Abort => Seen::Abort,
    }
}

/// The app's answer to one event; it depends only on the events, never on the cuts.
fn react(conn: &mut Connection, seen: &Seen, policy: &mut Policy) {
    match seen {
        Seen::Request(_, _, pairs) => {
            *policy = match pairs.len() % 4 {
                0 => Policy::AtEnd,
                1 => Policy::Early,
                2 => Policy::Cut,
                _ => Policy::Reject,
            };
            match policy {
                Policy::AtEnd => conn.limit_body(BODY_LIMIT),
                Policy::Early => {
                    conn.stdout(b"Status: 200 OK\r\n\r\nearly");
                    conn.end_request(1);
                }
                Policy::Cut => {}
                Policy::Reject => conn.reject_request(ProtocolStatus::Overloaded),
            }
        }
        Seen::Stdin(data) => match policy {
            Policy::AtEnd => conn.stderr(data),
            Policy::Cut => {
                conn.stdout(b"Status: 200 OK\r\n\r\npart");
                conn.cut();
            }
            // Already answered: the connection takes no more output for this request.
            Policy::Early | Policy::Reject => conn.stdout(b"ignored"),
        },
        Seen::StdinEnd => match policy {
            Policy::AtEnd => {
                conn.stdout(b"Status: 200 OK\r\n\r\nok");
                conn.end_request(0);
            }
            Policy::Cut => {
                conn.stdout(b"Status: 200 OK\r\n\r\npart");
                conn.cut();
            }
            Policy::Early | Policy::Reject => conn.stdout(b"ignored"),
        },
        Seen::Abort => conn.end_request(2),
    }
}

/// The records of `output` (the `what` run's), which must be whole version-1 records.
fn records<'a>(output: &'a [u8], what: &str) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = output;
    while !rest.is_empty() {
        let (_, used) = parse_record(rest)
            .unwrap_or_else(|e| panic!("{what} output does not parse: {e}"))
            .unwrap_or_else(|| panic!("{what} output ends inside a record: {rest:?}"));
        out.push(&rest[..used]);
        rest = &rest[used..];
    }
    out
}

/// Management replies (request id 0), in order.
fn management<'a>(output: &'a [u8], what: &str) -> Vec<&'a [u8]> {
    records(output, what)
        .into_iter()
        .filter(|r| r[2] == 0 && r[3] == 0)
        .collect()
}

/// The output as each request id's records, in order, ids in order of first appearance.
/// FastCGI gives no meaning to the order of records of different ids (a management reply
/// or another id's refusal may go out before or after a request's records, depending on
/// when the bytes were read); within one id the order is the protocol.
///
/// Refusals (END_REQUEST with a protocol status other than REQUEST_COMPLETE: CANT_MPX_CONN,
/// UNKNOWN_ROLE, OVERLOADED) answer BEGIN records that were never accepted; they are kept
/// apart (sorted) because a peer that reuses an id before it has read that id's END_REQUEST
/// makes their place among the accepted request's records depend on read timing.
fn per_id(output: &[u8], what: &str) -> (Vec<(u16, Vec<Vec<u8>>)>, Vec<Vec<u8>>) {
    let mut ids: Vec<(u16, Vec<Vec<u8>>)> = Vec::new();
    let mut refusals = Vec::new();
    for r in records(output, what) {
        let id = u16::from_be_bytes([r[2], r[3]]);
        if r[1] == 3 && r.get(12).is_some_and(|&status| status != 0) {
            refusals.push(r.to_vec());
            continue;
        }
        match ids.iter_mut().find(|(i, _)| *i == id) {
            Some((_, rs)) => rs.push(r.to_vec()),
            None => ids.push((id, vec![r.to_vec()])),
        }
    }
    ids.sort_by_key(|(id, _)| *id);
    refusals.sort();
    (ids, refusals)
}

/// Two runs agree: the same events, error, disposition and active request, and for every
/// request id the same records in the same order.
fn assert_agree(a: &Trace, b: &Trace, what: &str) {
    assert_eq!(
        (&a.events, &a.error, a.disposition, a.active),
        (&b.events, &b.error, b.disposition, b.active),
        "{what}"
    );
    assert_eq!(per_id(&a.output, what), per_id(&b.output, what), "{what}");
}

/// Whole, split and byte-at-a-time agree (per request id, exactly); slow writes keep
/// records whole.
pub fn check(data: &[u8]) {
    let (cuts, stream) = cuts_and_stream(data);
    let pieces = chunks(stream, &cuts);
    let whole = run(&[stream], None);
    let split = run(&pieces, None);
    assert_agree(
        &whole,
        &split,
        &format!("whole and split runs differ (cuts {cuts:?})"),
    );
    let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
    assert_agree(
        &whole,
        &run(&bytewise, None),
        "whole and byte-at-a-time runs differ",
    );
    records(&whole.output, "whole");
    let step = cuts.first().map_or(3, |&c| c % 13 + 1);
    let slow = run(&pieces, Some(step));
    // The output bytes may differ: after ABORT_REQUEST the unwritten part of a response is
    // dropped only when none of it went out, and a slow writer has sent some.
    assert_eq!(
        (&whole.events, &whole.error, whole.disposition, whole.active),
        (&slow.events, &slow.error, slow.disposition, slow.active),
        "slow writer ({step} bytes a step) changed the run (cuts {cuts:?})"
    );
    assert_eq!(
        management(&whole.output, "whole"),
        management(&slow.output, "slow-writer"),
        "slow writer ({step} bytes a step) changed the management replies"
    );
}
