//! A raw FastCGI web-server side for the wire tests: hand-built records, connections and a reply reader.
//!
//! Records are built byte by byte here (independently of the crate's encoders) so the tests
//! check the server against the specification, not against its own codec.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::{Ready, TIMEOUT};

pub use crate::fcgi_bytes::{
    ABORT, END, GET_VALUES, GET_VALUES_RESULT, PARAMS, STDERR, STDIN, STDOUT, UNKNOWN_TYPE, nv, rec,
};
/// Roles and flags.
pub const RESPONDER: u16 = 1;
pub const KEEP_CONN: u8 = 1;
/// END_REQUEST protocol status bytes.
pub const REQUEST_COMPLETE: u8 = 0;
pub const CANT_MPX_CONN: u8 = 1;
pub const UNKNOWN_ROLE: u8 = 3;

/// The exact replies of the `hello` app and of a failed app (golden bytes kept in support).
pub use crate::support::golden::{ERROR_500, HELLO};

/// A record as the server writes it: padded with zeros to a multiple of 8.
pub fn server_rec(record_type: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let padding = (8 - content.len() % 8) % 8;
    let mut out = rec(record_type, id, content, 0);
    out[6] = padding as u8;
    out.extend(std::iter::repeat_n(0, padding));
    out
}

/// BEGIN_REQUEST with a role, flags and padding.
pub fn begin(id: u16, role: u16, flags: u8, padding: u8) -> Vec<u8> {
    crate::fcgi_bytes::begin_padded(id, role, flags, padding)
}

/// END_REQUEST as the server must send it.
pub fn end_request(id: u16, app_status: u32, protocol_status: u8) -> Vec<u8> {
    let mut body = app_status.to_be_bytes().to_vec();
    body.extend_from_slice(&[protocol_status, 0, 0, 0]);
    server_rec(END, id, &body)
}

/// The whole reply of a successful request whose STDOUT fits one record.
pub fn simple_reply(id: u16, stdout: &[u8]) -> Vec<u8> {
    let mut out = server_rec(STDOUT, id, stdout);
    out.extend(server_rec(STDOUT, id, b""));
    out.extend(end_request(id, 0, REQUEST_COMPLETE));
    out
}

/// A stream (PARAMS or STDIN): `data` in records of at most `chunk` bytes, then the empty
/// record; every record carries `padding`.
pub fn stream(record_type: u8, id: u16, data: &[u8], chunk: usize, padding: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for part in data.chunks(chunk.max(1)) {
        out.extend(rec(record_type, id, part, padding));
    }
    out.extend(rec(record_type, id, b"", padding));
    out
}

/// The CGI params of a GET/POST for `uri` (`/path?query`), plus `extra`.
pub fn params(method: &str, uri: &str, extra: &[(&[u8], &[u8])]) -> Vec<u8> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut pairs: Vec<(&[u8], &[u8])> = vec![
        (b"GATEWAY_INTERFACE", b"CGI/1.1"),
        (b"REQUEST_METHOD", method.as_bytes()),
        (b"SCRIPT_NAME", b""),
        (b"PATH_INFO", path.as_bytes()),
        (b"QUERY_STRING", query.as_bytes()),
        (b"REQUEST_URI", uri.as_bytes()),
        (b"SERVER_NAME", b"localhost"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
    ];
    pairs.extend_from_slice(extra);
    nv(&pairs)
}

/// A whole request: BEGIN, PARAMS stream, STDIN stream (records of at most 65535 bytes).
pub fn request(id: u16, flags: u8, params: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = begin(id, RESPONDER, flags, 0);
    out.extend(stream(PARAMS, id, params, 65535, 0));
    out.extend(stream(STDIN, id, body, 65535, 0));
    out
}

/// A GET of `uri` with no body.
pub fn get(id: u16, flags: u8, uri: &str) -> Vec<u8> {
    request(id, flags, &params("GET", uri, &[]), b"")
}

/// One record read back from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub record_type: u8,
    pub id: u16,
    pub content: Vec<u8>,
}

/// Everything the server sent for one request, up to and including END_REQUEST.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The raw bytes of all records (for exact comparisons).
    pub raw: Vec<u8>,
    pub records: Vec<Record>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub app_status: u32,
    pub protocol_status: u8,
}

impl Reply {
    /// The CGI head of STDOUT (before the blank line).
    pub fn head(&self) -> String {
        let end = find(&self.stdout, b"\r\n\r\n").expect("CGI head ends with a blank line");
        String::from_utf8(self.stdout[..end].to_vec()).expect("head is UTF-8")
    }

    /// The body after the CGI head.
    pub fn body(&self) -> &[u8] {
        let end = find(&self.stdout, b"\r\n\r\n").expect("CGI head ends with a blank line");
        &self.stdout[end + 4..]
    }

    /// The status code from the `Status:` line.
    pub fn status(&self) -> u16 {
        let head = self.head();
        let line = head.lines().next().unwrap_or_default();
        let code = line.strip_prefix("Status: ").expect("Status line first");
        code[..3].parse().expect("numeric status")
    }

    /// The body parsed as JSON (echo's answers).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.body()).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(self.body())
            )
        })
    }
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Which socket family a server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Unix,
    Tcp,
}

/// Both transports, for tests that run over each.
pub const BOTH: [Transport; 2] = [Transport::Unix, Transport::Tcp];

