//! The access log: one line per request, formatted on the request's thread, written by a writer thread.
//!
//! Request threads never wait on the file: lines go through a bounded channel
//! ([`QUEUE_LINES`]); when it is full the line is dropped and counted (`access_log_dropped`
//! in the status). SIGUSR1 reopens the file (after rotation).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use super::AccessFormat;
use super::clock::Utc;
use super::metrics::COUNTERS;

/// Lines queued for the writer at most; more are dropped and counted.
pub const QUEUE_LINES: usize = 8192;

enum Msg {
    Line(String),
    Reopen,
    Flush(SyncSender<()>),
}

struct Log {
    tx: SyncSender<Msg>,
    format: AccessFormat,
}

static LOG: OnceLock<Log> = OnceLock::new();

/// What one access-log line says about a finished request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// When the request started.
    pub time: Utc,
    /// Request id.
    pub id: &'a str,
    /// REMOTE_ADDR.
    pub remote: &'a str,
    /// REMOTE_USER.
    pub user: &'a str,
    /// REQUEST_METHOD.
    pub method: &'a str,
    /// REQUEST_URI (or SCRIPT_NAME + PATH_INFO + ?QUERY_STRING).
    pub uri: &'a str,
    /// SERVER_PROTOCOL.
    pub protocol: &'a str,
    /// Status sent (0: none).
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// HTTP_REFERER.
    pub referer: &'a str,
    /// HTTP_USER_AGENT.
    pub agent: &'a str,
    /// Duration in milliseconds.
    pub ms: u64,
    /// complete, cut, aborted or client-gone.
    pub outcome: &'a str,
}

fn dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// Escapes what must not appear raw inside a quoted field: `"`, `\`, controls, non-ASCII.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02X}"));
                }
            }
        }
    }
    out
}

impl Entry<'_> {
    /// The line in `format`, without the newline.
    pub fn format(&self, format: AccessFormat) -> String {
        match format {
            AccessFormat::Combined => format!(
                "{} - {} [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {} {}ms {}",
                dash(&quoted(self.remote)),
                dash(&quoted(self.user)),
                self.time.clf(),
                quoted(self.method),
                quoted(self.uri),
                quoted(self.protocol),
                self.status,
                self.bytes,
                dash(&quoted(self.referer)),
                dash(&quoted(self.agent)),
                dash(&quoted(self.id)),
                self.ms,
                self.outcome
            ),
            AccessFormat::Json => serde_json::json!({
                "time": self.time.rfc3339(),
                "id": self.id,
                "remote_addr": self.remote,
                "remote_user": self.user,
                "method": self.method,
                "uri": self.uri,
                "protocol": self.protocol,
                "status": self.status,
                "bytes": self.bytes,
                "referer": self.referer,
                "user_agent": self.agent,
                "ms": self.ms,
                "outcome": self.outcome,
            })
            .to_string(),
        }
    }
}

fn open_file(path: &Path) -> io::Result<Box<dyn Write + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(io::stdout()));
    }
    let f: File = OpenOptions::new().create(true).append(true).open(path)?;
    Ok(Box::new(f))
}

fn writer(path: PathBuf, first: Box<dyn Write + Send>, rx: Receiver<Msg>) {
    let mut out = BufWriter::with_capacity(64 * 1024, first);
    while let Ok(mut msg) = rx.recv() {
        loop {
            match msg {
                Msg::Line(l) => {
                    let _ = out.write_all(l.as_bytes());
                }
                Msg::Reopen => {
                    let _ = out.flush();
                    match open_file(&path) {
                        Ok(f) => {
                            out = BufWriter::with_capacity(64 * 1024, f);
                            super::event(&format!("access log reopened: {}", path.display()));
                        }
                        Err(e) => super::event(&format!(
                            "access log {}: cannot reopen, keeping the old file: {e}",
                            path.display()
                        )),
                    }
                }
                Msg::Flush(ack) => {
                    let _ = out.flush();
                    let _ = ack.send(());
                }
            }
            match rx.try_recv() {
                Ok(m) => msg = m,
                Err(_) => break,
            }
        }
        // Nothing more queued: the lines reach the file now.
        let _ = out.flush();
    }
}

/// Opens the access log at `path` (`-`: standard output) and starts its writer thread.
pub fn open(path: &Path, format: AccessFormat) -> io::Result<()> {
    let first = open_file(path)
        .map_err(|e| io::Error::new(e.kind(), format!("access log {}: {e}", path.display())))?;
    let (tx, rx) = sync_channel(QUEUE_LINES);
    let p = path.to_path_buf();
    std::thread::Builder::new()
        .name("cgate-access-log".into())
        .spawn(move || writer(p, first, rx))?;
    if LOG.set(Log { tx, format }).is_err() {
        return Err(io::Error::other("the access log is already open"));
    }
    Ok(())
}

/// `true` when an access log is open.
pub fn enabled() -> bool {
    LOG.get().is_some()
}

/// Queues the line for `entry`; drops (and counts) it when the writer is behind.
pub fn record(entry: &Entry<'_>) {
    let Some(log) = LOG.get() else {
        return;
    };
    let mut line = entry.format(log.format);
    line.push('\n');
    match log.tx.try_send(Msg::Line(line)) {
        Ok(()) => {}
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => COUNTERS.log_dropped(),
    }
}

/// Reopens the file (SIGUSR1); the request threads are not held up.
pub fn reopen() {
    if let Some(log) = LOG.get() {
        let _ = log.tx.send(Msg::Reopen);
    }
}

/// Waits (up to a second) until every queued line is written.
pub fn flush() {
    if let Some(log) = LOG.get() {
        let (tx, rx) = sync_channel(1);
        if log.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            time: Utc::from_unix_millis(951_827_696_789),
            id: "r1",
            remote: "127.0.0.1",
            user: "",
            method: "GET",
            uri: "/a?b=\"c\"",
            protocol: "HTTP/1.1",
            status: 200,
            bytes: 12,
            referer: "",
            agent: "t\u{e9}st",
            ms: 3,
            outcome: "complete",
        }
    }

    #[test]
    fn combined_line() {
        assert_eq!(
            entry().format(AccessFormat::Combined),
            "127.0.0.1 - - [29/Feb/2000:12:34:56 +0000] \"GET /a?b=\\\"c\\\" HTTP/1.1\" 200 12 \
             \"-\" \"t\\xC3\\xA9st\" r1 3ms complete"
        );
    }

    #[test]
    fn json_line() {
        let v: serde_json::Value =
            serde_json::from_str(&entry().format(AccessFormat::Json)).unwrap();
        assert_eq!(v["uri"], "/a?b=\"c\"");
        assert_eq!(v["status"], 200);
        assert_eq!(v["time"], "2000-02-29T12:34:56.789Z");
        assert_eq!(v["outcome"], "complete");
    }
}
