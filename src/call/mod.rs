//! `cgate call ADDR [TARGET]`: one FastCGI request to any responder, its CGI reply printed;
//! with `--repeat` a load run and its latency summary (see [`load`]).

pub mod evloop;
pub mod load;
pub mod tally;

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::Duration;

use clap::Args;

use crate::cgi::reply::{Progress, ReplyParser};
use crate::fastcgi::client::exchange::{Exchange, is_idempotent};
use crate::fastcgi::client::request::{self, Call, Handler};
use crate::fastcgi::client::{BackendAddr, Conn};
use crate::fastcgi::proto::ProtocolStatus;
use crate::local::LocalRequest;

/// Exit code: the reply met `--expect` (or, without it, was a complete 1xx-3xx reply).
pub const EXIT_MET: i32 = 0;
/// Exit code: a reply came but not the expected one.
pub const EXIT_NOT_MET: i32 = 1;
/// Exit code: bad arguments.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: no reply (connection, timeout or protocol failure).
pub const EXIT_FAILED: i32 = 3;

/// Largest body read into memory (`-d @-`, and any `-d @FILE` with `--repeat`): 64 MiB.
pub const MAX_MEMORY_BODY: u64 = 64 << 20;

/// The arguments of `cgate call`.
#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Exit codes: 0 reply as expected (--expect CODE, else a complete \
    1xx-3xx reply), 1 another reply, 2 bad arguments, 3 no reply (connection, timeout or \
    protocol failure).",
    next_help_heading = "Request and reply"
)]
pub struct CallArgs {
    /// The responder: unix:/path, /path or host:port.
    #[arg(value_name = "ADDR")]
    pub addr: String,
    /// The request target, /path?query.
    #[arg(value_name = "TARGET", default_value = "/")]
    pub target: String,
    /// HTTP method (default GET, or POST with -d).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// A request header, 'Name: value' (repeatable): HTTP_* params, CONTENT_TYPE.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// The body: text, @FILE (streamed) or @- (stdin).
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub data: Option<String>,
    /// Any param, NAME=VALUE (repeatable; replaces a default of that name).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// SCRIPT_FILENAME (php-fpm needs it: the script to run).
    #[arg(long, value_name = "PATH")]
    pub script_filename: Option<String>,
    /// SCRIPT_NAME.
    #[arg(long, default_value = "")]
    pub script_name: String,
    /// Print only the reply head (status and headers).
    #[arg(short = 'i', long = "head", conflicts_with = "status_only")]
    pub head_only: bool,
    /// Print only the status line.
    #[arg(short = 's', long = "status")]
    pub status_only: bool,
    /// Ask the responder's values (GET_VALUES) instead of sending a request.
    #[arg(long)]
    pub get_values: bool,
    /// Seconds to wait for the connection and for each step of the reply.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    /// The status code that counts as success (exit 0; else 1).
    #[arg(long, value_name = "CODE")]
    pub expect: Option<u16>,
    /// Send the request N times and print a latency summary instead of the reply.
    #[arg(long, value_name = "N")]
    pub repeat: Option<u64>,
    /// With --repeat: connections sending at once (each kept alive).
    #[arg(long, value_name = "C", default_value_t = 1)]
    pub concurrency: usize,
}

/// A request ready to send: its address, head records and body.
pub(crate) struct Prepared {
    pub addr: BackendAddr,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Body,
    pub len: Option<u64>,
    pub timeout: Duration,
    pub idempotent: bool,
}

/// Where the body comes from.
pub(crate) enum Body {
    None,
    Bytes(Vec<u8>),
    File(File),
}

fn bad(msg: impl std::fmt::Display) -> String {
    msg.to_string()
}

fn read_bounded(mut r: impl Read, what: &str) -> Result<Vec<u8>, String> {
    let mut v = Vec::new();
    (&mut r)
        .take(MAX_MEMORY_BODY + 1)
        .read_to_end(&mut v)
        .map_err(|e| format!("cannot read body {what}: {e}"))?;
    if v.len() as u64 > MAX_MEMORY_BODY {
        return Err(format!(
            "body {what} is larger than {MAX_MEMORY_BODY} bytes"
        ));
    }
    Ok(v)
}

impl CallArgs {
    /// Checks the arguments and builds the params (the defaults of `cgate request`).
    pub(crate) fn prepare(&self, in_memory: bool) -> Result<Prepared, String> {
        let addr: BackendAddr = self.addr.parse().map_err(bad)?;
        if !(self.timeout > 0.0 && self.timeout <= 86400.0) {
            return Err("--timeout must be in (0, 86400] seconds".into());
        }
        let (body, len) = match self.data.as_deref() {
            None => (Body::None, None),
            Some("@-") => {
                let v = read_bounded(io::stdin().lock(), "stdin")?;
                let n = v.len() as u64;
                (Body::Bytes(v), Some(n))
            }
            Some(d) if d.starts_with('@') => {
                let f = File::open(&d[1..])
                    .map_err(|e| format!("cannot read body {}: {e}", &d[1..]))?;
                let n = f
                    .metadata()
                    .map_err(|e| format!("cannot read body {}: {e}", &d[1..]))?
                    .len();
                if in_memory {
                    (Body::Bytes(read_bounded(f, &d[1..])?), Some(n))
                } else {
                    (Body::File(f), Some(n))
                }
            }
            Some(d) => (Body::Bytes(d.as_bytes().to_vec()), Some(d.len() as u64)),
        };
        let local = LocalRequest {
            method: self.method.clone(),
            headers: self.headers.clone(),
            data: None,
            target: self.target.clone(),
            script_name: self.script_name.clone(),
        };
        let env = local.environ(len).map_err(bad)?;
        let mut params: Vec<(Vec<u8>, Vec<u8>)> =
            env.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        let mut set = |name: &[u8], value: &[u8]| {
            params.retain(|(n, _)| n != name);
            params.push((name.to_vec(), value.to_vec()));
        };
        if let Some(f) = &self.script_filename {
            set(b"SCRIPT_FILENAME", f.as_bytes());
        }
        for p in &self.params {
            let (n, v) = p
                .split_once('=')
                .filter(|(n, _)| !n.is_empty())
                .ok_or_else(|| format!("-p {p:?}: expected NAME=VALUE"))?;
            set(n.as_bytes(), v.as_bytes());
        }
        let method = params.iter().rev().find(|(n, _)| n == b"REQUEST_METHOD");
        let idempotent = method.is_some_and(|(_, m)| is_idempotent(m));
        Ok(Prepared {
            idempotent,
            addr,
            params,
            body,
            len,
            timeout: Duration::from_secs_f64(self.timeout),
        })
    }
}

