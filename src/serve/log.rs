//! The access log: one line per request on stderr, written when its response has ended.
//!
//! `127.0.0.1 GET /path?q 200 14 0.42ms`: client address, method, target as sent, status,
//! body bytes handed to the connection, and the time from the request head to the end of
//! the response; ` cut` follows when the response did not end cleanly (the app failed after
//! it started, or the client went away).

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::Instant;

/// One request's log line, printed on drop.
#[derive(Debug)]
pub struct AccessLog {
    remote: IpAddr,
    method: String,
    target: String,
    start: Instant,
    /// The status sent (0 until a response is made).
    pub status: u16,
    /// Body bytes handed to hyper.
    pub bytes: u64,
    /// The body ended cleanly.
    pub complete: bool,
}

impl AccessLog {
    /// A line for the request `method target` from `remote`, begun at `start`.
    pub fn new(remote: IpAddr, method: &str, target: &str, start: Instant) -> AccessLog {
        AccessLog {
            remote,
            method: method.to_owned(),
            target: target.to_owned(),
            start,
            status: 0,
            bytes: 0,
            complete: false,
        }
    }

    /// The line, without its newline.
    pub fn line(&self) -> String {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let cut = if self.complete { "" } else { " cut" };
        let target: String = self.target.chars().take(2048).collect();
        format!(
            "{} {} {} {} {} {ms:.2}ms{cut}",
            self.remote, self.method, target, self.status, self.bytes
        )
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let mut line = self.line();
        line.push('\n');
        // One write(2) per line, without std's stderr lock (connection threads would queue
        // on it): lines of concurrent requests never interleave.
        let _ = nix::unistd::write(std::io::stderr().as_fd(), line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let mut log = AccessLog::new([127, 0, 0, 1].into(), "GET", "/a?b", Instant::now());
        log.status = 200;
        log.bytes = 14;
        let line = log.line();
        assert!(line.starts_with("127.0.0.1 GET /a?b 200 14 "), "{line}");
        assert!(line.ends_with("ms cut"), "{line}");
        log.complete = true;
        let line = log.line();
        assert!(line.ends_with("ms") && !line.contains("cut"), "{line}");
        std::mem::forget(log);
    }
}
