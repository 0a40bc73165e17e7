//! `--app cgi:DIR` through serve: the script tests' scripts answer over HTTP with the runner's rules.

use std::process::Command;

use crate::support::http::{Framing, get, request};
use crate::support::{Backend, Nginx, Ready, TempDir, cgate_bin, conf, data};
use crate::{Serve, cgi_dir};

fn lines_of(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn cgi_scripts_through_serve() {
    let dir = TempDir::new("serve-cgi");
    let cgi = cgi_dir(&dir);
    let s = Serve::start(&["--app", &format!("cgi:{}", cgi.display())]);

    let r = get(s.port, "/hello.sh");
    assert_eq!((r.status, r.text()), (200, "Hello from CGI\n"));
    assert_eq!(r.header("content-type"), Some("text/plain"));

    let r = get(s.port, "/not-found.sh");
    assert_eq!(
        (r.status, r.reason.as_str(), r.text()),
        (404, "Not Found", "no such thing\n")
    );

    let r = get(s.port, "/redirect.sh");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://example.com/elsewhere?a=1")
    );
    assert!(r.body.is_empty());

    let r = get(s.port, "/binary.sh");
    assert_eq!(r.body, b"\x00\x01\x02\xff\xfe\r\n\n\x00end");

    for case in ["nohead", "notype", "cr", "hopbyhop"] {
        let r = get(s.port, &format!("/bad-reply.sh?{case}"));
        assert_eq!(r.status, 502, "{case}");
        assert_eq!(r.header("x-leak"), None, "{case}");
    }
    assert_eq!(get(s.port, "/no-such-script").status, 404);
    assert_eq!(get(s.port, "/hello.sh/../../x").status, 400);

    let r = get(s.port, "/big.sh");
    assert_eq!(r.body.len(), 10 << 20);
    assert!(r.body.iter().all(|&b| b == b'x'));

    let body = data(3 << 20, 9);
    let r = request("POST", s.port, "/echo-body.sh?first", &[], &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-content-length"), Some("3145728"));
    assert_eq!(r.body.len(), (1 << 20) + body.len());
    assert!(r.body[..1 << 20].iter().all(|&b| b == b'f'));
    assert!(r.body[1 << 20..] == body[..]);
}

#[test]
fn cgi_script_environment_comes_from_the_serve_environ() {
    let dir = TempDir::new("serve-cgi-env");
    let cgi = cgi_dir(&dir);
    let s = Serve::start(&["--app", &format!("cgi:{}", cgi.display())]);
    let headers = [("Proxy", "http://evil.example/"), ("X-Thing", "1")];
    let r = request("GET", s.port, "/env.sh/extra/path?a=1", &headers, b"");
    assert_eq!(r.status, 200);
    let lines = lines_of(&r.body);
    let has = |l: &str| lines.iter().any(|x| x == l);
    for want in [
        "GATEWAY_INTERFACE=CGI/1.1",
        "REQUEST_METHOD=GET",
        "SCRIPT_NAME=/env.sh",
        "PATH_INFO=/extra/path",
        "QUERY_STRING=a=1",
        "REQUEST_URI=/env.sh/extra/path?a=1",
        "SERVER_PROTOCOL=HTTP/1.1",
        "REMOTE_ADDR=127.0.0.1",
        "SERVER_NAME=127.0.0.1",
        &format!("SERVER_PORT={}", s.port),
        "HTTP_X_THING=1",
        "PATH=/usr/local/bin:/usr/bin:/bin",
    ] {
        assert!(has(want), "{want} missing from\n{}", lines.join("\n"));
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("HTTP_PROXY=")),
        "{lines:?}"
    );

    // Chunked uploads reach a script too (no CONTENT_LENGTH: the runner streams to EOF).
    let te = [("Transfer-Encoding", "chunked")];
    let chunked = crate::support::http::chunked(&[b"abc", b"defg"]);
    let r = request("POST", s.port, "/echo-body.sh", &te, &chunked);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abcdefg"[..]));
    let mut c = crate::support::http::Conn::open(s.port).expect("connect");
    c.send_request("GET", "/big.sh", &[], b"").expect("send");
    let head = c.read_head("GET").expect("head");
    assert_eq!(head.framing, Framing::Chunked);
}

