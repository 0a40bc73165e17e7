//! [`run`] against a scripted backend on a Unix socket: what goes out, write by write.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;

use super::*;
use crate::fastcgi::client::BackendAddr;
use crate::fastcgi::proto::ProtocolStatus;
use crate::fastcgi::proto::record::{
    RecordType, encode_end_request, encode_record, encode_stream, parse_record,
};

struct Collect(Vec<u8>);

impl Handler for Collect {
    fn stdout(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }
    fn stderr(&mut self, _: &[u8]) {}
}

/// Records as the backend read them: type and content.
type Records = Vec<(u8, Vec<u8>)>;

/// A backend for one request: reads records up to the empty STDIN, answers `reply`; returns
/// the (type, content) of every record it read.
fn backend(listener: UnixListener, reply: &'static [u8]) -> Records {
    let (mut s, _) = listener.accept().unwrap();
    let (mut buf, mut got) = (Vec::new(), Vec::new());
    loop {
        while let Some((r, used)) = parse_record(&buf).unwrap() {
            let done = r.record_type == RecordType::Stdin && r.content.is_empty();
            got.push((r.record_type.as_u8(), r.content.to_vec()));
            buf.drain(..used);
            if done {
                let mut out = Vec::new();
                encode_stream(&mut out, RecordType::Stdout, 1, reply);
                encode_record(&mut out, RecordType::Stdout, 1, &[]);
                encode_end_request(&mut out, 1, 0, ProtocolStatus::RequestComplete);
                s.write_all(&out).unwrap();
                return got;
            }
        }
        let mut chunk = [0u8; 65536];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "the client closed before the empty STDIN");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn call_with(body: &[u8], len: Option<u64>) -> (Records, Vec<u8>, End) {
    let dir = std::env::temp_dir().join(format!("cgate-run-{}-{len:?}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("b.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || backend(listener, b"Status: 200 OK\r\n\r\n"));
    let mut conn = Conn::connect(&BackendAddr::Unix(path), Duration::from_secs(5)).unwrap();
    let x = Exchange::new(1, true);
    let mut head = Vec::new();
    x.begin(&mut head, [(&b"REQUEST_METHOD"[..], &b"POST"[..])]);
    let mut src = body;
    let call = Call {
        head: &head,
        body: Some(&mut src),
        body_len: len,
        timeout: Duration::from_secs(5),
    };
    let mut h = Collect(Vec::new());
    let end = run(&mut conn, x, call, &mut h).unwrap();
    let got = server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (got, h.0, end)
}

#[test]
fn a_body_of_unknown_length_goes_out_whole_after_the_head() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for (body, len) in [
        (&body[..], None),
        (&body[..], Some(body.len() as u64)),
        (&[][..], None),
    ] {
        let (got, stdout, end) = call_with(body, len);
        assert_eq!(got[0].0, RecordType::BeginRequest.as_u8(), "{len:?}");
        let params: Vec<u8> = got
            .iter()
            .filter(|r| r.0 == RecordType::Params.as_u8())
            .flat_map(|r| r.1.clone())
            .collect();
        assert_eq!(params, b"\x0e\x04REQUEST_METHODPOST", "{len:?}");
        let stdin: Vec<u8> = got
            .iter()
            .filter(|r| r.0 == RecordType::Stdin.as_u8())
            .flat_map(|r| r.1.clone())
            .collect();
        assert_eq!(stdin, body, "{len:?}");
        assert_eq!(got.last().unwrap(), &(RecordType::Stdin.as_u8(), vec![]));
        assert_eq!(stdout, b"Status: 200 OK\r\n\r\n");
        assert!(end.reusable && end.status == ProtocolStatus::RequestComplete);
    }
}

#[test]
fn a_started_request_reads_its_reply_in_steps_without_waiting() {
    let dir = std::env::temp_dir().join(format!("cgate-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("b.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // The backend answers only when told: before that, a step finds nothing and waits not.
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        rx.recv().unwrap();
        let mut out = Vec::new();
        encode_stream(
            &mut out,
            RecordType::Stdout,
            1,
            b"Status: 204 No Content\r\n\r\n",
        );
        encode_record(&mut out, RecordType::Stdout, 1, &[]);
        encode_end_request(&mut out, 1, 0, ProtocolStatus::RequestComplete);
        s.write_all(&out).unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    });
    let mut conn = Conn::connect(&BackendAddr::Unix(path), Duration::from_secs(5)).unwrap();
    let x = Exchange::new(1, true);
    let mut head = Vec::new();
    x.begin(&mut head, [(&b"REQUEST_METHOD"[..], &b"GET"[..])]);
    let call = Call {
        head: &head,
        body: None,
        body_len: Some(0),
        timeout: Duration::from_secs(5),
    };
    let mut h = Collect(Vec::new());
    let mut pending = start(&mut conn, x, call, &mut h).unwrap();
    assert!(!pending.ended() && !pending.output_seen());
    assert!(pending.step(&mut conn, &mut h).unwrap().is_none());
    tx.send(()).unwrap();
    let fd = conn.fd();
    let (ready, _) = super::wait(fd, PollFlags::POLLIN, None, Duration::from_secs(5)).unwrap();
    assert!(!ready.is_empty(), "the reply arrived");
    let end = pending
        .step(&mut conn, &mut h)
        .unwrap()
        .expect("the reply is complete");
    assert!(end.reusable && end.status == ProtocolStatus::RequestComplete);
    assert_eq!(h.0, b"Status: 204 No Content\r\n\r\n");
    drop(conn);
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
