//! cgi:DIR run in process through `run_app`: exact statuses, headers, bytes, streaming and cleanup.

#[path = "../support/mod.rs"]
mod support;

mod fcgiwrap;
mod scripts;
mod timeouts;

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::process::Command;
use std::time::Duration;

use cgate::apps::cgi::CgiOptions;
use cgate::gateway::MemorySink;
use scripts::*;
use sha2::Digest as _;

fn text_error(status: &str, body: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    (
        status.to_owned(),
        pairs(&[
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", &body.len().to_string()),
        ]),
        body.as_bytes().to_vec(),
    )
}

fn summary(d: &Run<MemorySink>) -> (String, Vec<(String, String)>, Vec<u8>) {
    (d.status_line().to_owned(), d.headers(), d.sink.body.clone())
}

#[test]
fn hello() {
    let s = Scripts::new();
    let d = get(&s.app(CgiOptions::default()), "/hello.sh", "");
    assert_eq!(d.status_line(), "200 OK");
    assert_eq!(d.headers(), pairs(&[("Content-Type", "text/plain")]));
    assert_eq!(d.sink.body, b"Hello from CGI\n");
    assert!(d.sink.finished && !d.sink.aborted && d.outcome.complete);
    assert_eq!(d.errors, "");
}

#[test]
fn status_and_redirects() {
    let s = Scripts::new();
    let app = s.app(CgiOptions::default());
    let d = get(&app, "/not-found.sh", "");
    assert_eq!(d.status_line(), "404 Not Found");
    assert_eq!(d.sink.body, b"no such thing\n");
    let d = get(&app, "/redirect.sh", "");
    assert_eq!(
        summary(&d),
        (
            "302 Found".to_owned(),
            pairs(&[
                ("Location", "https://example.com/elsewhere?a=1"),
                ("Content-Length", "0")
            ]),
            Vec::new()
        )
    );
    let d = get(&app, "/local-redirect.sh", "");
    assert_eq!(
        summary(&d),
        (
            "302 Found".to_owned(),
            pairs(&[
                ("Location", "/hello.sh?from=local"),
                ("Content-Length", "0")
            ]),
            Vec::new()
        )
    );
}

#[test]
fn binary_and_big_bodies() {
    let s = Scripts::new();
    let app = s.app(CgiOptions::default());
    let d = get(&app, "/binary.sh", "");
    assert_eq!(d.sink.body, b"\x00\x01\x02\xff\xfe\r\n\n\x00end");
    let d = get(&app, "/big.sh", "");
    assert_eq!(d.status_line(), "200 OK");
    assert_eq!(d.sink.body.len(), 10 * 1024 * 1024);
    assert_eq!(sha256(&d.sink.body), sha256(&vec![b'x'; 10 * 1024 * 1024]));
    assert!(
        d.sink.flushes.len() > 1,
        "a 10 MiB body arrives in several chunks"
    );
    assert!(d.sink.finished && !d.sink.aborted);
}

#[test]
fn output_streams_chunk_by_chunk() {
    let s = Scripts::new();
    let gate = make_gate(&s);
    let sink = GateSink {
        inner: MemorySink::default(),
        gate,
        opened: false,
    };
    let env = environ(&[("PATH_INFO", b"/slow.sh")]);
    let d = run_with(
        &s.app(CgiOptions::default()),
        env,
        &mut io::empty(),
        0,
        sink,
    );
    assert_eq!(
        d.sink.inner.flushes,
        vec![b"one\n".to_vec(), b"two\n".to_vec()]
    );
    assert!(d.sink.inner.finished);
}

fn echo(len: u64, query: &str) -> Run<HashSink> {
    let s = Scripts::new();
    let env = environ(&[
        ("PATH_INFO", b"/echo-body.sh"),
        ("QUERY_STRING", query.as_bytes()),
    ]);
    let mut body = Pattern::new(len);
    run_with(
        &s.app(CgiOptions::default()),
        env,
        &mut body,
        len,
        HashSink::default(),
    )
}

