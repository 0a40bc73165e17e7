//! End-to-end: cgate behind a real Apache, as a mod_proxy_fcgi backend and as a mod_cgid program, configured with the shipped conf/ snippets.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use serde_json::Value;
use support::{
    Apache, Backend, Ready, Response, TempDir, cgate_bin, conf, data, demo_bin, install_exe,
    is_root, request, sha256_hex, write_script,
};

/// Parses echo's JSON answer, failing with the Apache error log when the status is not 200.
fn echo_json(r: &Response, apache: &Apache) -> Value {
    assert_eq!(r.status, 200, "{}\n{}", r.text(), apache.error_log());
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("echo body is not JSON ({e}): {:?}", r.text()))
}

#[test]
fn proxy_fcgi_over_a_group_owned_unix_socket() {
    let dir = TempDir::new("e2e-proxy-fcgi");
    let sock = dir.join("cgate.sock");
    let mut cmd = Command::new(cgate_bin());
    cmd.env_remove("CGATE_APP")
        .arg("fastcgi")
        .arg("--validate")
        .arg("--listen")
        .arg(format!("unix:{}", sock.display()))
        .args(["--app", "echo"]);
    // Apache's children run as www-data when it is started as root: the socket is given to
    // that group with the default mode 660 (no world access needed).
    if is_root() {
        cmd.args(["--socket-group", "www-data"]);
    }
    let cgate = Backend::spawn("cgate", cmd, &[Ready::Unix(sock.clone())]);
    let meta = std::fs::metadata(&sock).expect("socket exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    if is_root() {
        let www = nix::unistd::Group::from_name("www-data")
            .expect("group lookup")
            .expect("group www-data exists");
        assert_eq!(meta.gid(), www.gid.as_raw());
    }
    let apache = Apache::start(&conf::apache_proxy_fcgi(&sock));
    let port = apache.port();

    let r = request("GET", port, "/x/y%20z?a=1&b=%2F", &[], b"");
    let j = echo_json(&r, &apache);
    let env = &j["environ"];
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["PATH_INFO"], "/x/y z");
    assert_eq!(env["QUERY_STRING"], "a=1&b=%2F");
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(j["gateway"]["kind"], "fastcgi");

    let body = data(1 << 20, 1);
    let r = request(
        "POST",
        port,
        "/up",
        &[("Content-Type", "application/octet-stream")],
        &body,
    );
    let j = echo_json(&r, &apache);
    assert_eq!(j["input"]["length"], 1u64 << 20);
    assert_eq!(j["input"]["sha256"], sha256_hex(&body).as_str());
    assert_eq!(j["environ"]["CONTENT_LENGTH"], "1048576");
    assert_eq!(j["environ"]["PATH_INFO"], "/up");
    assert!(!cgate.proc.has_exited(), "{}", cgate.output());
}

/// A cgi-bin (conf/apache/cgate-cgi.conf) holding the cgate binary as `cgate`, an `echo`
/// wrapper script and the demo app as `demo`, behind a started Apache.
struct CgiBin {
    apache: Apache,
    _dir: TempDir,
}

impl CgiBin {
    fn start() -> CgiBin {
        let dir = TempDir::new("e2e-cgi");
        let bin = dir.subdir("bin");
        let cgi = dir.subdir("cgi-bin");
        // Outside the cgi-bin, where www-data can reach it.
        let cgate = install_exe(&cgate_bin(), &bin, "cgate");
        install_exe(&cgate_bin(), &cgi, "cgate");
        install_exe(&demo_bin(), &cgi, "demo");
        // The ready-to-drop entry from cgi-bin/, pointed at this build of cgate.
        let entry = std::fs::read_to_string(support::manifest_dir().join("cgi-bin/echo"))
            .expect("cgi-bin/echo");
        assert!(entry.contains("/usr/local/bin/cgate"), "{entry}");
        let entry = entry.replace("/usr/local/bin/cgate", &cgate.display().to_string());
        write_script(&cgi, "echo", &entry);
        let apache = Apache::start(&conf::apache_cgi(&cgi));
        CgiBin { apache, _dir: dir }
    }

