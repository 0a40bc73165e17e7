//! The start-up line, the access log (combined and JSON, exact lines), request ids and SIGUSR1 reopening.

use nix::sys::signal::Signal;

use crate::client::{params, request};
use crate::harness::{Ops, read, wait_for};

/// The combined line with its time and duration fields replaced by `T` and `Nms`.
fn masked(line: &str) -> String {
    let (before, rest) = line.split_once(" [").expect("a [time] field");
    let (_, after) = rest.split_once("] ").expect("the end of the time field");
    let mut words: Vec<String> = after.split(' ').map(str::to_owned).collect();
    let n = words.len();
    if n >= 2 && words[n - 2].ends_with("ms") {
        words[n - 2] = "Nms".into();
    }
    format!("{before} [T] {}", words.join(" "))
}

fn lines_of(path: &std::path::Path, n: usize) -> Vec<String> {
    wait_for(&format!("{n} access log lines"), || {
        read(path).lines().count() >= n
    });
    read(path).lines().map(str::to_owned).collect()
}

#[test]
fn startup_line_names_version_listener_app_workers_and_limits() {
    let ops = Ops::start(&["--app", "hello", "--workers", "2", "--max-conns", "50"]);
    // The socket accepts from its bind on; the line follows once the pool runs.
    wait_for("the start-up line", || {
        ops.output().contains(" max_spool=1073741824\n")
    });
    let out = ops.output();
    let line = out
        .lines()
        .find(|l| l.starts_with("cgate: start "))
        .expect("a start-up line");
    let expected = format!(
        "cgate: start version={} pid={} listen=unix:{} app=hello workers=2 max_conns=50 \
         request_timeout=30s idle_timeout=300s shutdown_timeout=30s max_params_bytes=1048576 \
         max_body=1073741824 max_spool=1073741824",
        env!("CARGO_PKG_VERSION"),
        ops.server.pid(),
        ops.sock().display()
    );
    assert_eq!(line, expected);
}

#[test]
fn access_log_combined_lines_are_exact() {
    let dir = crate::support::TempDir::new("ops-log");
    let log = dir.join("access.log");
    let ops = Ops::start(&["--app", "hello", "--access-log", log.to_str().unwrap()]);
    let ua: &[(&[u8], &[u8])] = &[
        (b"HTTP_USER_AGENT", b"probe \"1\""),
        (b"HTTP_REFERER", b"http://example/"),
        (b"REQUEST_ID", b"nginx-id-1"),
    ];
    assert_eq!(ops.get("/a?b=1", ua).status(), 200);
    let mut c = ops.server.connect();
    let post = params(
        "POST",
        "/up",
        &[(b"CONTENT_LENGTH", b"3"), (b"REMOTE_USER", b"ann")],
    );
    assert_eq!(c.roundtrip(1, &request(1, 0, &post, b"abc")).status(), 200);
    let lines = lines_of(&log, 2);
    assert_eq!(
        masked(&lines[0]),
        "127.0.0.1 - - [T] \"GET /a?b=1 HTTP/1.1\" 200 14 \"http://example/\" \
         \"probe \\\"1\\\"\" nginx-id-1 Nms complete"
    );
    let second = masked(&lines[1]);
    let (head, id_and_rest) = second
        .split_once("\"POST /up HTTP/1.1\" 200 14 \"-\" \"-\" ")
        .unwrap_or_else(|| panic!("{second}"));
    assert_eq!(head, "127.0.0.1 - ann [T] ");
    let (id, rest) = id_and_rest.split_once(' ').unwrap();
    assert_eq!(rest, "Nms complete");
    // A generated id: hex prefix, dash, sequence number.
    let (prefix, seq) = id.split_once('-').unwrap_or_else(|| panic!("{id}"));
    assert!(
        prefix.bytes().all(|b| b.is_ascii_hexdigit()) && seq.parse::<u64>().is_ok(),
        "{id}"
    );
}

