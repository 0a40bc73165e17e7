//! The interop cases against one HTTP front-end, and the table of verdicts every front-end's test prints and asserts.
//!
//! Cases (in this order; the unread bodies last, since on today's code it may take a
//! front-end down with it):
//! - `hello x 20`: 20 GETs of `/hello`, each exact: 200, body `Hello, world!\n`,
//!   `Content-Type: text/plain; charset=utf-8`, `Content-Length: 14` when framed by length,
//!   and no header beyond those the front-end adds itself (Date, Server, ...).
//! - `environ`: a POST of 7 bytes to `/echo/a%20b/c?x=1&y=%2F` with `Proxy: evil`; the
//!   environ as the front-end passes it: REQUEST_METHOD, SCRIPT_NAME, PATH_INFO, QUERY_STRING,
//!   CONTENT_LENGTH, no HTTP_PROXY, and the body's sha256.
//! - `POST 16 MiB`: echo's length and sha256 of a 16 MiB body.
//! - `200 x 16 concurrent`: 200 GETs of `/hello` from 16 threads, all exact.
//! - `stream`: `/cgi/slow.sh` (cgi:DIR) writes `one\n`, waits on a FIFO, writes `two\n`;
//!   the FIFO is opened only once `one\n` has reached the client.
//! - `unread 64 KiB + GET`, `unread 1 MiB + GET`: a POST to `hello` (which never reads
//!   it), then a GET on the same client connection.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::run::slow;
use crate::support::http::{Conn, Response, try_request};
use crate::support::{data, sha256_hex};

/// The hello app's body.
pub const HELLO: &[u8] = b"Hello, world!\n";
/// The hello app's Content-Type.
pub const HELLO_TYPE: &str = "text/plain; charset=utf-8";
/// Headers any front-end may add to a reply (the case-insensitive names).
const FRONT_HEADERS: &[&str] = &[
    "date",
    "server",
    "connection",
    "keep-alive",
    "content-length",
    "transfer-encoding",
];
/// How long the stream case waits for `one\n` before it lets the script go on anyway (a
/// failure bound: reaching it means the front-end buffered).
const STREAM_FALLBACK: Duration = Duration::from_secs(30);

/// What came of one case.
#[derive(Debug)]
pub enum Verdict {
    /// Passed; what was seen.
    Pass(String),
    /// Failed; why.
    Fail(String),
    /// The front-end cannot do this case; why.
    Cannot(&'static str),
}

/// One front-end with an HTTP side, as the cases see it.
pub struct Front {
    /// Table title.
    pub name: &'static str,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// URL prefix of the app (`/hello`, `/echo/...` follow it).
    pub base: &'static str,
    /// Header names this front-end adds beyond [`FRONT_HEADERS`] (lowercase).
    pub own_headers: &'static [&'static str],
    /// The SCRIPT_NAME it passes for the app at `base` (`None`: it sends none).
    pub script_name: Option<&'static str>,
    /// `Err(why)` when its HTTP side closes every connection after one response.
    pub keep_alive: Result<(), &'static str>,
    /// `Err(why)` when it cannot pass a response on before the whole of it has arrived.
    pub streams: Result<(), &'static str>,
}

