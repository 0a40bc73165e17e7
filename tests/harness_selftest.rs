//! Proves the test harness (HTTP client, nginx/Apache/fcgiwrap guards, conf snippets) works on its own, without cgate.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use support::fcgi_echo::{self, FcgiEcho};
use support::http::{self, Conn};
use support::{Apache, Fcgiwrap, Nginx, TempDir, conf, request, sha256_hex, write_script};

/// Serves each canned reply to one connection (reading the request head first), then closes.
fn canned_server(replies: Vec<&'static [u8]>) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        for reply in replies {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap() == 1 {
                head.push(b[0]);
            }
            s.write_all(reply).unwrap();
        }
    });
    (port, t)
}

#[test]
fn client_decodes_chunked_length_and_close_delimited_bodies() {
    let (port, t) = canned_server(vec![
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-Sum: 12\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabcEXTRA",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil\r\nclose\x00",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    ]);
    let r = request("GET", port, "/", &[], b"");
    assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
    assert_eq!(r.body, b"hello world!");
    assert_eq!(r.trailers, vec![("X-Sum".to_string(), "12".to_string())]);
    let r = request("POST", port, "/", &[], b"data");
    assert_eq!((r.status, r.body.as_slice()), (201, &b"abc"[..]));
    let r = request("GET", port, "/", &[], b"");
    assert_eq!(r.body, b"until\r\nclose\x00");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let r = request("GET", port, "/", &[], b"");
    assert_eq!((r.status, r.body.len()), (204, 0));
    assert_eq!(
        r.raw_head,
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: 1\r\nX-A: 2\r\n\r\n"
    );
    assert_eq!(r.header_all("x-a"), vec!["1", "2"]);
    let mut c = Conn::open(port).unwrap();
    c.send_request("GET", "/", &[], b"").unwrap();
    let head = c.read_head("GET").unwrap();
    assert_eq!(head.framing, http::Framing::Chunked);
    let mut body = c.body(&head);
    let err = body.read_to_end().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    assert_eq!(body.received(), b"hel");
    t.join().unwrap();
}

#[test]
fn sha256_hex_matches_known_vector() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn nginx_serves_a_static_file_byte_for_byte() {
    let nginx = Nginx::start("location / { }");
    let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    std::fs::write(nginx.docroot().join("blob.bin"), &data).unwrap();
    let r = request("GET", nginx.port(), "/blob.bin", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("100000"));
    assert_eq!(sha256_hex(&r.body), sha256_hex(&data));
    assert_eq!(r.body, data);
    assert_eq!(
        request("GET", nginx.port(), "/missing", &[], b"").status,
        404
    );
}