/// The lines of env.sh's answer that say which script ran and how the path was split.
fn path_vars(body: &[u8]) -> Vec<String> {
    const NAMES: [&str; 6] = [
        "SCRIPT_NAME=",
        "PATH_INFO=",
        "SCRIPT_FILENAME=",
        "QUERY_STRING=",
        "REQUEST_URI=",
        "PWD=",
    ];
    lines_of(body)
        .into_iter()
        .filter(|l| NAMES.iter().any(|n| l.starts_with(n)))
        .collect()
}

fn cgate_fastcgi(sock: &std::path::Path, args: &[&str]) -> Backend {
    let mut cmd = Command::new(cgate_bin());
    cmd.env_remove("CGATE_APP")
        .args(["fastcgi", "--allow-root", "--listen"])
        .arg(format!("unix:{}", sock.display()))
        .args(args);
    Backend::spawn("cgate fastcgi", cmd, &[Ready::Unix(sock.to_path_buf())])
}

#[test]
fn a_mount_prefix_is_the_script_name_prefix_not_a_directory() {
    let dir = TempDir::new("serve-cgi-mount");
    let cgi = cgi_dir(&dir);
    let real = std::fs::canonicalize(&cgi).expect("canonical cgi dir");
    let spec = format!("/cgi-bin=cgi:{}", cgi.display());
    let s = Serve::start(&["--mount", &spec, "--app", "hello"]);

    let r = get(s.port, "/cgi-bin/hello.sh");
    assert_eq!(
        (r.status, r.text()),
        (200, "Hello from CGI\n"),
        "{}",
        s.log()
    );
    let target = "/cgi-bin/env.sh/extra/path?a=1";
    let r = get(s.port, target);
    assert_eq!(r.status, 200, "{}", s.log());
    let want = [
        "PATH_INFO=/extra/path".to_owned(),
        format!("PWD={}", real.display()),
        "QUERY_STRING=a=1".to_owned(),
        format!("REQUEST_URI={target}"),
        format!("SCRIPT_FILENAME={}", real.join("env.sh").display()),
        "SCRIPT_NAME=/cgi-bin/env.sh".to_owned(),
    ];
    let via_serve = path_vars(&r.body);
    assert_eq!(via_serve, want);
    // A directory named like the mount is not where scripts are looked for.
    assert_eq!(get(s.port, "/cgi-bin").status, 403);
    assert_eq!(get(s.port, "/cgi-bin/").status, 403);
    assert_eq!(get(s.port, "/cgi-bin/no-such.sh").status, 404);

    // The same mount under `cgate fastcgi` behind nginx (app at the root, the mount routes),
    // and nginx's fcgiwrap-style cgi-bin block with --app cgi:DIR: the same split.
    let mount_sock = dir.join("mount.sock");
    let _mounted = cgate_fastcgi(&mount_sock, &["--mount", &spec, "--app", "hello"]);
    let site = Nginx::start_with(&conf::nginx_upstream(&mount_sock), &conf::nginx_site(true));
    let r = get(site.port(), target);
    assert_eq!(r.status, 200, "{}", site.error_log());
    assert_eq!(path_vars(&r.body), want, "fastcgi --mount behind nginx");
    let bin_sock = dir.join("cgi-bin.sock");
    let _bin = cgate_fastcgi(&bin_sock, &["--app", &format!("cgi:{}", cgi.display())]);
    let nginx = Nginx::start(&conf::nginx_cgi_bin(&bin_sock, &cgi));
    let r = get(nginx.port(), target);
    assert_eq!(r.status, 200, "{}", nginx.error_log());
    assert_eq!(path_vars(&r.body), want, "nginx cgi-bin block");
}
