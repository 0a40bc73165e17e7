//! One numeric Content-Length at the response boundary: from an app and from a cgi:DIR script (`cgate request`).

mod support;

use std::process::Command;

use cgate::testing::TestRequest;
use cgate::{Body, app_fn};
use support::{TempDir, cgate_bin, chmod};

/// A cgi:DIR with `cl.sh`, which prints the Content-Length lines given in QUERY_STRING
/// (`,`-separated, `+` as is) and then the body `body`.
fn scripts() -> TempDir {
    let dir = TempDir::new("content-length");
    let script = dir.join("cl.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n'\n\
         IFS=,; for v in $QUERY_STRING; do printf 'Content-Length: %s\\n' \"$v\"; done\n\
         printf '\\nbody'\n",
    )
    .unwrap();
    chmod(&script, 0o755);
    dir
}

fn via_script(dir: &TempDir, lengths: &str) -> (String, Vec<u8>) {
    let out = Command::new(cgate_bin())
        .args(["request", "--app"])
        .arg(format!("cgi:{}", dir.path().display()))
        .arg(format!("/cl.sh?{lengths}"))
        .env_remove("CGATE_APP")
        .output()
        .expect("cgate runs");
    let pos = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    (
        String::from_utf8_lossy(&out.stdout[..pos]).into_owned(),
        out.stdout[pos + 4..].to_vec(),
    )
}

#[test]
fn scripts_get_one_numeric_content_length_or_a_502() {
    let dir = scripts();
    for bad in ["1,100", "abc", "+4", "5G", "4,5"] {
        let (head, body) = via_script(&dir, bad);
        assert!(
            head.starts_with("Status: 502 Bad Gateway\r\n"),
            "{bad}: {head}"
        );
        assert!(
            !head.contains("Content-Length: 1\r") && body == b"Bad Gateway\n",
            "{bad}"
        );
    }
    let (head, body) = via_script(&dir, "2");
    assert!(
        head.starts_with("Status: 200 OK\r\n") && head.ends_with("Content-Length: 2"),
        "{head}"
    );
    assert_eq!(body, b"bo", "truncated to the declared length");
    let (head, body) = via_script(&dir, "4,4");
    assert_eq!(head.matches("Content-Length").count(), 1, "{head}");
    assert_eq!(body, b"body");
}

#[test]
fn apps_get_one_numeric_content_length_or_a_500() {
    for (cl, status) in [
        ("1,100", 500),
        ("abc", 500),
        ("+4", 500),
        ("2", 200),
        ("4,4", 200),
    ] {
        let app = app_fn(move |_req, resp| {
            let headers: Vec<_> = cl.split(',').map(|v| ("Content-Length", v)).collect();
            resp.start(200, headers)?;
            Ok(Body::from("body"))
        });
        let r = TestRequest::get("/").run(&app);
        assert_eq!(r.status, status, "{cl}");
        if status == 200 {
            assert_eq!(r.header_names(), ["Content-Length"]);
            assert_eq!(
                r.body,
                &b"body"[..r.header("content-length").unwrap().parse().unwrap()]
            );
        }
    }
}