const ENV_SCRIPT: &str = "#!/bin/sh
printf 'Content-Type: text/plain\\r\\nX-Script: env\\r\\n\\r\\n'
printf 'method=%s\\n' \"$REQUEST_METHOD\"
printf 'script_name=%s\\n' \"$SCRIPT_NAME\"
printf 'path_info=%s\\n' \"${PATH_INFO-<unset>}\"
printf 'query=%s\\n' \"$QUERY_STRING\"
printf 'auth=%s\\n' \"${HTTP_AUTHORIZATION-<unset>}\"
printf 'body='
if [ -n \"$CONTENT_LENGTH\" ]; then head -c \"$CONTENT_LENGTH\"; fi
";

#[test]
fn nginx_runs_a_sh_cgi_script_through_fcgiwrap_chunked() {
    let dir = TempDir::new("fcgiwrap");
    let cgi = dir.subdir("cgi-bin");
    write_script(&cgi, "env.sh", ENV_SCRIPT);
    let sock = dir.join("fcgiwrap.sock");
    let _fcgiwrap = Fcgiwrap::start(&sock);
    let nginx = Nginx::start(&conf::nginx_cgi_bin(&sock, &cgi));
    let r = request(
        "POST",
        nginx.port(),
        "/cgi-bin/env.sh/a%20b/c?x=1&y=%41",
        &[("Authorization", "Basic dTpw")],
        b"posted bytes",
    );
    assert_eq!(r.status, 200, "{}", nginx.error_log());
    assert_eq!(r.header("x-script"), Some("env"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(
        r.text(),
        "method=POST\nscript_name=/cgi-bin/env.sh\npath_info=/a b/c\nquery=x=1&y=%41\n\
         auth=Basic dTpw\nbody=posted bytes"
    );
    let r = request("GET", nginx.port(), "/cgi-bin/env.sh", &[], b"");
    assert_eq!(
        r.text(),
        "method=GET\nscript_name=/cgi-bin/env.sh\npath_info=<unset>\nquery=\nauth=<unset>\nbody="
    );
}

#[test]
fn nginx_unbuffered_stream_delivers_first_part_before_second_is_written() {
    // fcgiwrap flushes its output in 8 KiB pieces, so the first part is 64 KiB; the second
    // is only written once the test has seen at least 32 KiB and created the flag file.
    let dir = TempDir::new("stream");
    let cgi = dir.subdir("cgi-bin");
    let flag = dir.join("go");
    write_script(
        &cgi,
        "stream.sh",
        &format!(
            "#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
head -c 65536 /dev/zero | tr '\\0' a
i=0
while [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
printf 'part2\\n'
",
            flag.display()
        ),
    );
    let sock = dir.join("fcgiwrap.sock");
    let _fcgiwrap = Fcgiwrap::start(&sock);
    // The shipped snippet turns fastcgi_buffering off.
    let site = conf::nginx_cgi_bin(&sock, &cgi);
    assert!(site.contains("fastcgi_buffering off;"), "{site}");
    let nginx = Nginx::start(&site);
    let mut c = Conn::open(nginx.port()).unwrap();
    c.send_request("GET", "/cgi-bin/stream.sh", &[("Connection", "close")], b"")
        .unwrap();
    let head = c.read_head("GET").unwrap();
    assert_eq!(head.status, 200);
    let mut body = c.body(&head);
    let first = body.read_at_least(32 * 1024).unwrap();
    assert!(first.len() <= 65536 && first.iter().all(|&b| b == b'a'));
    std::fs::write(&flag, b"").unwrap();
    let mut expected = vec![b'a'; 65536];
    expected.extend_from_slice(b"part2\n");
    assert_eq!(body.read_to_end().unwrap(), expected);
    assert!(body.arrivals().len() >= 2);
}

#[test]
fn apache_cgi_conf_runs_a_sh_script_with_path_info_query_and_auth() {
    let dir = TempDir::new("apache-cgi");
    let cgi = dir.subdir("cgi-bin");
    write_script(&cgi, "env.sh", ENV_SCRIPT);
    let apache = Apache::start(&conf::apache_cgi(&cgi));
    let r = request(
        "POST",
        apache.port(),
        "/cgi-bin/env.sh/x/y%2Bz?q=1&r",
        &[("Authorization", "Bearer t0k")],
        b"12345",
    );
    assert_eq!(r.status, 200, "{}", apache.error_log());
    assert_eq!(
        r.text(),
        "method=POST\nscript_name=/cgi-bin/env.sh\npath_info=/x/y+z\nquery=q=1&r\nauth=Bearer t0k\nbody=12345"
    );
}

#[test]
fn apache_cgi_mount_conf_runs_one_program_at_a_prefix() {
    let dir = TempDir::new("apache-mount");
    let bin = dir.subdir("bin");
    let prog = write_script(
        &bin,
        "fake-cgate",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s|%s|%s' \"$CGATE_APP\" \"$SCRIPT_NAME\" \"$PATH_INFO\"\n",
    );
    let apache = Apache::start(&conf::apache_cgi_mount(&prog, "echo"));
    let r = request("GET", apache.port(), "/app/p/q", &[], b"");
    assert_eq!(
        (r.status, r.text()),
        (200, "echo|/app|/p/q"),
        "{}",
        apache.error_log()
    );
    assert_eq!(
        request("GET", apache.port(), "/application", &[], b"").status,
        404
    );
}

#[test]
fn nginx_site_conf_mounts_and_keeps_connections() {
    let dir = TempDir::new("site");
    let sock = dir.join("echo.sock");
    let echo = FcgiEcho::start(&sock);
    let nginx = Nginx::start_with(&conf::nginx_upstream(&sock), &conf::nginx_site(true));
    let port = nginx.port();
    let r = request("GET", port, "/x/y%20z?a=1", &[], b"");
    assert_eq!(r.status, 200, "{}", nginx.error_log());
    let env = fcgi_echo::parse(r.text());
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["PATH_INFO"], "/x/y z");
    assert_eq!(env["QUERY_STRING"], "a=1");
    assert_eq!(env["REQUEST_URI"], "/x/y%20z?a=1");
    assert_eq!(env["SERVER_PORT"], port.to_string());
    let r = request(
        "POST",
        port,
        "/app/p/q",
        &[("Content-Type", "text/x")],
        b"hello",
    );
    let env = fcgi_echo::parse(r.text());
    assert_eq!(
        (env["SCRIPT_NAME"].as_str(), env["PATH_INFO"].as_str()),
        ("/app", "/p/q")
    );
    assert_eq!(
        (env["CONTENT_LENGTH"].as_str(), env["CONTENT_TYPE"].as_str()),
        ("5", "text/x")
    );
    assert_eq!(env["STDIN"], format!("5 {}", sha256_hex(b"hello")));
    let r = request("GET", port, "/stream/s", &[], b"");
    assert_eq!(fcgi_echo::parse(r.text())["PATH_INFO"], "/stream/s");
    for _ in 0..6 {
        assert_eq!(request("GET", port, "/", &[], b"").status, 200);
    }
    // Two nginx workers, each keeping its own idle connection.
    assert!(
        echo.connections() <= 2,
        "{} connections",
        echo.connections()
    );
}

#[test]
fn nginx_site_conf_without_keep_conn_opens_a_connection_per_request() {
    let dir = TempDir::new("site-nokeep");
    let sock = dir.join("echo.sock");
    let echo = FcgiEcho::start(&sock);
    let nginx = Nginx::start_with(&conf::nginx_upstream(&sock), &conf::nginx_site(false));
    for _ in 0..3 {
        assert_eq!(request("GET", nginx.port(), "/", &[], b"").status, 200);
    }
    assert_eq!(echo.connections(), 3);
}

#[test]
fn apache_proxy_fcgi_conf_mounts_at_the_root() {
    let dir = TempDir::new("proxy-fcgi");
    let sock = dir.join("echo.sock");
    let _echo = FcgiEcho::start(&sock);
    let apache = Apache::start(&conf::apache_proxy_fcgi(&sock));
    let r = request("GET", apache.port(), "/x/y%20z?a=1", &[], b"");
    assert_eq!(r.status, 200, "{}", apache.error_log());
    let env = fcgi_echo::parse(r.text());
    assert_eq!(env["QUERY_STRING"], "a=1");
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["PATH_INFO"], "/x/y z");
}

/// State letter of a process from /proc, or None when it is gone.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[test]
fn backend_stop_ends_the_whole_process_group() {
    let dir = TempDir::new("backend");
    let pidfile = dir.join("child.pid");
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c").arg(format!(
        "sleep 300 & echo $! > '{0}.tmp'; mv '{0}.tmp' '{0}'; exec sleep 301",
        pidfile.display()
    ));
    let mut backend =
        support::Backend::spawn("sleeper", cmd, &[support::Ready::Path(pidfile.clone())]);
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(proc_state(child).map(|s| s != 'Z'), Some(true));
    let status = backend.stop().expect("leader reaped");
    assert!(!status.success());
    // The background child got SIGKILL with the group; wait (bounded) until it is reaped.
    let mut gone = false;
    for _ in 0..500 {
        if matches!(proc_state(child), None | Some('Z')) {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(gone, "process {child} survived the backend's stop");
}