#[test]
fn post_bodies_echo_back_exactly() {
    for len in [1u64 << 20, 64 << 20] {
        let d = echo(len, "");
        let head = d.sink.head.as_ref().unwrap();
        assert_eq!(
            headers(head),
            pairs(&[
                ("Content-Type", "application/octet-stream"),
                ("X-Content-Length", &len.to_string())
            ])
        );
        assert_eq!(d.sink.len, len);
        assert_eq!(
            d.sink.hash.clone().finalize().to_vec(),
            Pattern::sha256(len)
        );
        assert!(d.sink.finished && d.outcome.complete, "{}", d.errors);
    }
}

#[test]
fn script_writing_before_reading_does_not_deadlock() {
    let len = 4u64 << 20;
    let d = echo(len, "first");
    let mut want = sha2::Sha256::new();
    sha2::Digest::update(&mut want, vec![b'f'; 1 << 20]);
    let mut body = Vec::new();
    Pattern::new(len).read_to_end(&mut body).unwrap();
    sha2::Digest::update(&mut want, &body);
    assert_eq!(d.sink.len, len + (1 << 20));
    assert_eq!(d.sink.hash.finalize().to_vec(), want.finalize().to_vec());
}

#[test]
fn script_that_never_reads_a_large_body() {
    let s = Scripts::new();
    let env = environ(&[("PATH_INFO", b"/never-reads.sh")]);
    let len = 8u64 << 20;
    let d = run_with(
        &s.app(CgiOptions::default()),
        env,
        &mut Pattern::new(len),
        len,
        MemorySink::default(),
    );
    assert_eq!(d.status_line(), "200 OK");
    assert_eq!(d.sink.body, b"did not read\n");
    assert!(d.sink.finished && d.outcome.complete);
}

#[test]
fn stderr_flood_is_drained_and_bounded() {
    let s = Scripts::new();
    let d = get(&s.app(CgiOptions::default()), "/stderr-flood.sh", "");
    let want: String = (0..32).map(|i| format!("line {i}\n")).collect();
    assert_eq!(d.sink.body, want.as_bytes());
    // one log line per 4 KiB piece of the endless line, each naming the file, then a note
    let file = fs::canonicalize(s.0.join("stderr-flood.sh")).unwrap();
    let prefix = format!("cgate: cgi: {}: ", file.display());
    let mut want = format!("{prefix}{}\n", "e".repeat(4096)).repeat(16);
    want.push_str(&format!(
        "{prefix}stderr longer than 65536 bytes; the rest is dropped\n"
    ));
    assert!(d.errors == want, "{:.300}", d.errors);
}

#[test]
fn nonzero_exit_after_the_reply_is_logged_not_hidden() {
    let s = Scripts::new();
    let d = get(&s.app(CgiOptions::default()), "/exit3.sh", "");
    assert_eq!(d.status_line(), "200 OK");
    assert_eq!(d.sink.body, b"partial\n");
    assert!(d.sink.finished && !d.sink.aborted);
    assert!(d.errors.ends_with("exited with status 3\n"), "{}", d.errors);
}

fn short(total: u64, idle: u64) -> CgiOptions {
    CgiOptions {
        total_timeout: Duration::from_secs(total),
        idle_timeout: Duration::from_secs(idle),
        ..CgiOptions::default()
    }
}

#[test]
fn hung_script_gets_504_and_its_group_is_killed() {
    let s = Scripts::new();
    let app = s.app(short(1, 30));
    for query in ["", "ignore-term"] {
        let d = get(&app, "/hung.sh", query);
        assert_eq!(
            summary(&d),
            text_error("504 Gateway Timeout", "Gateway Timeout\n")
        );
        assert!(
            d.errors.contains("total timeout of 1s passed"),
            "{}",
            d.errors
        );
        assert_eq!(group_left_after_wait(printed_pid(&d.errors)), 0, "{query}");
    }
    let app = s.app(short(30, 1));
    let d = get(&app, "/hung.sh", "");
    assert_eq!(d.status_line(), "504 Gateway Timeout");
    assert!(
        d.errors.contains("idle timeout of 1s passed"),
        "{}",
        d.errors
    );
    assert_eq!(group_left_after_wait(printed_pid(&d.errors)), 0);
}

#[test]
fn timeout_after_the_head_cuts_the_response() {
    let s = Scripts::new();
    let d = get(&s.app(short(1, 30)), "/hung.sh", "partial");
    assert_eq!(d.status_line(), "200 OK");
    assert_eq!(d.sink.body, b"partial\n");
    assert!(d.sink.aborted && !d.sink.finished && !d.outcome.complete);
    assert_eq!(group_left_after_wait(printed_pid(&d.errors)), 0);
}

