//! `cgi-fcgi -bind -connect SOCK` (libfcgi's bridge: its environment becomes PARAMS, its stdin STDIN, the reply goes to stdout) against the two cgate servers.
//!
//! Notes for the table: cgi-fcgi has no HTTP side: every request is one process and one
//! FastCGI connection, so "the same client connection" cannot be asked for; the unread
//! case checks the POST alone (exact reply, exit status 0). The exact bytes are cgate's
//! FastCGI reply as cgi-fcgi prints it. The `Proxy:` header is its CGI form, HTTP_PROXY.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::cases::{Rows, Verdict, report, two_hundred_from_16_threads, verdict};
use crate::frontends::Stage;
use crate::support::{data, find_program, sha256_hex};

/// The hello app's reply exactly as cgi-fcgi prints it.
const HELLO_REPLY: &[u8] = b"Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 14\r\n\r\nHello, world!\n";

/// Runs one request: `env` as the whole environment, `body` on stdin (written from a second
/// thread); returns stdout, or an error naming the exit status and stderr.
fn run(sock: &Path, env: &[(&str, &str)], body: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new(find_program("cgi-fcgi"))
        .arg("-bind")
        .arg("-connect")
        .arg(sock)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn cgi-fcgi: {e}"))?;
    let mut stdin = child.stdin.take().expect("stdin piped");
    let out = std::thread::scope(|s| {
        s.spawn(move || {
            let _ = stdin.write_all(body);
        });
        child.wait_with_output()
    })
    .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "cgi-fcgi {} after {} bytes of output; stderr {:?}",
            out.status,
            out.stdout.len(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

fn get(path: &str) -> Vec<(&str, &str)> {
    vec![
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", path),
        ("QUERY_STRING", ""),
    ]
}

fn hello(sock: &Path) -> Result<(), String> {
    let out = run(sock, &get("/hello"), b"")?;
    if out != HELLO_REPLY {
        return Err(format!("reply {:?}", String::from_utf8_lossy(&out)));
    }
    Ok(())
}

fn echo_json(out: &[u8]) -> Result<Value, String> {
    let at = out.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = at.map_or((out, &b""[..]), |i| (&out[..i], &out[i + 4..]));
    if !head.starts_with(b"Status: 200 OK\r\nContent-Type: application/json\r\n") {
        return Err(format!("head {:?}", String::from_utf8_lossy(head)));
    }
    serde_json::from_slice(body).map_err(|e| format!("echo JSON: {e}"))
}

fn post_env<'a>(path: &'a str, query: &'a str, len: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut env = get(path);
    env[2].1 = "POST";
    env[5].1 = query;
    env.push(("CONTENT_LENGTH", len));
    env.push(("CONTENT_TYPE", "application/octet-stream"));
    env
}

fn environ(sock: &Path) -> Result<String, String> {
    let body = b"k=v&n=1";
    let mut env = post_env("/echo/a b/c", "x=1&y=%2F", "7");
    env.push(("HTTP_PROXY", "evil"));
    let v = echo_json(&run(sock, &env, body)?)?;
    let e = &v["environ"];
    let var = |n: &str| e.get(n).and_then(Value::as_str);
    let want = [
        ("REQUEST_METHOD", Some("POST")),
        ("SCRIPT_NAME", Some("")),
        ("PATH_INFO", Some("/echo/a b/c")),
        ("QUERY_STRING", Some("x=1&y=%2F")),
        ("CONTENT_LENGTH", Some("7")),
        ("HTTP_PROXY", None),
    ];
    let mut wrong: Vec<String> = want
        .iter()
        .filter(|(n, w)| var(n) != *w)
        .map(|(n, w)| format!("{n}={:?} (want {w:?})", var(n)))
        .collect();
    if v["input"]["sha256"].as_str() != Some(sha256_hex(body).as_str()) {
        wrong.push(format!("input {}", v["input"]));
    }
    if wrong.is_empty() {
        Ok("as set; no HTTP_PROXY".into())
    } else {
        Err(wrong.join(", "))
    }
}

fn post_16m(sock: &Path) -> Result<String, String> {
    let body = data(16 << 20, 16);
    let len = body.len().to_string();
    let v = echo_json(&run(sock, &post_env("/echo", "", &len), &body)?)?;
    let ok = v["input"]["length"].as_u64() == Some(body.len() as u64)
        && v["input"]["sha256"].as_str() == Some(sha256_hex(&body).as_str());
    if ok {
        Ok("length and sha256 equal".into())
    } else {
        Err(format!("echo saw {}", v["input"]))
    }
}

fn concurrent(sock: &Path) -> Result<String, String> {
    let errors = two_hundred_from_16_threads(|| hello(sock));
    match errors.first() {
        None => Ok("200 exact".into()),
        Some(first) => Err(format!("{} of 200 failed, first: {first}", errors.len())),
    }
}

fn unread(sock: &Path, len: usize) -> Result<String, String> {
    let body = data(len, 1);
    let len = body.len().to_string();
    let out = run(sock, &post_env("/hello", "", &len), &body)?;
    if out != HELLO_REPLY {
        return Err(format!("reply {:?}", String::from_utf8_lossy(&out)));
    }
    Ok("exact, exit 0 (no second request: no HTTP side)".into())
}

/// Writes a line to the FIFO once the script has opened it for reading.
fn open_gate(gate: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    for _ in 0..12_000 {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(gate)
        {
            Ok(mut f) => return f.write_all(b"go\n").map_err(|e| e.to_string()),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("gate: {e}")),
        }
    }
    Err("the script never opened its gate".into())
}

