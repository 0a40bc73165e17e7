//! Headless Chromium opens the echo page: its rendered DOM and a screenshot.

use std::path::Path;
use std::process::{Command, Output};

use crate::Serve;
use crate::support::{TempDir, find_program};

/// Runs headless Chromium with a fresh profile in `dir` and `extra` arguments on `url`.
fn chromium(dir: &Path, extra: &[&str], url: &str) -> Output {
    let bin = find_program("chromium"); // Debian package `chromium`; missing: the test fails
    let profile = dir.join("profile");
    std::fs::create_dir_all(&profile).expect("profile dir");
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .env("HOME", dir)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium {extra:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn chromium_renders_the_echo_page() {
    let dir = TempDir::new("serve-chromium");
    let s = Serve::start(&["--app", "echo"]);
    let url = s.url("/hello/browser?from=chromium");

    let dom = chromium(dir.path(), &["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&dom.stdout);
    for want in [
        "<title>cgate echo: GET /hello/browser?from=chromium</title>",
        "<h1>cgate echo</h1>",
        "<code>GET /hello/browser?from=chromium</code> through the <b>http</b> gateway",
        "<tr><th>kind</th><td>http</td></tr>",
        "<tr><th>PATH_INFO</th><td>/hello/browser</td></tr>",
        "<tr><th>QUERY_STRING</th><td>from=chromium</td></tr>",
        "<tr><th>REQUEST_METHOD</th><td>GET</td></tr>",
        "<tr><th>length</th><td>0</td></tr>",
        "<tr><th>HTTP_USER_AGENT</th><td>Mozilla/5.0",
    ] {
        assert!(dom.contains(want), "{want:?} not in the DOM:\n{dom}");
    }
    s.wait_log("127.0.0.1 GET /hello/browser?from=chromium 200 ");

    let shot = dir.join("echo.png");
    let arg = format!("--screenshot={}", shot.display());
    chromium(
        dir.path(),
        &[&arg, "--window-size=1100,1300", "--hide-scrollbars"],
        &url,
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert!(
        png.len() > 20_000,
        "a real page, not a blank: {} bytes",
        png.len()
    );
    // Kept for a look when asked (CGATE_KEEP_SCREENSHOT=path); the temp dir goes away.
    if let Some(keep) = std::env::var_os("CGATE_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).expect("copy the screenshot");
    }
}