impl Prepared {
    /// BEGIN_REQUEST + PARAMS for request id 1.
    pub(crate) fn head(&self, keep_conn: bool) -> Vec<u8> {
        let mut out = Vec::new();
        Exchange::new(1, keep_conn)
            .begin(&mut out, self.params.iter().map(|(n, v)| (&n[..], &v[..])));
        out
    }
}

/// Prints the reply as it comes (all of it, the head, or the status line) and parses its head.
struct Printer<W: Write> {
    out: W,
    parser: Option<ReplyParser>,
    status: Option<u16>,
    head_only: bool,
    status_only: bool,
}

impl<W: Write> Handler for Printer<W> {
    fn stdout(&mut self, data: &[u8]) -> io::Result<()> {
        let full = !(self.head_only || self.status_only);
        if full {
            self.out.write_all(data)?;
        }
        let Some(p) = self.parser.as_mut() else {
            return Ok(());
        };
        match p.feed(data) {
            Progress::NeedMore if self.head_only => self.out.write_all(data)?,
            Progress::NeedMore => {}
            Progress::Head { head, body } => {
                self.parser = None;
                self.status = crate::gateway::head::parse_status(&head.status).ok();
                if self.status_only {
                    writeln!(self.out, "{}", head.status)?;
                } else if self.head_only {
                    self.out.write_all(&data[..data.len() - body.len()])?;
                }
            }
            Progress::Error(e) => {
                self.parser = None;
                eprintln!("cgate call: invalid CGI reply head: {e}");
            }
        }
        Ok(())
    }

    fn stderr(&mut self, data: &[u8]) {
        let _ = io::stderr().write_all(data);
    }

    fn batch_end(&mut self, _ended: bool) -> io::Result<()> {
        self.out.flush()
    }
}

/// Runs `cgate call`; returns the exit code.
pub fn run(args: CallArgs) -> i32 {
    if args.repeat.is_some() {
        return load::run(&args);
    }
    let prepared = match args.prepare(false) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cgate call: {e}");
            return EXIT_USAGE;
        }
    };
    let mut conn = match Conn::connect(&prepared.addr, prepared.timeout) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cgate call: cannot connect to {}: {e}", prepared.addr);
            return EXIT_FAILED;
        }
    };
    if args.get_values {
        return get_values(&mut conn, prepared.timeout);
    }
    one(&args, prepared, &mut conn)
}

fn get_values(conn: &mut Conn, timeout: Duration) -> i32 {
    match request::query_values(conn, timeout) {
        Ok(v) => {
            let mut out = io::stdout().lock();
            for (n, val) in &v.pairs {
                let _ = writeln!(out, "{n}={val}");
            }
            EXIT_MET
        }
        Err(e) => {
            eprintln!("cgate call: GET_VALUES: {e}");
            EXIT_FAILED
        }
    }
}

fn one(args: &CallArgs, mut prepared: Prepared, conn: &mut Conn) -> i32 {
    let head = prepared.head(false);
    let mut printer = Printer {
        out: io::stdout().lock(),
        parser: Some(ReplyParser::new(
            crate::cgi::reply::DEFAULT_MAX_HEADER_BYTES,
        )),
        status: None,
        head_only: args.head_only,
        status_only: args.status_only,
    };
    let mut bytes;
    let body: Option<&mut dyn Read> = match &mut prepared.body {
        Body::None => None,
        Body::Bytes(b) => {
            bytes = &b[..];
            Some(&mut bytes)
        }
        Body::File(f) => Some(f),
    };
    let call = Call {
        head: &head,
        body,
        body_len: prepared.len,
        timeout: prepared.timeout,
    };
    let result = request::run(conn, Exchange::new(1, false), call, &mut printer);
    let _ = printer.out.flush();
    match result {
        Err(e) => {
            eprintln!("cgate call: {}: {e}", prepared.addr);
            EXIT_FAILED
        }
        Ok(end) if end.status != ProtocolStatus::RequestComplete => {
            eprintln!(
                "cgate call: {}: the backend refused the request: {:?}",
                prepared.addr, end.status
            );
            EXIT_FAILED
        }
        Ok(_) => verdict(printer.status, args.expect),
    }
}

/// The exit code for a reply with this status (`None`: no valid head).
pub(crate) fn verdict(status: Option<u16>, expect: Option<u16>) -> i32 {
    match (status, expect) {
        (Some(s), Some(e)) if s == e => EXIT_MET,
        (Some(s), None) if s < 400 => EXIT_MET,
        _ => EXIT_NOT_MET,
    }
}
