//! cgi:DIR as fcgiwrap users run it: web-server params, status-only replies, links, timeouts, logs.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};

use crate::scripts::*;
use cgate::apps::cgi::{CgiDir, CgiOptions};
use cgate::gateway::MemorySink;

#[test]
fn web_server_params_reach_scripts_except_the_denied() {
    let s = Scripts::new();
    let app = s.app(CgiOptions::default());
    let env = environ(&[
        ("PATH_INFO", b"/env.sh"),
        ("GIT_PROJECT_ROOT", b"/srv/git"),
        ("GIT_HTTP_EXPORT_ALL", b""),
        ("GITWEB_CONFIG", b"/etc/gitweb.conf"),
        ("CGIT_CONFIG", b"/etc/cgitrc"),
        ("DOCUMENT_URI", b"/env.sh"),
        ("REMOTE_USER", b"alice"),
        ("LD_PRELOAD", b"/tmp/evil.so"),
        ("LD_LIBRARY_PATH", b"/tmp"),
        ("GCONV_PATH", b"/tmp"),
        ("BASH_ENV", b"/tmp/evil.sh"),
        ("ENV", b"/tmp/evil.sh"),
        ("IFS", b"x"),
        ("PERL5OPT", b"-Mevil"),
        ("PERL5LIB", b"/tmp"),
        ("PYTHONPATH", b"/tmp"),
        ("RUBYOPT", b"-revil"),
        ("NODE_OPTIONS", b"--require=/tmp/x"),
        ("HTTP_PROXY", b"http://evil/"),
        ("PATH", b"/tmp/evil"),
        ("SCRIPT_FILENAME_X", b"kept"),
        ("BAD-NAME", b"dropped"),
    ]);
    let d = run_with(&app, env, &mut io::empty(), 0, MemorySink::default());
    assert_eq!(d.status_line(), "200 OK");
    let body = String::from_utf8(d.sink.body.clone()).unwrap();
    let file = canon(&s.0.join("env.sh"));
    let dir = canon(&s.0);
    let want = [
        "CGIT_CONFIG=/etc/cgitrc".to_owned(),
        "DOCUMENT_URI=/env.sh".to_owned(),
        "GATEWAY_INTERFACE=CGI/1.1".to_owned(),
        "GITWEB_CONFIG=/etc/gitweb.conf".to_owned(),
        "GIT_HTTP_EXPORT_ALL=".to_owned(),
        "GIT_PROJECT_ROOT=/srv/git".to_owned(),
        "PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
        format!("PWD={dir}"),
        "REMOTE_USER=alice".to_owned(),
        "REQUEST_METHOD=GET".to_owned(),
        "SCRIPT_FILENAME=".to_owned() + &file,
        "SCRIPT_FILENAME_X=kept".to_owned(),
        "SCRIPT_NAME=/env.sh".to_owned(),
    ];
    let got: Vec<&str> = body.lines().collect();
    assert_eq!(got, want);
}

