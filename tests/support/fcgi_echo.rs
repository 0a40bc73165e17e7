//! A tiny in-test FastCGI responder that answers with its params, to check web-server configs without cgate.

use super::{chmod, sha256_hex};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

const BEGIN_REQUEST: u8 = 1;
const END_REQUEST: u8 = 3;
const PARAMS: u8 = 4;
const STDIN: u8 = 5;
const STDOUT: u8 = 6;
const GET_VALUES: u8 = 9;
const GET_VALUES_RESULT: u8 = 10;
const KEEP_CONN: u8 = 1;

/// Serves FastCGI on a Unix socket (mode 0666). Each response is `text/plain` with one
/// `NAME=VALUE` line per param (sorted by name) and a last line `STDIN=<len> <sha256>`.
pub struct FcgiEcho {
    sock: PathBuf,
    stop: Arc<AtomicBool>,
    conns: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl FcgiEcho {
    /// Binds `sock` and starts accepting (one thread per connection).
    pub fn start(sock: &Path) -> FcgiEcho {
        let listener =
            UnixListener::bind(sock).unwrap_or_else(|e| panic!("bind {}: {e}", sock.display()));
        chmod(sock, 0o666);
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(AtomicUsize::new(0));
        let (stop2, conns2) = (stop.clone(), conns.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(s) = stream {
                    conns2.fetch_add(1, Ordering::SeqCst);
                    std::thread::spawn(move || {
                        let _ = serve(s);
                    });
                }
            }
        });
        FcgiEcho {
            sock: sock.to_path_buf(),
            stop,
            conns,
            thread: Some(thread),
        }
    }

    /// Number of connections accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

impl Drop for FcgiEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.sock);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Parses a [`FcgiEcho`] body into name -> value.
pub fn parse(body: &str) -> BTreeMap<String, String> {
    body.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn record(out: &mut Vec<u8>, typ: u8, id: u16, content: &[u8]) {
    let len = u16::try_from(content.len()).expect("record content fits");
    out.extend_from_slice(&[1, typ]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(content);
}

fn pair_len(data: &[u8], at: &mut usize) -> Option<usize> {
    let b = *data.get(*at)?;
    if b < 0x80 {
        *at += 1;
        return Some(b as usize);
    }
    let four: [u8; 4] = data.get(*at..*at + 4)?.try_into().ok()?;
    *at += 4;
    Some((u32::from_be_bytes(four) & 0x7fff_ffff) as usize)
}

fn pairs(data: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut map = BTreeMap::new();
    let mut at = 0;
    while at < data.len() {
        let (Some(n), Some(v)) = (pair_len(data, &mut at), pair_len(data, &mut at)) else {
            break;
        };
        let (Some(name), Some(value)) = (data.get(at..at + n), data.get(at + n..at + n + v)) else {
            break;
        };
        map.insert(name.to_vec(), value.to_vec());
        at += n + v;
    }
    map
}

fn serve(mut s: UnixStream) -> io::Result<()> {
    let (mut params, mut stdin, mut keep) = (Vec::new(), Vec::new(), false);
    loop {
        let mut h = [0u8; 8];
        s.read_exact(&mut h)?;
        let id = u16::from_be_bytes([h[2], h[3]]);
        let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let mut content = vec![0u8; len + usize::from(h[6])];
        s.read_exact(&mut content)?;
        content.truncate(len);
        match h[1] {
            BEGIN_REQUEST => {
                keep = content.get(2).is_some_and(|f| f & KEEP_CONN != 0);
                params.clear();
                stdin.clear();
            }
            PARAMS => params.extend_from_slice(&content),
            STDIN if len > 0 => stdin.extend_from_slice(&content),
            STDIN => {
                let mut body = Vec::new();
                for (n, v) in pairs(&params) {
                    body.extend_from_slice(&n);
                    body.push(b'=');
                    body.extend_from_slice(&v);
                    body.push(b'\n');
                }
                body.extend_from_slice(
                    format!("STDIN={} {}\n", stdin.len(), sha256_hex(&stdin)).as_bytes(),
                );
                let mut out = Vec::new();
                let mut reply = b"Content-Type: text/plain\r\n\r\n".to_vec();
                reply.extend_from_slice(&body);
                for piece in reply.chunks(65535) {
                    record(&mut out, STDOUT, id, piece);
                }
                record(&mut out, STDOUT, id, b"");
                record(&mut out, END_REQUEST, id, &[0; 8]);
                s.write_all(&out)?;
                if !keep {
                    return Ok(());
                }
            }
            GET_VALUES => {
                let mut out = Vec::new();
                record(&mut out, GET_VALUES_RESULT, 0, b"");
                s.write_all(&out)?;
            }
            _ => {}
        }
    }
}
