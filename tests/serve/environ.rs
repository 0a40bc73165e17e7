//! The environ under `cgate serve` equals the one nginx (conf/nginx snippets) gives `cgate fastcgi`.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use crate::support::http::request;
use crate::support::{Backend, Nginx, Ready, TempDir, cgate_bin, conf};
use crate::{Serve, environ_of};

/// Variables that belong to the transport or the server's own set-up, not to the request:
/// ports, server names and versions, nginx's document root.
const TRANSPORT: [&str; 5] = [
    "REMOTE_PORT",
    "SERVER_PORT",
    "SERVER_SOFTWARE",
    "HTTP_HOST",
    "DOCUMENT_ROOT",
];

fn request_environ(port: u16, method: &str, target: &str, body: &[u8]) -> BTreeMap<String, Value> {
    let host = format!("localhost:{port}");
    let headers = [
        ("Host", host.as_str()),
        ("User-Agent", "cgate-test/1"),
        ("Accept", "*/*"),
        ("X-Custom-Header", "some value"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let headers = if body.is_empty() {
        &headers[..4]
    } else {
        &headers[..]
    };
    let r = request(method, port, target, headers, body);
    assert_eq!(r.status, 200, "{method} {target}: {}", r.text());
    environ_of(&r.body).into_iter().collect()
}

fn split(env: BTreeMap<String, Value>) -> (BTreeMap<String, Value>, Vec<String>) {
    let mut transport: Vec<String> = env
        .keys()
        .filter(|k| TRANSPORT.contains(&k.as_str()))
        .cloned()
        .collect();
    transport.sort();
    let rest = env
        .into_iter()
        .filter(|(k, _)| !TRANSPORT.contains(&k.as_str()))
        .collect();
    (rest, transport)
}

#[test]
fn serve_environ_equals_the_nginx_fastcgi_one() {
    let dir = TempDir::new("serve-vs-nginx");
    let sock = dir.join("cgate.sock");
    let mut cmd = Command::new(cgate_bin());
    cmd.env_remove("CGATE_APP")
        .args(["fastcgi", "--app", "echo", "--listen"])
        .arg(format!("unix:{}", sock.display()));
    let _fcgi = Backend::spawn("cgate fastcgi", cmd, &[Ready::Unix(sock.clone())]);
    let nginx = Nginx::start_with(&conf::nginx_upstream(&sock), &conf::nginx_site(true));
    let serve = Serve::start(&["--app", "echo", "--mount", "/app=echo"]);
    let cases: [(&str, &str, &[u8]); 3] = [
        ("GET", "/", b""),
        ("GET", "/x/./y/../z%20w//v?q=1&r=%2F", b""),
        ("POST", "/app/sub/path?a=b", b"name=value&more=1"),
    ];
    for (method, target, body) in cases {
        let via_nginx = request_environ(nginx.port(), method, target, body);
        let via_serve = request_environ(serve.port, method, target, body);
        let (n, n_transport) = split(via_nginx);
        let (s, s_transport) = split(via_serve);
        assert_eq!(
            n,
            s,
            "{method} {target}: nginx vs serve\n{}",
            nginx.error_log()
        );
        // nginx sets all five; serve all but DOCUMENT_ROOT (it serves no files).
        assert_eq!(n_transport, sorted(&TRANSPORT), "{method} {target}");
        let serve_set: Vec<&str> = TRANSPORT
            .into_iter()
            .filter(|k| *k != "DOCUMENT_ROOT")
            .collect();
        assert_eq!(s_transport, sorted(&serve_set), "{method} {target}");
    }
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}