/// The rows of one front-end's table.
pub type Rows = Vec<(&'static str, Verdict)>;

/// Turns a case's result into a verdict.
pub fn verdict(r: Result<String, String>) -> Verdict {
    match r {
        Ok(s) => Verdict::Pass(s),
        Err(e) => Verdict::Fail(e),
    }
}

/// Checks one hello reply: status, body, Content-Type, Content-Length and nothing else but
/// the front-end's own headers.
pub fn hello_exact(front: &Front, r: &Response) -> Result<(), String> {
    let mut extra = Vec::new();
    let mut ctype = Vec::new();
    for (n, v) in &r.headers {
        let n = n.to_ascii_lowercase();
        if n == "content-type" {
            ctype.push(v.as_str());
        } else if !FRONT_HEADERS.contains(&n.as_str()) && !front.own_headers.contains(&n.as_str()) {
            extra.push(format!("{n}: {v}"));
        }
    }
    let problems = [
        (r.status != 200).then(|| format!("status {}", r.status)),
        (r.body != HELLO).then(|| format!("body {:?}", String::from_utf8_lossy(&r.body))),
        (ctype != [HELLO_TYPE]).then(|| format!("Content-Type {ctype:?}")),
        r.header("content-length")
            .filter(|l| *l != "14")
            .map(|l| format!("Content-Length {l}")),
        (!extra.is_empty()).then(|| format!("unexpected headers {extra:?}")),
    ];
    let p: Vec<String> = problems.into_iter().flatten().collect();
    if p.is_empty() {
        Ok(())
    } else {
        Err(p.join(", "))
    }
}

fn get_hello(front: &Front) -> Result<(), String> {
    let path = format!("{}/hello", front.base);
    let r = try_request("GET", front.port, &path, &[], b"").map_err(|e| e.to_string())?;
    hello_exact(front, &r)
}

fn hello_x20(front: &Front) -> Result<String, String> {
    for i in 0..20 {
        get_hello(front).map_err(|e| format!("request {i}: {e}"))?;
    }
    Ok("20 exact".into())
}

/// Sends a request whose body is written by a second thread while the response is read
/// (a front-end may answer before it has read the body); the writer's error, if any, is
/// returned beside the response.
pub fn exchange(
    conn: &mut Conn,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(Response, Option<String>), String> {
    let len = body.len().to_string();
    let mut all = headers.to_vec();
    all.push(("Content-Length", &len));
    conn.send_request(method, path, &all, b"")
        .map_err(|e| format!("send head: {e}"))?;
    let mut writer = conn.stream().try_clone().map_err(|e| e.to_string())?;
    std::thread::scope(|s| {
        let sent = s.spawn(move || {
            for piece in body.chunks(256 << 10) {
                writer.write_all(piece)?;
            }
            Ok::<(), std::io::Error>(())
        });
        let resp = conn.read_response(method);
        if resp.is_err() {
            // Unblocks the writer if the front-end stopped reading.
            let _ = conn.stream().shutdown(std::net::Shutdown::Both);
        }
        let wrote = sent.join().expect("writer thread");
        let resp = resp.map_err(|e| format!("response: {e}"))?;
        Ok((resp, wrote.err().map(|e| format!("body write failed: {e}"))))
    })
}

fn echo_json(r: &Response) -> Result<Value, String> {
    if r.status != 200 {
        let body = String::from_utf8_lossy(&r.body);
        return Err(format!("status {}: {}", r.status, body.trim_end()));
    }
    serde_json::from_slice(&r.body).map_err(|e| format!("echo JSON: {e}"))
}

fn environ(front: &Front) -> Result<String, String> {
    let body = b"k=v&n=1";
    let path = format!("{}/echo/a%20b/c?x=1&y=%2F", front.base);
    let mut conn = Conn::open(front.port).map_err(|e| e.to_string())?;
    let headers = [
        ("Proxy", "evil"),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Connection", "close"),
    ];
    let (r, _) = exchange(&mut conn, "POST", &path, &headers, body)?;
    let v = echo_json(&r)?;
    let env = &v["environ"];
    let var = |n: &str| env.get(n).and_then(Value::as_str);
    let want: [(&str, Option<&str>); 6] = [
        ("REQUEST_METHOD", Some("POST")),
        ("SCRIPT_NAME", front.script_name),
        ("PATH_INFO", Some("/echo/a b/c")),
        ("QUERY_STRING", Some("x=1&y=%2F")),
        ("CONTENT_LENGTH", Some("7")),
        ("HTTP_PROXY", None),
    ];
    let mut wrong = Vec::new();
    for (name, value) in want {
        if var(name) != value {
            wrong.push(format!("{name}={:?} (want {value:?})", var(name)));
        }
    }
    if v["input"]["sha256"].as_str() != Some(sha256_hex(body).as_str()) {
        wrong.push(format!("input {}", v["input"]));
    }
    if !wrong.is_empty() {
        return Err(wrong.join(", "));
    }
    let sn = front
        .script_name
        .map_or("unset".into(), |s| format!("{s:?}"));
    Ok(format!(
        "SCRIPT_NAME {sn}, PATH_INFO \"/echo/a b/c\", no HTTP_PROXY"
    ))
}

fn post_16m(front: &Front) -> Result<String, String> {
    let len = 16 << 20;
    let body = data(len, 16);
    let path = format!("{}/echo", front.base);
    let mut conn = Conn::open(front.port).map_err(|e| e.to_string())?;
    let headers = [("Connection", "close")];
    let (r, wrote) = exchange(&mut conn, "POST", &path, &headers, &body)?;
    let v = echo_json(&r)?;
    let (got_len, got_sha) = (v["input"]["length"].as_u64(), v["input"]["sha256"].as_str());
    if got_len != Some(len as u64) || got_sha != Some(sha256_hex(&body).as_str()) {
        return Err(format!("echo saw {} ({wrote:?})", v["input"]));
    }
    Ok("length and sha256 equal".into())
}

/// Runs `one` 200 times from 16 threads; the failures, each as `#N: why`.
pub fn two_hundred_from_16_threads<T, E: std::fmt::Display>(
    one: impl Fn() -> Result<T, E> + Sync,
) -> Vec<String> {
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..16 {
            let (errors, one) = (&errors, &one);
            s.spawn(move || {
                for i in (t..200).step_by(16) {
                    if let Err(e) = one() {
                        errors.lock().unwrap().push(format!("#{i}: {e}"));
                    }
                }
            });
        }
    });
    errors.into_inner().unwrap()
}

