//! The slow log: one line past the limit, a second past ten times it, with id, method, URI, age and what the request waits on.

use crate::client::{params, request};
use crate::harness::{Ops, Scripts, wait_for};

#[test]
fn a_held_request_gets_two_slow_lines() {
    let scripts = Scripts::new();
    let spec = scripts.spec();
    let ops = Ops::start(&["--app", &spec, "--allow-root", "--slow-log-ms", "40"]);
    let mut c = ops.server.connect();
    let held = std::thread::spawn(move || {
        let p = params("GET", "/gate.sh?q=1", &[(b"REQUEST_ID", b"slow-1")]);
        c.roundtrip(1, &request(1, 0, &p, b"")).status()
    });
    let slow_lines = || -> Vec<String> {
        ops.output()
            .lines()
            .filter(|l| l.starts_with("cgate: slow: "))
            .map(str::to_owned)
            .collect()
    };
    wait_for("two slow-log lines", || slow_lines().len() >= 2);
    scripts.release();
    assert_eq!(held.join().unwrap(), 200);
    let lines = slow_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let mut ages = Vec::new();
    for l in &lines {
        let rest = l
            .strip_prefix("cgate: slow: id=slow-1 method=GET uri=\"/gate.sh?q=1\" age_ms=")
            .unwrap_or_else(|| panic!("{l}"));
        let (age, tail) = rest.split_once(' ').unwrap();
        assert!(tail.starts_with("waiting=script thread=cgate-loop"), "{l}");
        ages.push(age.parse::<u64>().unwrap());
    }
    assert!(ages[0] >= 40 && ages[1] >= 400, "{ages:?}");
}

#[test]
fn a_request_waiting_for_its_body_says_so() {
    // A body up to 64 KiB is read ahead in the event loop before the app starts (no thread
    // held, bounded by the request deadline); past that the app runs and its reads wait.
    let first = vec![b'a'; 40_000];
    use crate::client::{PARAMS, RESPONDER, STDIN, begin, rec};
    let ops = Ops::start(&["--app", "echo", "--slow-log-ms", "40"]);
    let mut c = ops.server.connect();
    let p = params(
        "POST",
        "/up",
        &[(b"CONTENT_LENGTH", b"80003"), (b"REQUEST_ID", b"body-1")],
    );
    let mut head = begin(1, RESPONDER, 0, 0);
    head.extend(rec(PARAMS, 1, &p, 0));
    head.extend(rec(PARAMS, 1, b"", 0));
    head.extend(rec(STDIN, 1, &first, 0));
    head.extend(rec(STDIN, 1, &first, 0));
    c.send(&head);
    wait_for("a slow-log line", || {
        ops.output().contains("cgate: slow: id=body-1 ")
    });
    let line = ops
        .output()
        .lines()
        .find(|l| l.contains("id=body-1"))
        .unwrap()
        .to_owned();
    assert!(line.contains(" waiting=body "), "{line}");
    let mut rest = rec(STDIN, 1, b"bcd", 0);
    rest.extend(rec(STDIN, 1, b"", 0));
    c.send(&rest);
    let r = c.reply(1);
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(v["input"]["length"], 80_003);
}

/// The id of the first slow-log line naming `uri`.
fn slow_id(out: &str, uri: &str) -> Option<String> {
    let line = out
        .lines()
        .find(|l| l.starts_with("cgate: slow: ") && l.contains(&format!(" uri={uri:?} ")))?;
    let rest = line.strip_prefix("cgate: slow: id=")?;
    Some(rest.split(' ').next()?.to_owned())
}

#[test]
fn slow_log_alone_turns_request_ids_on_even_before_the_app_runs() {
    use crate::client::{PARAMS, RESPONDER, STDIN, begin, rec};
    let scripts = Scripts::new();
    crate::support::write_script(
        &scripts.dir.join("cgi"),
        "idgate.sh",
        &format!(
            "#!/bin/sh\necho \"seen $REQUEST_ID\" >&2\n\
             while [ ! -e {} ]; do sleep 0.02; done\n\
             printf 'Content-Type: text/plain\\r\\n\\r\\n%s' \"$REQUEST_ID\"\n",
            scripts.path("gate.open").display()
        ),
    );
    let spec = scripts.spec();
    // Only --slow-log-ms: no access log, no status.
    let ops = Ops::start(&["--app", &spec, "--allow-root", "--slow-log-ms", "40"]);
    // A request without an id whose body is still arriving: listed (with a generated id)
    // before its script starts, and the script sees that same id.
    let mut c = ops.server.connect();
    let p = params("POST", "/idgate.sh", &[(b"CONTENT_LENGTH", b"6")]);
    let mut head = begin(1, RESPONDER, 0, 0);
    head.extend(rec(PARAMS, 1, &p, 0));
    head.extend(rec(PARAMS, 1, b"", 0));
    head.extend(rec(STDIN, 1, b"abc", 0));
    c.send(&head);
    wait_for("the slow line of the upload", || {
        slow_id(&ops.output(), "/idgate.sh").is_some()
    });
    let out = ops.output();
    let id = slow_id(&out, "/idgate.sh").unwrap();
    let line = out
        .lines()
        .find(|l| l.contains(&format!("id={id} ")))
        .unwrap();
    assert!(line.ends_with(" waiting=body thread=-"), "{line}");
    let mut rest = rec(STDIN, 1, b"def", 0);
    rest.extend(rec(STDIN, 1, b"", 0));
    c.send(&rest);
    scripts.release();
    let r = c.reply(1);
    assert_eq!(r.status(), 200, "{}", ops.output());
    assert_eq!(String::from_utf8_lossy(r.body()), id);
    let stderr = String::from_utf8_lossy(&r.stderr).into_owned();
    assert!(
        stderr.starts_with(&format!("[{id}] ")) && stderr.ends_with(&format!("seen {id}\n")),
        "{stderr}"
    );
}
