//! One request of the differential test and what came of it: status, key headers, body bytes, transport errors, streaming order.

use std::io::Write;
use std::net::Shutdown;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::http::{Arrival, Conn};
use crate::support::sha256_hex;

/// What one server did with one request.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Status code, `None` when no response head arrived.
    pub status: Option<u16>,
    /// Response header fields.
    pub headers: Vec<(String, String)>,
    /// Body bytes received (all of them, or up to the error).
    pub body: Vec<u8>,
    /// Transport error: no head, or the body was cut.
    pub error: Option<String>,
    /// Replaces the body in the table (e.g. one line of an environment listing).
    pub summary: Option<String>,
    /// Further facts for the table.
    pub notes: Vec<String>,
    /// Slow stream: whether the first part reached the client before the script was let
    /// go on to write the second.
    pub streamed: Option<bool>,
    /// Processes of the script still alive after the request (census, see `sites`).
    pub leftovers: Vec<i32>,
}

impl Outcome {
    /// First value of header `name`, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// SHA-256 of the body, hex.
    pub fn sha(&self) -> String {
        sha256_hex(&self.body)
    }

    /// Whether the body arrived whole (a response, no transport error).
    pub fn complete(&self) -> bool {
        self.status.is_some() && self.error.is_none()
    }

    /// One table cell.
    pub fn cell(&self) -> String {
        let Some(status) = self.status else {
            return format!("no response ({})", self.error.as_deref().unwrap_or("?"));
        };
        let mut parts = vec![status.to_string()];
        if let Some(t) = self.header("content-type") {
            parts.push(t.to_owned());
        }
        if let Some(l) = self.header("location") {
            parts.push(format!("Location {l}"));
        }
        parts.push(match &self.summary {
            Some(s) => s.clone(),
            None => body_view(&self.body),
        });
        if let Some(e) = &self.error {
            parts.push(format!("**cut**: {e}"));
        }
        match self.streamed {
            Some(true) => parts.push("streamed".into()),
            Some(false) => parts.push("**buffered**".into()),
            None => {}
        }
        parts.extend(self.notes.iter().cloned());
        if !self.leftovers.is_empty() {
            parts.push(format!(
                "**{} script process(es) left**",
                self.leftovers.len()
            ));
        }
        parts.join(", ").replace('|', "\\|")
    }
}

fn body_view(body: &[u8]) -> String {
    if body.is_empty() {
        return "empty body".into();
    }
    let printable = body
        .iter()
        .all(|&b| b == b'\n' || (0x20..0x7f).contains(&b));
    if printable && body.len() <= 40 {
        format!("`{}`", String::from_utf8_lossy(body).replace('\n', "\\n"))
    } else {
        format!("{} B sha256 {}…", body.len(), &sha256_hex(body)[..12])
    }
}

/// Sends one request with `headers` and reads the whole answer; a body is sent from a
/// second thread while the answer is read, so a server that answers before reading it all
/// (or never reads it) cannot block the client.
pub fn fetch(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Outcome {
    let mut out = Outcome::default();
    let mut conn = match Conn::open(port) {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(format!("connect: {e}"));
            return out;
        }
    };
    let len = body.len().to_string();
    let mut all = headers.to_vec();
    all.push(("Connection", "close"));
    if !body.is_empty() {
        all.push(("Content-Length", &len));
    }
    if let Err(e) = conn.send_request(method, path, &all, b"") {
        out.error = Some(format!("send: {e}"));
        return out;
    }
    let mut writer = conn.stream().try_clone().expect("clone socket");
    std::thread::scope(|s| {
        let sent = s.spawn(move || {
            for piece in body.chunks(1 << 20) {
                writer.write_all(piece)?;
            }
            Ok::<(), std::io::Error>(())
        });
        read_answer(&mut conn, method, &mut out);
        // Unblocks the sender if the server stopped reading.
        let _ = conn.stream().shutdown(Shutdown::Both);
        if let Ok(Err(e)) = sent.join() {
            out.notes.push(format!("upload failed ({})", e.kind()));
        }
    });
    out
}

fn read_answer(conn: &mut Conn, method: &str, out: &mut Outcome) {
    let head = match conn.read_head(method) {
        Ok(h) => h,
        Err(e) => {
            out.error = Some(e.to_string());
            return;
        }
    };
    out.status = Some(head.status);
    out.headers = head.headers.clone();
    let mut reader = conn.body(&head);
    if let Err(e) = reader.read_to_end() {
        out.error = Some(e.to_string());
    }
    out.body = reader.received().to_vec();
}

/// Whether `one\n` and `two\n` of `body` were completed by different reads, the first
/// one earlier.
fn arrived_apart(arrivals: &[Arrival], body: &[u8]) -> bool {
    let end_of = |needle: &[u8]| {
        body.windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + needle.len())
    };
    let piece_of = |end: usize| {
        arrivals
            .iter()
            .position(|a| a.offset < end && end <= a.offset + a.len)
    };
    match (
        end_of(b"one\n").and_then(piece_of),
        end_of(b"two\n").and_then(piece_of),
    ) {
        (Some(a), Some(b)) => a < b && arrivals[a].at <= arrivals[b].at,
        _ => false,
    }
}

/// Writes a line to the FIFO `gate` once its reader is there (bounded wait).
fn open_gate(gate: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(gate)
        {
            Ok(mut f) => return f.write_all(b"go\n").map_err(|e| e.to_string()),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("gate: {e}")),
        }
    }
}

/// GET slow.sh, which writes `one\n`, waits for a line on `gate`, then writes `two\n`.
/// The gate is opened when `one\n` has reached this client, or after `fallback` when it
/// has not (a buffering server): `streamed` says which happened first.
pub fn slow(port: u16, path: &str, gate: &Path, fallback: Duration) -> Outcome {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let opener = s.spawn(move || {
            let by_client = rx.recv_timeout(fallback).is_ok();
            (by_client, open_gate(gate))
        });
        let mut out = Outcome::default();
        let mut split = false;
        match Conn::open(port).and_then(|mut c| {
            c.send_request("GET", path, &[("Connection", "close")], b"")?;
            Ok(c)
        }) {
            Err(e) => out.error = Some(e.to_string()),
            Ok(mut conn) => match conn.read_head("GET") {
                Err(e) => out.error = Some(e.to_string()),
                Ok(head) => {
                    out.status = Some(head.status);
                    out.headers = head.headers.clone();
                    let mut reader = conn.body(&head);
                    let first = reader.read_until(b"one\n");
                    if first.is_ok() {
                        let _ = tx.send(());
                    }
                    let rest = first.and_then(|_| reader.read_to_end());
                    if let Err(e) = rest {
                        out.error = Some(e.to_string());
                    }
                    out.body = reader.received().to_vec();
                    split = arrived_apart(reader.arrivals(), &out.body);
                }
            },
        }
        drop(tx);
        let (by_client, gate_result) = opener.join().expect("gate thread");
        if let Err(e) = gate_result {
            out.notes.push(e);
        }
        out.streamed = Some(by_client && split);
        out
    })
}
