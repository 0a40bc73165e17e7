//! GET_VALUES over a connection: what a backend says of itself (FCGI_MAX_CONNS and the rest).

use std::io;
use std::time::Duration;

use nix::poll::PollFlags;

use super::conn::{Conn, wait};
use super::exchange::{Exchange, Reply};

/// Asks a backend for its values (GET_VALUES) on `conn`, waiting at most `timeout`.
pub fn query_values(
    conn: &mut Conn,
    timeout: Duration,
) -> io::Result<super::exchange::BackendValues> {
    let mut out = Vec::new();
    super::exchange::get_values(&mut out);
    conn.write_all(&out, timeout)?;
    let mut x = Exchange::new(1, false);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((reply, _)) = x.next(&buf).map_err(io::Error::other)? {
            return match reply {
                Reply::Values(content) => {
                    super::exchange::parse_values(content).map_err(io::Error::other)
                }
                _ => Err(io::Error::other("the backend does not answer GET_VALUES")),
            };
        }
        if buf.len() > 70 * 1024 {
            return Err(io::Error::other("GET_VALUES_RESULT too large"));
        }
        match conn.read_some(&mut chunk) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "backend closed the connection",
                ));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let (r, _) = wait(conn.fd(), PollFlags::POLLIN, None, timeout)?;
                if r.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no GET_VALUES_RESULT",
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
