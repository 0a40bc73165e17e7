//! The status path: JSON values under a known load held by a gate, OpenMetrics through promtool, loopback only by default.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::client::{Conn, KEEP_CONN, get};
use crate::harness::{Ops, Scripts, wait_for};
use crate::support::find_program;

/// The status document over one kept connection: the test's own polling then adds exactly
/// one connection to the count, whatever closing connections are still doing.
pub fn status_on(c: &mut Conn) -> serde_json::Value {
    let r = c.roundtrip(1, &get(1, KEEP_CONN, "/cgate-status"));
    assert_eq!(r.status(), 200);
    serde_json::from_slice(r.body()).expect("status is JSON")
}

fn hold(ops: &Ops, n: usize) -> Vec<std::thread::JoinHandle<u16>> {
    (0..n)
        .map(|_| {
            let mut c = ops.server.connect();
            std::thread::spawn(move || c.roundtrip(1, &get(1, 0, "/gate.sh")).status())
        })
        .collect()
}

#[test]
fn status_reports_requests_held_by_a_gate_then_released() {
    let scripts = Scripts::new();
    let spec = scripts.spec();
    let ops = Ops::start(&[
        "--app",
        &spec,
        "--allow-root",
        "--status-path",
        "/cgate-status",
        "--max-conns",
        "4",
        "--workers",
        "1",
        "--cgi-max-scripts",
        "5",
    ]);
    let mut sc = ops.server.connect();
    let before = status_on(&mut sc);
    assert_eq!(before["limits"]["scripts"], 5, "{before}");
    assert_eq!(
        before["current"]["scripts"],
        serde_json::json!({"running": 0, "max": 5}),
        "{before}"
    );
    assert_eq!(before["counters"]["requests"]["2xx"], 0, "{before}");
    assert_eq!(before["limits"]["max_conns"], 4);
    assert_eq!(before["limits"]["workers"], 1);
    let held = hold(&ops, 3);
    wait_for("3 requests in flight", || {
        status_on(&mut sc)["current"]["requests_in_flight"] == 3
    });
    let s = status_on(&mut sc);
    let running = s["requests"].as_array().expect("requests");
    assert_eq!(running.len(), 3, "{s}");
    for r in running {
        assert_eq!(r["method"], "GET", "{s}");
        assert_eq!(r["uri"], "/gate.sh", "{s}");
        assert_eq!(r["waiting"], "script", "{s}");
        assert!(r["age_ms"].is_u64() && r["id"].is_string(), "{s}");
    }
    assert_eq!(
        s["current"]["scripts"],
        serde_json::json!({"running": 3, "max": 5}),
        "{s}"
    );
    // 3 held connections and the kept status connection: the limit of 4 is reached now.
    assert_eq!(s["current"]["connections"], 4, "{s}");
    assert_eq!(s["current"]["at_capacity"], true, "{s}");
    let om = metrics(&mut sc);
    assert!(om.contains("\ncgate_requests_in_flight 3\n"), "{om}");
    assert!(om.contains("\ncgate_at_capacity 1\n"), "{om}");
    assert!(om.contains("\ncgate_scripts_running 3\n"), "{om}");
    assert!(om.contains("\ncgate_scripts_max 5\n"), "{om}");
    assert_eq!(
        om.matches("\ncgate_request_age_seconds{").count(),
        3,
        "{om}"
    );
    promtool(&om);
    drop(sc);
    scripts.release();
    for h in held {
        assert_eq!(h.join().unwrap(), 200);
    }
    wait_for("no request in flight", || {
        let s = ops.status();
        s["current"]["requests_in_flight"] == 0 && s["counters"]["requests"]["2xx"] == 3
    });
    let after = ops.status();
    assert_eq!(after["requests"], serde_json::json!([]), "{after}");
    assert_eq!(after["counters"]["cut"], 0);
    assert_eq!(after["current"]["scripts"]["running"], 0, "{after}");
    wait_for("only the status connection", || {
        ops.status()["current"]["connections"] == 1
    });
    assert_eq!(ops.status()["current"]["at_capacity"], false);
    let om = metrics(&mut ops.server.connect());
    assert!(
        om.contains("\ncgate_requests_total{class=\"2xx\"} 3\n"),
        "{om}"
    );
    assert!(om.contains("\ncgate_at_capacity 0\n"), "{om}");
    promtool(&om);
}

pub fn metrics(c: &mut Conn) -> String {
    let r = c.roundtrip(1, &get(1, KEEP_CONN, "/cgate-status?openmetrics"));
    assert_eq!(r.status(), 200);
    assert!(
        r.head()
            .contains("Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{}",
        r.head()
    );
    let text = String::from_utf8(r.body().to_vec()).unwrap();
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    text
}

/// `promtool check metrics` on `text`: exit 0 and nothing reported.
pub fn promtool(text: &str) {
    let mut child = Command::new(find_program("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.is_empty(),
        "promtool: {said}\n{text}"
    );
}

#[test]
fn status_is_for_loopback_addresses_only_unless_widened() {
    let ops = Ops::start(&["--app", "hello", "--status-path", "/cgate-status"]);
    let far = || {
        let p = crate::fcgi_bytes::nv(&[
            (b"REQUEST_METHOD", b"GET"),
            (b"SCRIPT_NAME", b""),
            (b"PATH_INFO", b"/cgate-status"),
            (b"REQUEST_URI", b"/cgate-status"),
            (b"QUERY_STRING", b""),
            (b"SERVER_NAME", b"localhost"),
            (b"SERVER_PORT", b"80"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            (b"REMOTE_ADDR", b"192.0.2.7"),
        ]);
        crate::client::request(1, 0, &p, b"")
    };
    let r = ops.server.connect().roundtrip(1, &far());
    assert_eq!(
        r.body(),
        b"Hello, world!\n",
        "the app answers, not the status"
    );
    assert_eq!(ops.status()["counters"]["requests"]["2xx"], 1);
    let wide = Ops::start(&[
        "--app",
        "hello",
        "--status-path",
        "/cgate-status",
        "--status-any-addr",
    ]);
    let r = wide.server.connect().roundtrip(1, &far());
    let v: serde_json::Value = serde_json::from_slice(r.body()).expect("status JSON");
    assert_eq!(v["pid"], wide.server.pid());
}