    fn port(&self) -> u16 {
        self.apache.port()
    }
}

#[test]
fn cgi_bin_runs_the_cgate_binary_and_a_wrapper() {
    let site = CgiBin::start();
    let r = request("GET", site.port(), "/cgi-bin/cgate", &[], b"");
    assert_eq!(r.status, 200, "{}", site.apache.error_log());
    assert_eq!(r.body, support::golden::HELLO_BODY);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    let r = request(
        "GET",
        site.port(),
        "/cgi-bin/echo/p/q?x=1",
        &[("Authorization", "Basic dTpw"), ("Proxy", "evil")],
        b"",
    );
    let j = echo_json(&r, &site.apache);
    let env = &j["environ"];
    assert_eq!(env["SCRIPT_NAME"], "/cgi-bin/echo");
    assert_eq!(env["PATH_INFO"], "/p/q");
    assert_eq!(env["QUERY_STRING"], "x=1");
    assert_eq!(env["GATEWAY_INTERFACE"], "CGI/1.1");
    assert_eq!(env["HTTP_AUTHORIZATION"], "Basic dTpw");
    assert_eq!(env.get("HTTP_PROXY"), None, "{env}");
    assert_eq!(j["gateway"]["kind"], "cgi");
    assert_eq!(j["gateway"]["run_once"], true);

    let body = data(1 << 20, 1);
    let r = request(
        "POST",
        site.port(),
        "/cgi-bin/echo",
        &[("Content-Type", "application/octet-stream")],
        &body,
    );
    let j = echo_json(&r, &site.apache);
    assert_eq!(j["input"]["length"], 1u64 << 20);
    assert_eq!(j["input"]["sha256"], sha256_hex(&body).as_str());
    assert_eq!(j["environ"]["CONTENT_LENGTH"], "1048576");
    assert_eq!(j["environ"]["REQUEST_METHOD"], "POST");
}

#[test]
fn cgi_demo_app_bad_header_and_panic_are_clean_500s() {
    let site = CgiBin::start();
    let r = request("GET", site.port(), "/cgi-bin/demo/bad-header", &[], b"");
    assert_eq!(r.status, 500, "{}", site.apache.error_log());
    assert_eq!(r.header("injected"), None);
    assert_eq!(r.header("x-bad"), None);
    assert!(
        !support::http::contains(&r.raw_head, b"Injected"),
        "{:?}",
        String::from_utf8_lossy(&r.raw_head)
    );
    let r = request("GET", site.port(), "/cgi-bin/demo/panic", &[], b"");
    assert_eq!(r.status, 500, "{}", site.apache.error_log());
    let r = request("GET", site.port(), "/cgi-bin/demo/", &[], b"");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, support::golden::DEMO_HELLO_BODY),
        "{}",
        site.apache.error_log()
    );
}

#[test]
fn cgi_mount_conf_serves_the_app_named_by_set_env() {
    let dir = TempDir::new("e2e-cgi-mount");
    let bin = dir.subdir("bin");
    let cgate = install_exe(&cgate_bin(), &bin, "cgate");
    let apache = Apache::start(&conf::apache_cgi_mount(&cgate, "echo"));
    let r = request("GET", apache.port(), "/app/p/q?r=s", &[], b"");
    let j = echo_json(&r, &apache);
    assert_eq!(j["environ"]["SCRIPT_NAME"], "/app");
    assert_eq!(j["environ"]["PATH_INFO"], "/p/q");
    assert_eq!(j["environ"]["QUERY_STRING"], "r=s");
    assert_eq!(j["environ"]["CGATE_APP"], "echo");
    assert_eq!(j["gateway"]["kind"], "cgi");
}
