//! Header names that collide in the environ (X-Forwarded-For vs X_Forwarded_For): refused with 400 through `cgate request`, raw FastCGI and cgi:DIR.

mod support;

use support::fcgi_bytes;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};

use fcgi_bytes::{END, PARAMS, STDERR, STDIN, STDOUT, nv, rec};
use support::{Backend, Ready, TempDir, cgate_bin};

const BAD_REQUEST: &[u8] = b"Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nBad Request\n";

fn request(args: &[&str]) -> Output {
    Command::new(cgate_bin())
        .arg("request")
        .args(args)
        .env_remove("CGATE_APP")
        .output()
        .expect("cgate runs")
}

/// A cgi:DIR holding the `env.sh` test script.
fn script_dir() -> TempDir {
    let dir = TempDir::new("collide");
    let src = support::manifest_dir().join("tests/cgi-scripts/env.sh");
    let dst = dir.join("env.sh");
    std::fs::copy(&src, &dst).expect("copy env.sh");
    support::chmod(&dst, 0o755);
    dir
}

#[test]
fn cgate_request_refuses_look_alike_headers() {
    for app in ["echo", "hello"] {
        let out = request(&[
            "--app",
            app,
            "-H",
            "X-Forwarded-For: 10.0.0.1",
            "-H",
            "X_Forwarded_For: 6.6.6.6",
            "/",
        ]);
        assert_eq!(out.stdout, BAD_REQUEST, "{app}");
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("request header HTTP_X_FORWARDED_FOR given twice"),
            "{err}"
        );
    }
    let out = request(&["--app", "echo", "-H", "X-Forwarded-For: 10.0.0.1", "/"]);
    let json: serde_json::Value = serde_json::from_slice(body_of(&out.stdout)).unwrap();
    assert_eq!(json["environ"]["HTTP_X_FORWARDED_FOR"], "10.0.0.1");
}

#[test]
fn cgi_dir_scripts_never_see_an_ambiguous_header() {
    let dir = script_dir();
    let app = format!("cgi:{}", dir.path().display());
    let both = request(&[
        "--app",
        &app,
        "-H",
        "X-Forwarded-For: 10.0.0.1",
        "-H",
        "x_forwarded_for: 6.6.6.6",
        "/env.sh",
    ]);
    assert_eq!(both.stdout, BAD_REQUEST);
    let one = request(&["--app", &app, "-H", "X-Forwarded-For: 10.0.0.1", "/env.sh"]);
    let env = String::from_utf8_lossy(body_of(&one.stdout)).into_owned();
    let lines: Vec<_> = env.lines().filter(|l| l.contains("FORWARDED")).collect();
    assert_eq!(lines, ["HTTP_X_FORWARDED_FOR=10.0.0.1"]);
}

fn body_of(cgi: &[u8]) -> &[u8] {
    let pos = cgi
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    &cgi[pos + 4..]
}

/// One FastCGI request on `sock` with `params`; returns the STDOUT stream.
fn fastcgi(sock: &Path, params: &[(&[u8], &[u8])]) -> Vec<u8> {
    fastcgi_with_stderr(sock, params).0
}

/// One FastCGI request; returns the STDOUT and STDERR streams.
fn fastcgi_with_stderr(sock: &Path, params: &[(&[u8], &[u8])]) -> (Vec<u8>, String) {
    let mut conn = UnixStream::connect(sock).expect("connect");
    let mut out = fcgi_bytes::begin_padded(1, 1, 0, 0);
    out.extend(rec(PARAMS, 1, &nv(params), 0));
    out.extend(rec(PARAMS, 1, b"", 0));
    out.extend(rec(STDIN, 1, b"", 0));
    conn.write_all(&out).expect("send");
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    loop {
        let mut header = [0u8; 8];
        conn.read_exact(&mut header).expect("record header");
        let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let mut content = vec![0u8; len + usize::from(header[6])];
        conn.read_exact(&mut content).expect("record content");
        match header[1] {
            STDOUT => stdout.extend_from_slice(&content[..len]),
            STDERR => stderr.extend_from_slice(&content[..len]),
            END => return (stdout, String::from_utf8_lossy(&stderr).into_owned()),
            _ => {}
        }
    }
}

fn server(app: &str, dir: &TempDir) -> Backend {
    let sock = dir.join("cgate.sock");
    let mut cmd = Command::new(cgate_bin());
    cmd.args(["fastcgi", "--listen"])
        .arg(format!("unix:{}", sock.display()))
        .args(["--app", app])
        .env_remove("CGATE_APP")
        .env_remove("FCGI_WEB_SERVER_ADDRS");
    Backend::spawn("cgate", cmd, &[Ready::Unix(sock)])
}

fn params(forwarded: &[&'static [u8]], path: &'static [u8]) -> Vec<(&'static [u8], &'static [u8])> {
    let mut p: Vec<(&[u8], &[u8])> = vec![
        (b"REQUEST_METHOD", b"GET"),
        (b"SERVER_NAME", b"localhost"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"SCRIPT_NAME", b""),
        (b"PATH_INFO", path),
    ];
    for v in forwarded {
        p.push((b"HTTP_X_FORWARDED_FOR", v));
    }
    p
}

#[test]
fn raw_fastcgi_params_with_a_repeated_header_are_refused() {
    let dir = TempDir::new("collide-fcgi");
    let mut echo = server("echo", &dir);
    let sock = dir.join("cgate.sock");
    let (both, log) = fastcgi_with_stderr(&sock, &params(&[b"10.0.0.1", b"6.6.6.6"], b"/"));
    assert_eq!(both, BAD_REQUEST);
    assert!(
        log.contains("request header HTTP_X_FORWARDED_FOR given twice"),
        "{log}"
    );
    let reversed = fastcgi(&sock, &params(&[b"6.6.6.6", b"10.0.0.1"], b"/"));
    assert_eq!(reversed, BAD_REQUEST, "the order does not matter");
    let one = fastcgi(&sock, &params(&[b"10.0.0.1"], b"/"));
    let json: serde_json::Value = serde_json::from_slice(body_of(&one)).unwrap();
    assert_eq!(json["environ"]["HTTP_X_FORWARDED_FOR"], "10.0.0.1");
    echo.stop();

    let scripts = script_dir();
    let mut cgi = server(&format!("cgi:{}", scripts.path().display()), &dir);
    let both = fastcgi(&sock, &params(&[b"10.0.0.1", b"6.6.6.6"], b"/env.sh"));
    assert_eq!(both, BAD_REQUEST);
    let one = fastcgi(&sock, &params(&[b"10.0.0.1"], b"/env.sh"));
    let env = String::from_utf8_lossy(body_of(&one)).into_owned();
    let lines: Vec<_> = env.lines().filter(|l| l.contains("FORWARDED")).collect();
    assert_eq!(lines, ["HTTP_X_FORWARDED_FOR=10.0.0.1"]);
    cgi.stop();
}