fn concurrent(front: &Front) -> Result<String, String> {
    let errors = two_hundred_from_16_threads(|| get_hello(front));
    if errors.is_empty() {
        return Ok("200 exact".into());
    }
    Err(format!(
        "{} of 200 failed, first: {}",
        errors.len(),
        errors[..errors.len().min(3)].join("; ")
    ))
}

fn stream(front: &Front, gate: &Path) -> Result<String, String> {
    let out = slow(front.port, "/cgi/slow.sh", gate, STREAM_FALLBACK);
    let ok = out.status == Some(200) && out.body == b"one\ntwo\n" && out.error.is_none();
    match (ok, out.streamed) {
        (true, Some(true)) => Ok("one\\n arrived before two\\n was written".into()),
        _ => Err(format!(
            "status {:?}, body {:?}, error {:?}, streamed {:?} {:?}",
            out.status,
            String::from_utf8_lossy(&out.body),
            out.error,
            out.streamed,
            out.notes
        )),
    }
}

fn unread_then_get(front: &Front, len: usize) -> Result<String, String> {
    let body = data(len, 1);
    let path = format!("{}/hello", front.base);
    let mut conn = Conn::open(front.port).map_err(|e| e.to_string())?;
    let close: &[(&str, &str)] = match front.keep_alive {
        Ok(()) => &[],
        Err(_) => &[("Connection", "close")],
    };
    let (r, wrote) = exchange(&mut conn, "POST", &path, close, &body)?;
    hello_exact(front, &r).map_err(|e| format!("POST: {e}"))?;
    if let Some(e) = wrote {
        return Err(format!("POST answered, but {e}"));
    }
    if front.keep_alive.is_err() {
        get_hello(front).map_err(|e| format!("GET on a new connection: {e}"))?;
        return Ok("POST exact; GET exact on a new connection".into());
    }
    let r = conn
        .send_request("GET", &path, &[], b"")
        .and_then(|()| conn.read_response("GET"))
        .map_err(|e| format!("GET on the same connection: {e}"))?;
    hello_exact(front, &r).map_err(|e| format!("GET on the same connection: {e}"))?;
    Ok("POST exact, then GET exact on the same connection".into())
}

/// Runs every case against `front` (the streaming script's FIFO is `gate`).
pub fn run_http(front: &Front, gate: &Path) -> Rows {
    let mut rows: Rows = vec![
        ("hello x 20", verdict(hello_x20(front))),
        ("environ", verdict(environ(front))),
        ("POST 16 MiB", verdict(post_16m(front))),
        ("200 x 16 concurrent", verdict(concurrent(front))),
    ];
    let streamed = match front.streams {
        Ok(()) => verdict(stream(front, gate)),
        Err(why) => Verdict::Cannot(why),
    };
    rows.push(("stream", streamed));
    rows.push((
        "unread 64 KiB + GET",
        verdict(unread_then_get(front, 64 << 10)),
    ));
    rows.push((
        "unread 1 MiB + GET",
        verdict(unread_then_get(front, 1 << 20)),
    ));
    rows
}

/// Prints the table of `name` and fails the test if any case failed (the server guards
/// then print their logs as they stop).
pub fn report(name: &str, rows: &Rows) {
    let mut table = format!("\n| {name} | case | result |\n|---|---|---|\n");
    for (case, v) in rows {
        let cell = match v {
            Verdict::Pass(s) => format!("ok: {s}"),
            Verdict::Fail(s) => format!("**FAIL**: {s}"),
            Verdict::Cannot(s) => format!("n/a: {s}"),
        };
        table.push_str(&format!(
            "| {name} | {case} | {} |\n",
            cell.replace('|', "\\|")
        ));
    }
    println!("{table}");
    let failed: Vec<&str> = rows
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::Fail(_)))
        .map(|(c, _)| *c)
        .collect();
    if !failed.is_empty() {
        panic!("{name}: {} case(s) failed: {failed:?}", failed.len());
    }
}