#[test]
fn status_only_replies_pass_through_and_a_body_needs_a_content_type() {
    let s = Scripts::new();
    script(
        &s,
        "gone.sh",
        "#!/bin/sh\nprintf 'Status: 404 Not Found\\r\\nExpires: Fri, 01 Jan 1980 00:00:00 GMT\\r\\n\\r\\n'\n",
    );
    script(
        &s,
        "forbidden.sh",
        "#!/bin/sh\nprintf 'Status: 403\\n\\n'\n",
    );
    script(
        &s,
        "typeless.sh",
        "#!/bin/sh\nprintf 'Status: 200 OK\\n\\nbody'\n",
    );
    script(
        &s,
        "typeless-late.sh",
        "#!/bin/sh\nprintf 'Status: 404\\n\\n'\nsleep 0.2\nprintf body\n",
    );
    script(
        &s,
        "not-modified.sh",
        "#!/bin/sh\nprintf 'Status: 304\\nContent-Type: text/plain\\nETag: \"x\"\\n\\nbody'\n",
    );
    let app = s.app(CgiOptions::default());
    let d = get(&app, "/gone.sh", "");
    assert_eq!(d.status_line(), "404 Not Found");
    assert_eq!(
        d.headers(),
        pairs(&[
            ("Expires", "Fri, 01 Jan 1980 00:00:00 GMT"),
            ("Content-Length", "0")
        ])
    );
    assert!(d.sink.body.is_empty() && d.sink.finished && !d.sink.aborted);
    let d = get(&app, "/forbidden.sh", "");
    assert_eq!(
        (d.status_line(), d.headers(), d.sink.body.len()),
        ("403 Forbidden", pairs(&[("Content-Length", "0")]), 0)
    );
    for typeless in ["/typeless.sh", "/typeless-late.sh"] {
        let d = get(&app, typeless, "");
        assert_eq!(d.status_line(), "502 Bad Gateway", "{typeless}");
        assert!(
            d.errors
                .contains("bad reply, answering 502: body after a head without Content-Type"),
            "{}",
            d.errors
        );
    }
    let d = get(&app, "/not-modified.sh", "");
    assert_eq!(d.status_line(), "304 Not Modified");
    assert_eq!(
        d.headers(),
        pairs(&[("Content-Type", "text/plain"), ("ETag", "\"x\"")])
    );
    assert!(d.sink.body.is_empty() && d.sink.finished);
}

#[test]
fn content_length_must_be_one_number() {
    let s = Scripts::new();
    let app = s.app(CgiOptions::default());
    for (name, lines) in [
        ("two.sh", "Content-Length: 1\\nContent-Length: 100"),
        ("abc.sh", "Content-Length: abc"),
        ("plus.sh", "Content-Length: +4"),
        ("giga.sh", "Content-Length: 5G"),
        ("list.sh", "Content-Length: 4, 4"),
    ] {
        let text = format!("#!/bin/sh\nprintf 'Content-Type: text/plain\\n{lines}\\n\\nbody'\n");
        script(&s, name, &text);
        let d = get(&app, &format!("/{name}"), "");
        assert_eq!(d.status_line(), "502 Bad Gateway", "{name}");
        assert_eq!(d.sink.body, b"Bad Gateway\n", "{name}");
    }
    script(
        &s,
        "same.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\nContent-Length: 4\\ncontent-length: 4\\n\\nbody'\n",
    );
    let d = get(&app, "/same.sh", "");
    assert_eq!(
        (d.status_line(), d.headers(), d.sink.body.as_slice()),
        (
            "200 OK",
            pairs(&[("Content-Type", "text/plain"), ("Content-Length", "4")]),
            &b"body"[..]
        )
    );
    // a reply shorter than its Content-Length is cut, never ended cleanly
    script(
        &s,
        "short.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\nContent-Length: 100\\n\\nbody'\n",
    );
    let d = get(&app, "/short.sh", "");
    assert_eq!(d.sink.body, b"body");
    assert!(d.sink.aborted && !d.sink.finished && !d.outcome.complete);
    assert!(
        d.errors
            .contains("reply 96 bytes shorter than its Content-Length")
    );
}

#[test]
fn header_lines_are_capped() {
    let s = Scripts::new();
    script(
        &s,
        "many.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n'\ni=0\nwhile [ $i -lt 10000 ]; do echo \"X-$i: v\"; i=$((i+1)); done\necho\necho body\n",
    );
    script(
        &s,
        "hundred.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n'\ni=1\nwhile [ $i -lt 100 ]; do echo \"X-$i: v\"; i=$((i+1)); done\necho\necho body\n",
    );
    let app = s.app(CgiOptions {
        max_header_bytes: 1 << 20,
        ..CgiOptions::default()
    });
    let d = get(&app, "/many.sh", "");
    assert_eq!(d.status_line(), "502 Bad Gateway");
    assert!(
        d.errors.contains("more than 100 reply header lines"),
        "{}",
        d.errors
    );
    let d = get(&app, "/hundred.sh", "");
    assert_eq!((d.status_line(), d.headers().len()), ("200 OK", 100));
}