#[test]
fn access_log_json_lines_and_the_request_id_in_the_environ() {
    let dir = crate::support::TempDir::new("ops-log");
    let log = dir.join("access.json");
    let ops = Ops::start(&[
        "--app",
        "echo",
        "--access-log",
        log.to_str().unwrap(),
        "--access-log-format",
        "json",
        "--request-id-param",
        "HTTP_X_REQUEST_ID",
    ]);
    let r = ops.get("/e", &[(b"HTTP_X_REQUEST_ID", b"abc-123")]);
    assert_eq!(r.status(), 200);
    let echo: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(echo["environ"]["REQUEST_ID"], "abc-123");
    let lines = lines_of(&log, 1);
    let mut v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let time = v["time"].as_str().unwrap().to_owned();
    assert!(time.len() == 24 && time.ends_with('Z'), "{time}");
    assert!(v["ms"].is_u64());
    v["time"] = "T".into();
    v["ms"] = 0.into();
    let body_len = r.body().len() as u64;
    assert_eq!(
        v,
        serde_json::json!({
            "time": "T", "id": "abc-123", "remote_addr": "127.0.0.1", "remote_user": "",
            "method": "GET", "uri": "/e", "protocol": "HTTP/1.1", "status": 200,
            "bytes": body_len, "referer": "", "user_agent": "", "ms": 0,
            "outcome": "complete",
        })
    );
}

#[test]
fn sigusr1_reopens_the_access_log_after_rotation() {
    let dir = crate::support::TempDir::new("ops-log");
    let log = dir.join("access.log");
    let ops = Ops::start(&["--app", "hello", "--access-log", log.to_str().unwrap()]);
    assert_eq!(ops.get("/one", &[]).status(), 200);
    lines_of(&log, 1);
    let rotated = dir.join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    ops.server.backend.proc.signal(Signal::SIGUSR1);
    wait_for("the reopen line", || {
        ops.output().contains("cgate: access log reopened: ")
    });
    assert_eq!(ops.get("/two", &[]).status(), 200);
    let now = lines_of(&log, 1);
    assert_eq!(now.len(), 1);
    assert!(
        now[0].contains("\"GET /two HTTP/1.1\" 200 14 "),
        "{}",
        now[0]
    );
    let old = read(&rotated);
    assert_eq!(old.lines().count(), 1);
    assert!(old.contains("\"GET /one HTTP/1.1\" 200 14 "), "{old}");
}

/// The demo app's `/panic` route panics: a 500 when it runs, nothing when it is not run.
#[test]
fn a_request_whose_connection_closed_while_it_waited_is_not_run() {
    use std::io::Write;
    let dir = crate::support::TempDir::new("ops-log");
    let log = dir.join("access.log");
    let args = ["--access-log", log.to_str().unwrap()];
    let server = crate::server::Server::demo(crate::client::Transport::Unix, &args);
    let ops = Ops { server };
    assert_eq!(ops.get("/panic", &[]).status(), 500);
    // While cgate cannot run (stopped), a request arrives and its connection closes.
    ops.server.backend.proc.signal(Signal::SIGSTOP);
    let mut s = std::os::unix::net::UnixStream::connect(ops.sock()).unwrap();
    s.write_all(&crate::client::get(1, 0, "/panic")).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    ops.server.backend.proc.signal(Signal::SIGCONT);
    let lines: Vec<String> = lines_of(&log, 2).iter().map(|l| masked(l)).collect();
    // The fields after the time, without the id, duration and outcome.
    let tail = |l: &str| {
        let words: Vec<&str> = l.split_once(" [T] ").unwrap().1.split(' ').collect();
        words[..words.len() - 3].join(" ")
    };
    assert_eq!(
        tail(&lines[0]),
        "\"GET /panic HTTP/1.1\" 500 22 \"-\" \"-\"",
        "{lines:?}"
    );
    assert!(lines[0].ends_with(" Nms complete"), "{lines:?}");
    assert_eq!(
        tail(&lines[1]),
        "\"GET /panic HTTP/1.1\" 0 0 \"-\" \"-\"",
        "{lines:?}"
    );
    assert!(lines[1].ends_with(" Nms client-gone"), "{lines:?}");
}

#[test]
fn every_error_stream_line_carries_the_request_id() {
    let scripts = crate::harness::Scripts::new();
    let spec = scripts.spec();
    let ops = Ops::start(&["--app", &spec, "--allow-root", "--access-log", "-"]);
    let r = ops.get("/err.sh", &[(b"REQUEST_ID", b"e-1")]);
    assert_eq!(r.body(), b"ok\n");
    // each script line also names the script file (the cgi:DIR runner's prefix)
    let file = std::fs::canonicalize(scripts.dir.join("cgi").join("err.sh")).unwrap();
    let prefix = format!("[e-1] cgate: cgi: {}: ", file.display());
    assert_eq!(
        String::from_utf8_lossy(&r.stderr),
        format!("{prefix}oops\n{prefix}again\n")
    );
}