/// Where a server listens.
#[derive(Debug, Clone)]
pub enum Addr {
    Unix(PathBuf),
    Tcp(u16),
}

impl Addr {
    /// Connects (read and write timeouts [`TIMEOUT`]).
    pub fn try_connect(&self) -> io::Result<Conn> {
        let conn = match self {
            Addr::Unix(p) => Conn::Unix(UnixStream::connect(p)?),
            Addr::Tcp(port) => {
                let s = TcpStream::connect(("127.0.0.1", *port))?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
        };
        conn.set_timeout(TIMEOUT);
        Ok(conn)
    }

    /// Connects or panics.
    pub fn connect(&self) -> Conn {
        self.try_connect()
            .unwrap_or_else(|e| panic!("connect {self:?}: {e}"))
    }

    /// The `--listen` argument for this address.
    pub fn listen_arg(&self) -> String {
        match self {
            Addr::Unix(p) => format!("unix:{}", p.display()),
            Addr::Tcp(port) => format!("127.0.0.1:{port}"),
        }
    }

    /// The readiness condition of a server on this address.
    pub fn ready(&self) -> Ready {
        match self {
            Addr::Unix(p) => Ready::Unix(p.clone()),
            Addr::Tcp(port) => Ready::Tcp(*port),
        }
    }
}

/// A client connection.
#[derive(Debug)]
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    /// Sets the read and write timeouts.
    pub fn set_timeout(&self, d: Duration) {
        let _ = match self {
            Conn::Unix(s) => s
                .set_read_timeout(Some(d))
                .and(s.set_write_timeout(Some(d))),
            Conn::Tcp(s) => s
                .set_read_timeout(Some(d))
                .and(s.set_write_timeout(Some(d))),
        };
    }

    /// A second handle on the same socket (for a writer thread).
    pub fn try_clone(&self) -> Conn {
        match self {
            Conn::Unix(s) => Conn::Unix(s.try_clone().expect("clone socket")),
            Conn::Tcp(s) => Conn::Tcp(s.try_clone().expect("clone socket")),
        }
    }

    /// Writes all of `data` or panics.
    pub fn send(&mut self, data: &[u8]) {
        self.write_all(data).expect("write to the server");
    }

    /// Writes `data` one byte per write call.
    pub fn send_bytewise(&mut self, data: &[u8]) {
        for b in data {
            self.write_all(std::slice::from_ref(b))
                .expect("write to the server");
        }
    }

    /// Reads one record; `Ok(None)` on end of stream before its first byte.
    pub fn read_record(&mut self) -> io::Result<Option<(Record, Vec<u8>)>> {
        let mut header = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            let n = self.read(&mut header[got..])?;
            if n == 0 {
                return if got == 0 {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
            got += n;
        }
        assert_eq!(header[0], 1, "server record version: {header:?}");
        let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let mut rest = vec![0u8; len + usize::from(header[6])];
        self.read_exact(&mut rest)?;
        let mut raw = header.to_vec();
        raw.extend_from_slice(&rest);
        rest.truncate(len);
        let record = Record {
            record_type: header[1],
            id: u16::from_be_bytes([header[2], header[3]]),
            content: rest,
        };
        Ok(Some((record, raw)))
    }

    /// Reads one record or panics (on end of stream too).
    pub fn record(&mut self) -> (Record, Vec<u8>) {
        match self.read_record() {
            Ok(Some(r)) => r,
            Ok(None) => panic!("server closed the connection where a record was expected"),
            Err(e) => panic!("reading a record: {e}"),
        }
    }

    /// Reads records until END_REQUEST for `id`.
    pub fn reply(&mut self, id: u16) -> Reply {
        let mut reply = Reply {
            raw: Vec::new(),
            records: Vec::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            app_status: 0,
            protocol_status: 255,
        };
        loop {
            let (r, raw) = self.record();
            reply.raw.extend_from_slice(&raw);
            assert_eq!(r.id, id, "record for another request: {r:?}");
            match r.record_type {
                STDOUT => reply.stdout.extend_from_slice(&r.content),
                STDERR => reply.stderr.extend_from_slice(&r.content),
                END => {
                    assert_eq!(r.content.len(), 8, "END_REQUEST body");
                    let c = &r.content;
                    reply.app_status = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                    reply.protocol_status = c[4];
                    reply.records.push(r);
                    return reply;
                }
                other => panic!("unexpected record type {other}: {r:?}"),
            }
            reply.records.push(r);
        }
    }

    /// Sends `data` and reads the reply for `id`.
    pub fn roundtrip(&mut self, id: u16, data: &[u8]) -> Reply {
        self.send(data);
        self.reply(id)
    }

    /// Reads until the server closes; returns what arrived first (a reset counts as closed).
    pub fn drain_to_close(&mut self) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match self.read(&mut buf) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!("server did not close the connection within {TIMEOUT:?}")
                }
                Err(_) => return got,
            }
        }
    }

    /// Asserts the server closes the connection without sending anything.
    pub fn assert_closed_silently(&mut self, what: &str) {
        let got = self.drain_to_close();
        assert!(
            got.is_empty(),
            "{what}: server answered {got:?} before closing"
        );
    }

    /// Writes `data`, ignoring a failure (the server may close while we write).
    pub fn send_lossy(&mut self, data: &[u8]) {
        let _ = self.write_all(data);
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
