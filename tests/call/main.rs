//! `cgate call` against real responders: cgate, php-fpm, Go net/http/fcgi and libfcgi; exact
//! bytes, long params, GET_VALUES, exit codes, a timeout against a backend that never answers.

#[path = "../support/mod.rs"]
mod support;

#[path = "../forward/peers.rs"]
mod peers;

mod repeat;

use std::os::unix::net::UnixListener;
use std::process::{Command, Output};

use serde_json::Value;
use support::{TempDir, cgate_bin, data, sha256_hex};

const HELLO_REPLY: &[u8] =
    b"Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\nHello, world!\n";

fn call(args: &[&str]) -> Output {
    Command::new(cgate_bin())
        .arg("call")
        .args(args)
        .output()
        .expect("cgate call runs")
}

fn sock_arg(p: &std::path::Path) -> String {
    format!("unix:{}", p.display())
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).expect("UTF-8 output")
}

#[test]
fn cgate_hello_exact_bytes_head_status_and_exit_codes() {
    let dir = TempDir::new("call-hello");
    let sock = dir.join("hello.sock");
    let _b = peers::cgate(&sock, &["--app", "hello"]);
    let s = sock_arg(&sock);
    let out = call(&[&s, "/"]);
    assert_eq!(out.stdout, HELLO_REPLY, "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
    let out = call(&[&s, "-i", "/x"]);
    assert_eq!(out.stdout, &HELLO_REPLY[..HELLO_REPLY.len() - 14]);
    let out = call(&[&s, "-s", "--expect", "200"]);
    assert_eq!(
        (text(&out.stdout), out.status.code()),
        ("200 OK\n", Some(0))
    );
    let out = call(&[&s, "-s", "--expect", "404"]);
    assert_eq!(
        (text(&out.stdout), out.status.code()),
        ("200 OK\n", Some(1))
    );
    let gone = sock_arg(&dir.join("nobody.sock"));
    let out = call(&[&gone, "/"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("cannot connect"),
        "{}",
        text(&out.stderr)
    );
    for bad in [
        &["no-such-form", "/"][..],
        &[&s, "relative"],
        &[&s, "-p", "NOEQUALS"],
        &[&s, "--bogus"],
    ] {
        let out = call(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
    }
}

#[test]
fn params_over_64k_body_and_defaults_reach_the_app() {
    let dir = TempDir::new("call-echo");
    let sock = dir.join("echo.sock");
    let _b = peers::cgate(&sock, &["--app", "echo"]);
    let big_a = "a".repeat(70_000);
    let big_b = "b".repeat(100_000);
    let body = data(200_000, 7);
    let file = dir.join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let s = sock_arg(&sock);
    let pa = format!("BIG_A={big_a}");
    let pb = format!("BIG_B={big_b}");
    let d = format!("@{}", file.display());
    let args = [
        &s[..],
        "/p%20q?x=1",
        "-d",
        &d,
        "-H",
        "X-Test: yes",
        "-p",
        &pa,
        "-p",
        &pb,
        "--script-filename",
        "/srv/app.php",
    ];
    let out = call(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let reply = text(&out.stdout);
    let json_at = reply.find("\r\n\r\n").expect("blank line") + 4;
    let v: Value = serde_json::from_str(&reply[json_at..]).expect("echo JSON");
    let env = &v["environ"];
    assert_eq!(env["BIG_A"].as_str().map(str::len), Some(70_000));
    assert_eq!(env["BIG_A"], big_a.as_str());
    assert_eq!(env["BIG_B"], big_b.as_str());
    assert_eq!(env["REQUEST_METHOD"], "POST");
    assert_eq!(env["PATH_INFO"], "/p q");
    assert_eq!(env["QUERY_STRING"], "x=1");
    assert_eq!(env["REQUEST_URI"], "/p%20q?x=1");
    assert_eq!(env["CONTENT_LENGTH"], "200000");
    assert_eq!(env["HTTP_X_TEST"], "yes");
    assert_eq!(env["SCRIPT_FILENAME"], "/srv/app.php");
    assert_eq!(env["GATEWAY_INTERFACE"], "CGI/1.1");
    assert_eq!(v["input"]["sha256"], sha256_hex(&body).as_str());
    assert_eq!(v["input"]["length"], 200_000);
}

#[test]
fn get_values_and_repeat_summary() {
    let dir = TempDir::new("call-values");
    let sock = dir.join("v.sock");
    let _b = peers::cgate(&sock, &["--app", "hello", "--max-conns", "7"]);
    let s = sock_arg(&sock);
    let out = call(&[&s, "--get-values"]);
    assert_eq!(
        text(&out.stdout),
        "FCGI_MAX_CONNS=7\nFCGI_MAX_REQS=7\nFCGI_MPXS_CONNS=0\n"
    );
    assert_eq!(out.status.code(), Some(0));
    let out = call(&[
        &s,
        "--repeat",
        "300",
        "--concurrency",
        "3",
        "--expect",
        "200",
    ]);
    let summary = text(&out.stdout);
    assert!(summary.starts_with("requests 300  errors 0  "), "{summary}");
    assert!(
        summary.contains("\nlatency  p50 ") && summary.contains(" p99 "),
        "{summary}"
    );
    assert_eq!(out.status.code(), Some(0));
    let out = call(&[&s, "--repeat", "20", "--expect", "201"]);
    assert!(
        text(&out.stdout).starts_with("requests 20  errors 20  "),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn timeout_against_a_backend_that_accepts_and_never_answers() {
    let dir = TempDir::new("call-mute");
    let sock = dir.join("mute.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let holder = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        let mut conn = conn;
        // Read the whole request, answer nothing, hold the connection until the client leaves.
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut conn, &mut sink);
        sink
    });
    let out = call(&[&sock_arg(&sock), "--timeout", "0.3", "/"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no progress"),
        "{}",
        text(&out.stderr)
    );
    let got = holder.join().unwrap();
    assert_eq!(&got[..8], &[1, 1, 0, 1, 0, 8, 0, 0], "BEGIN_REQUEST first");
    assert!(
        got.ends_with(&[1, 5, 0, 1, 0, 0, 0, 0]),
        "the empty STDIN last"
    );
}

#[test]
fn backend_stderr_goes_to_stderr() {
    let dir = TempDir::new("call-stderr");
    let cgi = dir.subdir("cgi");
    support::write_script(
        &cgi,
        "warn",
        "#!/bin/sh\necho 'oops from the script' >&2\nprintf 'Content-Type: text/plain\\n\\nok\\n'\n",
    );
    let sock = dir.join("cgi.sock");
    let spec = format!("cgi:{}", cgi.display());
    let _b = peers::cgate(&sock, &["--app", &spec]);
    let out = call(&[&sock_arg(&sock), "--script-name", "/warn", "/"]);
    assert_eq!(
        text(&out.stdout),
        "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok\n"
    );
    assert!(
        text(&out.stderr).contains("oops from the script"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn php_fpm_params_and_body_hash() {
    let dir = TempDir::new("call-php");
    let php = peers::php_fpm(&dir, "echo", 2, 0);
    let body = data(100_000, 3);
    let file = dir.join("post.bin");
    std::fs::write(&file, &body).unwrap();
    let big = "v".repeat(60_000);
    let p = format!("LONG={big}");
    let d = format!("@{}", file.display());
    let script = php.script.display().to_string();
    let out = call(&[
        &sock_arg(&php.sock),
        "/x?y=2",
        "--script-filename",
        &script,
        "-d",
        &d,
        "-p",
        &p,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let reply = text(&out.stdout);
    let body_at = reply.find("\r\n\r\n").expect("head") + 4;
    let lines: Vec<&str> = reply[body_at..].lines().collect();
    assert_eq!(lines[0], "length=100000");
    assert_eq!(lines[1], format!("sha256={}", sha256_hex(&body)));
    assert!(lines.contains(&"param:QUERY_STRING=y=2"), "{reply}");
    assert!(lines.contains(&"param:REQUEST_METHOD=POST"));
    assert!(lines.contains(&format!("param:LONG={big}").as_str()));
    let out = call(&[&sock_arg(&php.sock), "--get-values"]);
    assert_eq!(
        (text(&out.stdout), out.status.code()),
        ("FCGI_MPXS_CONNS=0\n", Some(0))
    );
}

#[test]
fn go_and_libfcgi_hello() {
    let dir = TempDir::new("call-peers");
    let go_sock = dir.join("go.sock");
    let _go = peers::go_fcgi(&dir, &go_sock);
    let out = call(&[&sock_arg(&go_sock), "/"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let reply = text(&out.stdout);
    assert!(reply.ends_with("\r\n\r\nHello, world!\n"), "{reply}");
    assert!(reply.contains("Content-Type: text/plain\r\n"), "{reply}");
    let c_sock = dir.join("c.sock");
    let _c = peers::libfcgi(&dir, &c_sock);
    let out = call(&[&sock_arg(&c_sock), "/", "--expect", "200"]);
    assert_eq!(
        text(&out.stdout),
        "Content-Type: text/plain\r\n\r\nHello, world!\n"
    );
    assert_eq!(out.status.code(), Some(0));
    // libfcgi queues its GET_VALUES_RESULT until it writes a reply: no answer in time.
    let out = call(&[&sock_arg(&c_sock), "--get-values", "--timeout", "0.3"]);
    assert_eq!((text(&out.stdout), out.status.code()), ("", Some(3)));
    assert!(
        text(&out.stderr).contains("no GET_VALUES_RESULT"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_full_listen_backlog_fails_at_once_instead_of_waiting() {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, connect, listen, socket,
    };
    use std::os::fd::AsRawFd;
    let dir = TempDir::new("call-backlog");
    let sock = dir.join("full.sock");
    let listener = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(listener.as_raw_fd(), &UnixAddr::new(&sock).unwrap()).unwrap();
    listen(&listener, Backlog::new(0).unwrap()).unwrap();
    // Fill the queue with connections nobody accepts.
    let mut held = Vec::new();
    loop {
        let c = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK,
            None,
        )
        .unwrap();
        match connect(c.as_raw_fd(), &UnixAddr::new(&sock).unwrap()) {
            Ok(()) => held.push(c),
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(e) => panic!("connect: {e}"),
        }
        assert!(held.len() < 1000, "the backlog never filled");
    }
    let out = call(&[&sock_arg(&sock), "--timeout", "60", "/"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("listen backlog is full"),
        "{}",
        text(&out.stderr)
    );
}
