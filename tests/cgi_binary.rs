//! The built binary run as a CGI program and as `cgate request`: exact environment in, exact bytes out.

mod support;

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output, Stdio};

use support::golden::{ERROR_500, HELLO};
use support::{cgate_bin, demo_bin, sha256_hex};

const BAD_REQUEST: &[u8] =
    b"Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nBad Request\n";

/// Runs `bin args` with exactly `env` as its environment and `stdin` as its input.
fn cgi(bin: &std::path::Path, args: &[&str], env: &[(&str, &[u8])], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).env_clear();
    for (n, v) in env {
        cmd.env(n, std::ffi::OsStr::from_bytes(v));
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cgate starts");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("cgate runs");
    writer.join().expect("writer");
    out
}

fn base_env() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("GATEWAY_INTERFACE", b"CGI/1.1"),
        ("REQUEST_METHOD", b"GET"),
        ("SERVER_NAME", b"example.test"),
        ("SERVER_PORT", b"80"),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("SCRIPT_NAME", b"/cgi-bin/cgate"),
        ("QUERY_STRING", b""),
    ]
}

fn split_cgi(out: &[u8]) -> (String, Vec<u8>) {
    let pos = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    (
        String::from_utf8_lossy(&out[..pos]).into_owned(),
        out[pos + 4..].to_vec(),
    )
}

fn echo_json(out: &Output) -> serde_json::Value {
    let (head, body) = split_cgi(&out.stdout);
    assert!(
        head.starts_with("Status: 200 OK\r\nContent-Type: application/json"),
        "{head}"
    );
    serde_json::from_slice(&body).expect("echo answers JSON")
}

