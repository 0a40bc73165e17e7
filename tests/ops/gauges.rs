//! Status values kept outside the request path: spooled body bytes and a request still pre-reading its body, the TCP accept queue, `fcgi:` backends up then ejected.

use std::process::Command;

use crate::client::{Conn, RESPONDER, Transport, params, request};
use crate::fcgi_bytes::{PARAMS, STDIN, begin_padded, rec};
use crate::harness::{Ops, wait_for};
use crate::server::Server;
use crate::status::{metrics, promtool, status_on};

/// BEGIN and PARAMS of a POST to /upload declaring `len` body bytes, and `first` of them.
fn partial_post(len: usize, first: usize) -> Vec<u8> {
    let cl = len.to_string();
    let p = params(
        "POST",
        "/upload",
        &[
            (b"CONTENT_LENGTH", cl.as_bytes()),
            (b"REQUEST_ID", b"upload-1"),
        ],
    );
    let mut out = begin_padded(1, RESPONDER, 0, 0);
    out.extend(rec(PARAMS, 1, &p, 0));
    out.extend(rec(PARAMS, 1, b"", 0));
    out.extend(rec(STDIN, 1, &vec![b'a'; first], 0));
    out
}

#[test]
fn a_body_still_arriving_is_spooled_shown_waiting_on_body_and_slow_logged() {
    let ops = Ops::start(&[
        "--app",
        "echo",
        "--status-path",
        "/cgate-status",
        "--slow-log-ms",
        "100",
    ]);
    let mut sc = ops.server.connect();
    let idle = status_on(&mut sc);
    assert_eq!(
        idle["current"]["spool_bytes"],
        serde_json::json!({"memory": 0, "file": 0}),
        "{idle}"
    );
    let mut up = ops.server.connect();
    up.send(&partial_post(3000, 1000));
    wait_for("1000 body bytes spooled", || {
        status_on(&mut sc)["current"]["spool_bytes"]["memory"] == 1000
    });
    let s = status_on(&mut sc);
    let rows = s["requests"].as_array().expect("requests");
    assert_eq!(rows.len(), 1, "{s}");
    assert_eq!(rows[0]["id"], "upload-1", "{s}");
    assert_eq!(rows[0]["method"], "POST", "{s}");
    assert_eq!(rows[0]["uri"], "/upload", "{s}");
    assert_eq!(rows[0]["waiting"], "body", "{s}");
    assert_eq!(rows[0]["thread"], "-", "{s}");
    let om = metrics(&mut sc);
    assert!(
        om.contains("\ncgate_spool_bytes{where=\"memory\"} 1000\n"),
        "{om}"
    );
    promtool(&om);
    wait_for("the slow-log line of the upload", || {
        ops.output()
            .contains("slow: id=upload-1 method=POST uri=\"/upload\" age_ms=")
    });
    let out = ops.output();
    let line = out
        .lines()
        .find(|l| l.contains("slow: id=upload-1"))
        .expect("slow line");
    assert!(line.ends_with(" waiting=body thread=-"), "{line}");
    let mut rest = rec(STDIN, 1, &vec![b'b'; 2000], 0);
    rest.extend(rec(STDIN, 1, b"", 0));
    up.send(&rest);
    let reply = up.reply(1);
    assert_eq!(reply.status(), 200, "{}", ops.output());
    wait_for("the spool emptied", || {
        let s = status_on(&mut sc);
        s["current"]["spool_bytes"]["memory"] == 0 && s["requests"] == serde_json::json!([])
    });
}

/// Send-Q of the listening socket on `port` as `ss` shows it: the backlog in force.
fn ss_backlog(port: u16) -> u64 {
    let out = Command::new(crate::support::find_program("ss"))
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_else(|| panic!("ss: {text}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    cols[2].parse().unwrap_or_else(|_| panic!("ss: {line}"))
}

#[test]
fn accept_queue_is_reported_for_tcp_and_null_for_unix() {
    let tcp = Server::start_bin(
        &crate::support::cgate_bin(),
        Transport::Tcp,
        &["--app", "hello", "--status-path", "/cgate-status"],
        &[],
    );
    let port = match tcp.addr {
        crate::client::Addr::Tcp(p) => p,
        crate::client::Addr::Unix(_) => unreachable!(),
    };
    let mut c: Conn = tcp.connect();
    let s = status_on(&mut c);
    let max = ss_backlog(port);
    assert!(max > 0);
    assert_eq!(
        s["current"]["accept_queue"],
        serde_json::json!({"queued": 0, "max": max}),
        "{s}"
    );
    let om = metrics(&mut c);
    assert!(om.contains("\ncgate_accept_queue 0\n"), "{om}");
    assert!(
        om.contains(&format!("\ncgate_accept_queue_max {max}\n")),
        "{om}"
    );
    promtool(&om);
    let unix = Ops::start(&["--app", "hello", "--status-path", "/cgate-status"]);
    let s = unix.status();
    assert_eq!(s["current"]["accept_queue"], serde_json::Value::Null, "{s}");
}

#[test]
fn fcgi_backends_are_listed_up_then_ejected_when_killed() {
    let mut back = Ops::start(&["--app", "hello"]);
    let sock = back.sock();
    let spec = format!("fcgi:unix:{};eject_after=1;tries=1", sock.display());
    let front = Ops::start(&["--app", &spec, "--status-path", "/cgate-status"]);
    assert_eq!(front.get("/", &[]).status(), 200);
    let mut sc = front.server.connect();
    let s = status_on(&mut sc);
    let address = format!("unix:{}", sock.display());
    let b = &s["backends"];
    assert_eq!(b.as_array().map(Vec::len), Some(1), "{s}");
    assert_eq!(b[0]["address"], address.as_str(), "{s}");
    assert_eq!(b[0]["state"], "up", "{s}");
    assert_eq!(
        (&b[0]["requests"], &b[0]["errors"], &b[0]["in_flight"]),
        (&1.into(), &0.into(), &0.into()),
        "{s}"
    );
    back.server.backend.stop();
    let r = front
        .server
        .connect()
        .roundtrip(1, &request(1, 0, &params("GET", "/", &[]), b""));
    assert_eq!(r.status(), 502, "{}", front.output());
    let s = status_on(&mut sc);
    let b = &s["backends"][0];
    assert_eq!(b["state"], "ejected", "{s}");
    // The failed connect sent nothing: one request, one error, one ejection.
    assert_eq!(
        (&b["requests"], &b["errors"], &b["ejections"]),
        (&1.into(), &1.into(), &1.into()),
        "{s}"
    );
    let om = metrics(&mut sc);
    let label = format!("{{backend=\"{address}\",index=\"0\"}}");
    assert!(
        om.contains(&format!("\ncgate_backend_up{label} 0\n")),
        "{om}"
    );
    assert!(
        om.contains(&format!("\ncgate_backend_errors_total{label} 1\n")),
        "{om}"
    );
    promtool(&om);
}