#[test]
fn grandchild_holding_stdout_does_not_hold_the_response() {
    let s = Scripts::new();
    let d = get(&s.app(short(30, 1)), "/grandchild.sh", "");
    assert_eq!(d.status_line(), "200 OK");
    assert_eq!(d.sink.body, b"body\n");
    assert!(d.sink.finished && !d.sink.aborted);
    assert!(
        d.errors
            .contains("output still open after the script exited"),
        "{}",
        d.errors
    );
    assert_eq!(group_left_after_wait(printed_pid(&d.errors)), 0);
}

#[test]
fn client_gone_or_body_error_kills_the_script() {
    let s = Scripts::new();
    let app = s.app(CgiOptions::default());
    let env = environ(&[("PATH_INFO", b"/hung.sh"), ("QUERY_STRING", b"partial")]);
    let d = run_with(&app, env, &mut io::empty(), 0, GoneSink::default());
    assert!(!d.outcome.complete);
    assert_eq!(d.sink.chunks, 1);
    assert_eq!(group_left_after_wait(printed_pid(&d.errors)), 0);
    // the body declares 100 bytes and ends after 10
    let env = environ(&[("PATH_INFO", b"/hung.sh")]);
    let d = run_with(&app, env, &mut &[7u8; 10][..], 100, MemorySink::default());
    assert_eq!(d.status_line(), "500 Internal Server Error");
    assert!(
        d.errors
            .contains("request body ended after 10 of 100 bytes"),
        "{}",
        d.errors
    );
    assert_eq!(group_left_after_wait(printed_pid(&d.errors)), 0);
}

#[test]
fn invalid_replies_become_502_without_their_headers() {
    let s = Scripts::new();
    let app = s.app(CgiOptions::default());
    for q in [
        "nohead",
        "empty",
        "notype",
        "badname",
        "hopbyhop",
        "cr",
        "badstatus",
        "huge",
        "folded",
    ] {
        let d = get(&app, "/bad-reply.sh", q);
        assert_eq!(
            summary(&d),
            text_error("502 Bad Gateway", "Bad Gateway\n"),
            "{q}"
        );
        assert!(
            d.errors.contains("bad reply, answering 502"),
            "{q}: {}",
            d.errors
        );
    }
}

#[test]
fn refused_requests_run_nothing() {
    let s = Scripts::new();
    let marker = s.0.join("ran");
    let outside = Scripts::new();
    let evil = outside.0.join("evil.sh");
    let outside_marker = outside.0.join("ran");
    fs::write(
        &evil,
        format!("#!/bin/sh\ntouch '{}'\n", outside_marker.display()),
    )
    .unwrap();
    fs::set_permissions(&evil, fs::Permissions::from_mode(0o755)).unwrap();
    symlink(&evil, s.0.join("link-out.sh")).unwrap();
    // planted by another user (nobody) to a file it does not own: refused
    std::os::unix::fs::lchown(s.0.join("link-out.sh"), Some(65534), None).unwrap();
    fs::write(s.0.join("plain.sh"), "#!/bin/sh\ntouch ran\n").unwrap();
    fs::set_permissions(s.0.join("plain.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(s.0.join("open.sh"), "#!/bin/sh\ntouch ran\n").unwrap();
    fs::set_permissions(s.0.join("open.sh"), fs::Permissions::from_mode(0o777)).unwrap();
    nix::unistd::mkfifo(
        &s.0.join("pipe.sh"),
        nix::sys::stat::Mode::from_bits_truncate(0o755),
    )
    .unwrap();
    let app = s.app(CgiOptions {
        extensions: Some(vec![".sh".to_owned()]),
        ..CgiOptions::default()
    });
    for (path, status, body) in [
        ("/missing.sh", "404 Not Found", "Not Found\n"),
        ("/../hello.sh", "404 Not Found", "Not Found\n"),
        ("/%2e%2e/hello.sh", "404 Not Found", "Not Found\n"),
        ("/hello.sh\0", "400 Bad Request", "Bad Request\n"),
        ("/plain.sh", "403 Forbidden", "Forbidden\n"),
        ("/open.sh", "403 Forbidden", "Forbidden\n"),
        ("/link-out.sh", "403 Forbidden", "Forbidden\n"),
        ("/pipe.sh", "403 Forbidden", "Forbidden\n"),
        ("/hello.sh.txt", "404 Not Found", "Not Found\n"),
        ("/", "403 Forbidden", "Forbidden\n"),
    ] {
        let d = get(&app, path, "");
        assert_eq!(summary(&d), text_error(status, body), "{path:?}");
    }
    assert!(!marker.exists());
    assert!(!outside_marker.exists());
}

#[test]
fn concurrency_cap_answers_503() {
    let s = Scripts::new();
    let gate = make_gate(&s);
    let app = s.app(CgiOptions {
        max_concurrent: 1,
        ..CgiOptions::default()
    });
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| get(&app, "/slow.sh", ""));
        eventually(Duration::from_secs(20), || app.running() > 0);
        assert_eq!(app.running(), 1);
        let d = get(&app, "/hello.sh", "");
        assert_eq!(
            summary(&d),
            text_error("503 Service Unavailable", "Service Unavailable\n")
        );
        open_gate(&gate);
        let d = slow.join().unwrap();
        assert_eq!(d.sink.body, b"one\ntwo\n");
    });
    assert_eq!(app.running(), 0);
    assert_eq!(get(&app, "/hello.sh", "").status_line(), "200 OK");
}