#[test]
fn links_follow_the_owner_rule_and_refusals_name_the_file() {
    let s = Scripts::new();
    let outside = Scripts::new();
    let target = script(
        &outside,
        "tool.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\noutside tool\\n'\n",
    );
    // like Debian's /usr/lib/cgi-bin/gitweb.cgi -> ../../share/gitweb/gitweb.cgi
    symlink(&target, s.0.join("tool.cgi")).unwrap();
    fs::create_dir(s.0.join("deep")).unwrap();
    symlink(&target, s.0.join("deep/planted.cgi")).unwrap();
    std::os::unix::fs::lchown(s.0.join("deep/planted.cgi"), Some(65534), None).unwrap();
    let app = s.app(CgiOptions::default());
    let d = get(&app, "/tool.cgi/x", "");
    assert_eq!(
        (d.status_line(), d.sink.body.as_slice()),
        ("200 OK", &b"outside tool\n"[..])
    );
    let d = get(&app, "/deep/planted.cgi/x", "");
    assert_eq!(d.status_line(), "403 Forbidden");
    let link = canon(&s.0.join("deep")) + "/planted.cgi";
    assert_eq!(
        d.errors,
        format!(
            "cgate: cgi: {link}: symlink owned by uid 65534 names {} owned by uid 0 (links \
             are followed only when owned by root or by the target's owner) (403)\n",
            canon(&target)
        )
    );
}

#[test]
fn stderr_makes_one_write_per_line_naming_the_file() {
    let s = Scripts::new();
    let file = script(
        &s,
        "talk.sh",
        "#!/bin/sh\nprintf 'par' >&2\nsleep 0.1\nprintf 'tial\\nsecond line\\r\\n\\n' >&2\nprintf 'Content-Type: text/plain\\n\\nok\\n'\nprintf 'no newline at the end' >&2\n",
    );
    let app = s.app(CgiOptions::default());
    let mut sink = MemorySink::default();
    let log = run_logged(&app, environ(&[("PATH_INFO", b"/talk.sh")]), &mut sink);
    let f = canon(&file);
    assert_eq!(
        log,
        [
            format!("cgate: cgi: {f}: partial\n"),
            format!("cgate: cgi: {f}: second line\n"),
            format!("cgate: cgi: {f}: no newline at the end\n"),
        ]
    );
    assert_eq!(sink.body, b"ok\n");
    // a refusal is one line too, naming the file
    let mut sink = MemorySink::default();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o775)).unwrap();
    let log = run_logged(&app, environ(&[("PATH_INFO", b"/talk.sh")]), &mut sink);
    assert_eq!(
        log,
        [format!(
            "cgate: cgi: {f}: file writable by group or others (403)\n"
        )]
    );
}

#[test]
fn world_writable_dir_is_refused() {
    let s = Scripts::new();
    for mode in [0o777, 0o1777] {
        fs::set_permissions(&s.0, fs::Permissions::from_mode(mode)).unwrap();
        let e = CgiDir::new(s.0.clone(), CgiOptions::default())
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "script directory {}: world-writable (mode {mode:o}); refusing to run scripts from it",
                s.0.display()
            )
        );
    }
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn scripts_without_an_interpreter_line_are_500_and_interpreted_ones_get_fd_3() {
    let s = Scripts::new();
    script(
        &s,
        "noshebang.sh",
        "printf 'Content-Type: text/plain\\n\\nx'\n",
    );
    script(
        &s,
        "fds.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\necho \"$0\"\nreadlink /proc/$$/fd/3\n",
    );
    let app = s.app(CgiOptions::default());
    let d = get(&app, "/noshebang.sh", "");
    assert_eq!(d.status_line(), "500 Internal Server Error");
    assert!(
        d.errors
            .contains("cannot run the script: Exec format error"),
        "{}",
        d.errors
    );
    let d = get(&app, "/fds.sh", "");
    // the kernel runs `/bin/sh /dev/fd/3`: fd 3 is the checked file itself
    let file = canon(&s.0.join("fds.sh"));
    assert_eq!(
        String::from_utf8_lossy(&d.sink.body),
        format!("/dev/fd/3\n{file}\n")
    );
}