fn stream(sock: &Path, gate: &Path) -> Result<String, String> {
    let mut child = Command::new(find_program("cgi-fcgi"))
        .arg("-bind")
        .arg("-connect")
        .arg(sock)
        .env_clear()
        .envs([("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/cgi/slow.sh")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn cgi-fcgi: {e}"))?;
    let mut stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            all.extend_from_slice(&buf[..n]);
            let _ = tx.send(all.clone());
        }
        all
    });
    let mut first = false;
    while let Ok(seen) = rx.recv_timeout(Duration::from_secs(30)) {
        if seen.ends_with(b"\r\n\r\none\n") {
            first = true;
            break;
        }
    }
    let gated = open_gate(gate);
    let all = reader.join().expect("reader thread");
    let status = child.wait().map_err(|e| e.to_string())?;
    let whole = all.ends_with(b"\r\n\r\none\ntwo\n") && status.success();
    match (first, whole, gated) {
        (true, true, Ok(())) => Ok("one\\n arrived before two\\n was written".into()),
        (f, _, g) => Err(format!(
            "one\\n first: {f}, gate {g:?}, {status}, output {:?}",
            String::from_utf8_lossy(&all)
        )),
    }
}

#[test]
fn cgi_fcgi_bind_connect() {
    let stage = Stage::with_sockets("cgi-fcgi");
    let sock = stage.sock();
    let rows: Rows = vec![
        (
            "hello x 20",
            verdict(
                (0..20)
                    .try_for_each(|_| hello(&sock))
                    .map(|()| "20 exact".into()),
            ),
        ),
        ("environ", verdict(environ(&sock))),
        ("POST 16 MiB", verdict(post_16m(&sock))),
        ("200 x 16 concurrent", verdict(concurrent(&sock))),
        ("stream", verdict(stream(&stage.cgi_sock(), &stage.gate))),
        (
            "unread 64 KiB (+ GET: n/a)",
            verdict(unread(&sock, 64 << 10)),
        ),
        ("unread 1 MiB (+ GET: n/a)", verdict(unread(&sock, 1 << 20))),
        (
            "GET on the same client connection",
            Verdict::Cannot("cgi-fcgi has no HTTP side: one connection per run"),
        ),
    ];
    report("cgi-fcgi", &rows);
}