const PROBE: &str = "CGATE_CGI_ENV_PROBE";

/// Runs again in a child test process whose own environment holds a secret, so the check
/// is on a real daemon environment.
#[test]
fn environment_is_exactly_the_allowlist() {
    if std::env::var_os(PROBE).is_none() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "environment_is_exactly_the_allowlist"])
            .env(PROBE, "1")
            .env("DAEMON_SECRET", "hunter2")
            .env("DAEMON_PASSED", "visible")
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{report}");
        assert!(report.contains("test result: ok. 1 passed"), "{report}");
        return;
    }
    assert_eq!(std::env::var("DAEMON_SECRET").unwrap(), "hunter2");
    let s = Scripts::new();
    let app = s.app(CgiOptions {
        pass_env: vec!["DAEMON_PASSED".to_owned(), "NOT_SET_ANYWHERE".to_owned()],
        ..CgiOptions::default()
    });
    let env = environ(&[
        ("PATH_INFO", b"/env.sh/extra"),
        ("QUERY_STRING", b"q=1"),
        ("SERVER_NAME", b"example.com"),
        ("SERVER_PORT", b"80"),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("REMOTE_ADDR", b"127.0.0.1"),
        ("DOCUMENT_ROOT", b"/srv/www"),
        ("HTTP_HOST", b"example.com"),
        ("HTTP_X_TEST", b"yes"),
        ("HTTP_Proxy", b"http://evil.example/"),
        ("HTTP_X-DASH", b"dropped"),
        ("LD_PRELOAD", b"/tmp/evil.so"),
        ("DAEMON_SECRET", b"from-request"),
    ]);
    let d = run_with(&app, env, &mut io::empty(), 0, MemorySink::default());
    let dir = app.dir().to_str().unwrap().to_owned();
    let mut want = vec![
        "DAEMON_PASSED=visible".to_owned(),
        // a web-server param of that name passes; the daemon's own value never does
        "DAEMON_SECRET=from-request".to_owned(),
        "DOCUMENT_ROOT=/srv/www".to_owned(),
        "GATEWAY_INTERFACE=CGI/1.1".to_owned(),
        "HTTP_HOST=example.com".to_owned(),
        "HTTP_X_TEST=yes".to_owned(),
        "PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
        "PATH_INFO=/extra".to_owned(),
        "PATH_TRANSLATED=/srv/www/extra".to_owned(),
        format!("PWD={dir}"),
        "QUERY_STRING=q=1".to_owned(),
        "REMOTE_ADDR=127.0.0.1".to_owned(),
        "REQUEST_METHOD=GET".to_owned(),
        format!("SCRIPT_FILENAME={dir}/env.sh"),
        "SCRIPT_NAME=/env.sh".to_owned(),
        "SERVER_NAME=example.com".to_owned(),
        "SERVER_PORT=80".to_owned(),
        "SERVER_PROTOCOL=HTTP/1.1".to_owned(),
    ];
    want.sort();
    let got: Vec<String> = String::from_utf8(d.sink.body.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, want);
}
