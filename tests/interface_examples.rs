//! The app-author examples as users run them: under `cgate request` and behind a real nginx.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::http::Conn;
use support::{Backend, Nginx, Ready, TempDir, conf, request, sha256_hex};

const EXAMPLES: [&str; 4] = ["json_api", "form_upload", "sse", "middleware"];

/// The example binary `name`, built (once, all four) if missing.
fn example(name: &str) -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.arg("build").current_dir(support::manifest_dir());
        for e in EXAMPLES {
            cmd.args(["--example", e]);
        }
        assert!(
            cmd.status().expect("cargo runs").success(),
            "building the examples failed"
        );
    });
    let bin = support::cgate_bin();
    let path = bin
        .parent()
        .expect("a directory")
        .join("examples")
        .join(name);
    assert!(path.exists(), "{} missing", path.display());
    path
}

fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(example(name));
    cmd.arg("request").args(args).env_remove("CGATE_APP");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("example runs")
}

fn multipart(file: &[u8]) -> Vec<u8> {
    let mut body =
        b"--B0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"up.bin\"\r\n\r\n"
            .to_vec();
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n--B0undary--\r\n");
    body
}

#[test]
fn examples_under_cgate_request() {
    let out = run("json_api", &["-d", r#"{"text":"hi"}"#, "/notes"], &[]);
    assert_eq!(
        out.stdout,
        b"Status: 201 Created\r\nContent-Type: application/json\r\nLocation: /notes/1\r\nContent-Length: 21\r\n\r\n{\"id\":1,\"text\":\"hi\"}\n"
    );
    let out = run("json_api", &["-X", "DELETE", "/notes"], &[]);
    assert!(
        out.stdout
            .starts_with(b"Status: 405 Method Not Allowed\r\n")
    );
    assert_eq!(out.status.code(), Some(1));

    let out = run("sse", &["/events?n=2&ms=0"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Status: 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\nretry: 1000\n\n"), "{text}");
    assert!(
        text.ends_with("id: 2\nevent: tick\ndata: {\"n\": 2}\n\n"),
        "{text}"
    );

    let out = run(
        "middleware",
        &["-H", "Authorization: Bearer s3cret", "/"],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("X-Content-Type-Options: nosniff\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nsecret garden\n"), "{text}");
    let out = run("middleware", &["/"], &[]);
    assert!(out.stdout.starts_with(b"Status: 401 Unauthorized\r\n"));

    let dir = TempDir::new("examples-upload");
    let file = support::data(100_000, 7);
    let body_path = dir.join("body");
    std::fs::write(&body_path, multipart(&file)).unwrap();
    let upload_dir = dir.subdir("store");
    let store = upload_dir.to_str().unwrap();
    let data_arg = format!("@{}", body_path.display());
    let out = run(
        "form_upload",
        &[
            "-H",
            "Content-Type: multipart/form-data; boundary=B0undary",
            "-d",
            &data_arg,
            "/",
        ],
        &[("UPLOAD_DIR", store)],
    );
    let want = format!("up.bin 100000 {}\n", sha256_hex(&file));
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with(&want),
        "{:?}",
        out
    );
    let out = run("form_upload", &["/files/up.bin"], &[("UPLOAD_DIR", store)]);
    assert!(out.stdout.ends_with(&file), "the file comes back whole");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Content-Length: 100000\r\n"));
}

/// An example served by `fastcgi --validate` behind nginx with the shipped site snippets.
struct Site {
    nginx: Nginx,
    _app: Backend,
    _dir: TempDir,
}

fn site(name: &str, env: &[(&str, &str)]) -> Site {
    let dir = TempDir::new("examples-nginx");
    let sock = dir.join("app.sock");
    let mut cmd = Command::new(example(name));
    cmd.env_remove("CGATE_APP")
        .args(["fastcgi", "--validate", "--listen"])
        .arg(format!("unix:{}", sock.display()));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let app = Backend::spawn(name, cmd, &[Ready::Unix(sock.clone())]);
    let nginx = Nginx::start_with(&conf::nginx_upstream(&sock), &conf::nginx_site(true));
    Site {
        nginx,
        _app: app,
        _dir: dir,
    }
}

#[test]
fn examples_behind_nginx() {
    let s = site("json_api", &[]);
    let port = s.nginx.port();
    let json = [("Content-Type", "application/json")];
    let r = request("POST", port, "/notes", &json, br#"{"text":"one"}"#);
    assert_eq!((r.status, r.header("location")), (201, Some("/notes/1")));
    let r = request("GET", port, "/notes", &[], b"");
    assert_eq!(r.text(), "{\"notes\":[\"one\"]}\n");
    let r = request("POST", port, "/notes", &json, b"{oops");
    assert_eq!((r.status, r.text()), (400, "Bad Request\n"));
    let r = request("PUT", port, "/notes", &[], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, POST")));

    let dir = TempDir::new("examples-store");
    let store = dir.path().to_str().unwrap().to_owned();
    let s = site("form_upload", &[("UPLOAD_DIR", &store)]);
    let port = s.nginx.port();
    let file = support::data(300_000, 3);
    let ct = [("Content-Type", "multipart/form-data; boundary=B0undary")];
    let r = request("POST", port, "/", &ct, &multipart(&file));
    assert_eq!(r.text(), format!("up.bin 300000 {}\n", sha256_hex(&file)));
    let r = request("GET", port, "/files/up.bin", &[], b"");
    assert_eq!(sha256_hex(&r.body), sha256_hex(&file));

    let s = site("middleware", &[]);
    let r = request(
        "GET",
        s.nginx.port(),
        "/",
        &[("Authorization", "Bearer s3cret")],
        b"",
    );
    assert_eq!(
        (r.status, r.header("x-content-type-options")),
        (200, Some("nosniff"))
    );
    let r = request("GET", s.nginx.port(), "/", &[], b"");
    assert_eq!(
        (r.status, r.header("www-authenticate")),
        (401, Some("Bearer"))
    );
}

#[test]
fn server_sent_events_behind_nginx_arrive_event_by_event() {
    let s = site("sse", &[]);
    let mut c = Conn::open(s.nginx.port()).expect("connect");
    c.send_request(
        "GET",
        "/stream/events?n=3&ms=700",
        &[("Connection", "close")],
        b"",
    )
    .expect("send");
    let head = c.read_head("GET").expect("head");
    assert_eq!(head.status, 200, "{}", s.nginx.error_log());
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let mut body = c.body(&head);
    let all = body.read_to_end().expect("body");
    assert!(all.ends_with(b"id: 3\nevent: tick\ndata: {\"n\": 3}\n\n"));
    // The app waits 2 x 700 ms between its first and last event: the first piece that arrived
    // cannot hold the last event unless something buffered the stream.
    let first = *body.arrivals().first().expect("some body arrived");
    assert!(
        first.offset + first.len < all.len(),
        "{:?}",
        body.arrivals()
    );
}

#[test]
fn file_bodies_leave_cgi_stdout_with_sendfile() {
    let dir = TempDir::new("examples-sendfile");
    let file = support::data(200_000, 11);
    std::fs::write(dir.join("big.bin"), &file).unwrap();
    let trace = dir.join("strace.log");
    let out = Command::new(support::find_program("strace"))
        .args(["-f", "-e", "trace=sendfile", "-o"])
        .arg(&trace)
        .arg(example("form_upload"))
        .arg("cgi")
        .env_clear()
        .env("UPLOAD_DIR", dir.path())
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("REQUEST_METHOD", "GET")
        .env("SERVER_NAME", "localhost")
        .env("SERVER_PORT", "80")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("SCRIPT_NAME", "/cgi-bin/up")
        .env("PATH_INFO", "/files/big.bin")
        .output()
        .expect("strace runs");
    let pos = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&out.stdout[..pos]).into_owned();
    assert!(head.contains("Content-Length: 200000"), "{head}");
    assert!(out.stdout[pos + 4..] == file[..], "the file, whole");
    let log = std::fs::read_to_string(&trace).unwrap();
    let sent: u64 = log
        .lines()
        .filter(|l| l.contains("sendfile("))
        .filter_map(|l| l.rsplit("= ").next()?.trim().parse::<u64>().ok())
        .sum();
    assert_eq!(sent, 200_000, "every byte by sendfile:\n{log}");
}