#[test]
fn cgi_hello_exact_bytes_with_auto_detection_and_subcommand() {
    for args in [&[][..], &["cgi"][..]] {
        let out = cgi(&cgate_bin(), args, &base_env(), b"");
        assert_eq!(out.stdout, HELLO, "{args:?}");
        assert_eq!(out.status.code(), Some(0));
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn cgi_echo_exact_json() {
    let mut env = base_env();
    env.extend([
        ("REQUEST_METHOD", &b"POST"[..]),
        ("CONTENT_LENGTH", b"5"),
        ("CONTENT_TYPE", b"text/plain"),
        ("PATH_INFO", b"/a b"),
        ("QUERY_STRING", b"x=1&y=%20"),
        ("HTTPS", b"on"),
    ]);
    let out = cgi(
        &cgate_bin(),
        &["cgi", "--app", "echo"],
        &env,
        b"hello, and more that is not body",
    );
    let expected = concat!(
        "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: 483\r\n\r\n",
        r#"{"environ":{"CONTENT_LENGTH":"5","CONTENT_TYPE":"text/plain","GATEWAY_INTERFACE":"CGI/1.1","HTTPS":"on","PATH_INFO":"/a b","QUERY_STRING":"x=1&y=%20","REQUEST_METHOD":"POST","SCRIPT_NAME":"/cgi-bin/cgate","SERVER_NAME":"example.test","SERVER_PORT":"80","SERVER_PROTOCOL":"HTTP/1.1"},"gateway":{"kind":"cgi","multiprocess":true,"multithread":false,"run_once":true,"url_scheme":"https"},"input":{"length":5,"sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}}"#,
        "\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

#[test]
fn cgi_post_one_mebibyte_sha256() {
    let body: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let len = body.len().to_string();
    let mut env = base_env();
    env.push(("REQUEST_METHOD", b"POST"));
    env.push(("CONTENT_LENGTH", len.as_bytes()));
    let out = cgi(&cgate_bin(), &["cgi", "--app", "echo"], &env, &body);
    let v = echo_json(&out);
    assert_eq!(v["input"]["length"], 1 << 20);
    assert_eq!(v["input"]["sha256"], sha256_hex(&body));
}

#[test]
fn malformed_content_length_is_400_without_running_the_app() {
    for bad in [
        &b"+5"[..],
        b"0x10",
        b"-1",
        b"18446744073709551616",
        b"5 ",
        b"1e3",
    ] {
        let mut env = base_env();
        env.push(("CONTENT_LENGTH", bad));
        let out = cgi(&cgate_bin(), &["cgi", "--app", "echo"], &env, b"12345");
        assert_eq!(out.stdout, BAD_REQUEST, "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("malformed CONTENT_LENGTH"), "{err}");
    }
}

#[test]
fn content_length_larger_than_stdin_gives_the_bytes_then_an_error() {
    let mut env = base_env();
    env.push(("CONTENT_LENGTH", b"1000"));
    let out = cgi(&cgate_bin(), &["cgi", "--app", "echo"], &env, b"only this");
    let (head, body) = split_cgi(&out.stdout);
    assert!(head.starts_with("Status: 400 Bad Request\r\n"), "{head}");
    assert_eq!(
        body,
        b"{\"error\":\"request body ended after 9 of 1000 bytes\",\"received\":9}\n"
    );
}

#[test]
fn no_content_length_means_no_body() {
    let out = cgi(
        &cgate_bin(),
        &["cgi", "--app", "echo"],
        &base_env(),
        b"ignored",
    );
    let v = echo_json(&out);
    assert_eq!(v["input"]["length"], 0);
}

#[test]
fn non_utf8_survives_and_httpoxy_is_dropped() {
    let mut env = base_env();
    env.push(("HTTP_X_RAW", b"caf\xe9"));
    env.push(("HTTP_PROXY", b"http://evil.example"));
    let out = cgi(&cgate_bin(), &["cgi", "--app", "echo"], &env, b"");
    let v = echo_json(&out);
    assert_eq!(v["environ"]["HTTP_X_RAW"], "caf\u{e9}");
    assert_eq!(v["non_utf8"], serde_json::json!(["HTTP_X_RAW"]));
    assert!(v["environ"].get("HTTP_PROXY").is_none());
}

#[test]
fn app_selection_flag_over_env_over_hello() {
    let mut env = base_env();
    env.push(("CGATE_APP", b"echo"));
    let out = cgi(&cgate_bin(), &[], &env, b"");
    assert_eq!(echo_json(&out)["gateway"]["kind"], "cgi");
    let out = cgi(&cgate_bin(), &["--app", "hello"], &env, b"");
    assert_eq!(out.stdout, HELLO);
    let out = cgi(&cgate_bin(), &["--app", "nope"], &base_env(), b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown app \"nope\""));
}

#[test]
fn no_cgi_environment_and_no_socket_prints_help_and_exits_2() {
    let out = cgi(&cgate_bin(), &[], &[], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Usage: cgate"), "{err}");
}

#[test]
fn header_validation_failure_and_panic_are_clean_500s() {
    for path in [&b"/bad-header"[..], b"/panic"] {
        let mut env = base_env();
        env.push(("PATH_INFO", path));
        let out = cgi(&demo_bin(), &[], &env, b"");
        assert_eq!(out.stdout, ERROR_500, "{path:?}");
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cgate: app error"), "{err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("Injected"));
    }
}

#[test]
fn closed_stdout_ends_quietly() {
    let mut child = Command::new(cgate_bin())
        .args(["cgi", "--app", "bytes:50000000"])
        .env_clear()
        .envs(
            base_env()
                .iter()
                .map(|(n, v)| (n, std::ffi::OsStr::from_bytes(v))),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).expect("some output");
    assert_eq!(&first, b"Status: 200 OK\r\n");
    drop(stdout);
    let out = child.wait_with_output().expect("exits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.status.code().is_some(),
        "killed by a signal: {:?}",
        out.status
    );
}

fn request(args: &[&str]) -> Output {
    Command::new(cgate_bin())
        .arg("request")
        .args(args)
        .env_clear()
        .output()
        .expect("cgate runs")
}

#[test]
fn request_builds_the_cgi_variables() {
    let dir = support::TempDir::new("request");
    let file = dir.join("body.bin");
    let data = support::data(300_000, 251);
    std::fs::write(&file, &data).unwrap();
    let at = format!("@{}", file.display());
    let out = request(&[
        "--app",
        "echo",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "X-Thing: a b",
        "-H",
        "Proxy: evil",
        "-H",
        "Host: example.test:8080",
        "-d",
        &at,
        "/a/b%2Fc?x=1&y",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = echo_json(&out);
    let e = &v["environ"];
    assert_eq!(e["REQUEST_METHOD"], "PUT");
    assert_eq!(e["PATH_INFO"], "/a/b/c");
    assert_eq!(e["QUERY_STRING"], "x=1&y");
    assert_eq!(e["REQUEST_URI"], "/a/b%2Fc?x=1&y");
    assert_eq!(e["SCRIPT_NAME"], "");
    assert_eq!(e["CONTENT_TYPE"], "application/octet-stream");
    assert_eq!(e["CONTENT_LENGTH"], "300000");
    assert_eq!(e["HTTP_X_THING"], "a b");
    assert_eq!(e["SERVER_NAME"], "example.test");
    assert_eq!(e["HTTP_HOST"], "example.test:8080");
    assert!(e.get("HTTP_PROXY").is_none());
    assert_eq!(v["gateway"]["kind"], "local");
    assert_eq!(v["input"]["sha256"], sha256_hex(&data));
}

#[test]
fn request_exit_codes() {
    let out = request(&["/"]);
    assert_eq!(out.stdout, HELLO);
    assert_eq!(out.status.code(), Some(0));
    let out = request(&["--mount", "/api=echo", "/nothing-here"]);
    assert!(out.stdout.starts_with(b"Status: 404 Not Found\r\n"));
    assert_eq!(out.status.code(), Some(1));
    for bad in [
        &["-H", "No colon", "/"][..],
        &["-H", "Bad Name: v", "/"],
        &["no-slash"],
        &["/%00"],
    ] {
        let out = request(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn cgi_reads_exactly_content_length_and_leaves_the_rest_of_stdin() {
    // One pipe as stdin for cgate and then for `cat`: what cgate did not need must still be
    // there for the next reader of the same descriptor.
    let tail: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut input = b"hello".to_vec();
    input.extend_from_slice(&tail);
    let mut env = base_env();
    env.push(("REQUEST_METHOD", b"POST"));
    env.push(("CONTENT_LENGTH", b"5"));
    let bin = cgate_bin();
    let script = format!("'{}' cgi --app echo; /bin/cat", bin.display());
    let out = cgi(
        std::path::Path::new("/bin/sh"),
        &["-c", &script],
        &env,
        &input,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, rest) = split_cgi(&out.stdout);
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    let body_end = rest
        .iter()
        .position(|&b| b == b'\n')
        .expect("one JSON line")
        + 1;
    let json: serde_json::Value = serde_json::from_slice(&rest[..body_end]).expect("JSON");
    assert_eq!(json["input"]["length"], 5);
    assert_eq!(json["input"]["sha256"], sha256_hex(b"hello"));
    assert_eq!(
        rest.len() - body_end,
        tail.len(),
        "bytes left for the next reader"
    );
    assert!(rest[body_end..] == tail[..], "the rest of stdin, unchanged");
}
