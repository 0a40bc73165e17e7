//! Differential test of `cgi:DIR`: the same scripts served by cgate and fcgiwrap (behind nginx) and by Apache mod_cgid, compared.
//!
//! Where fcgiwrap and Apache agree on the status, `Content-Type`, `Location` or the body,
//! cgate must agree as well. Where they differ, or do something unsafe, cgate's documented
//! rules (src/apps/cgi/mod.rs, src/cgi/reply.rs) are asserted and the peers' behaviour is
//! written down next to the check. The table of what each server did is printed (run with
//! `--nocapture` to see it).

#[path = "../support/mod.rs"]
mod support;

mod run;
mod sites;

use std::process::Command;
use std::time::Duration;

use run::{Outcome, fetch, slow};
use sites::{CgiBin, Peer, SECRET, Sites, kill_leftovers, left_after, processes_of};
use support::{data, sha256_hex};

/// One behaviour and what each server did, in [`Peer::ALL`] order.
struct Row {
    name: &'static str,
    out: [Outcome; 3],
}

impl Row {
    fn get(&self, peer: Peer) -> &Outcome {
        match peer {
            Peer::Cgate => &self.out[0],
            Peer::Fcgiwrap => &self.out[1],
            Peer::Apache => &self.out[2],
        }
    }
}

/// Runs `request` against each server in turn (never two at once, so a process census
/// belongs to one server), then counts the processes of `script` left: cgate gets up to
/// 30 s to be rid of them, the peers 5 s; whatever is left is recorded, then killed.
fn each(
    sites: &Sites,
    cgi: &CgiBin,
    script: &str,
    request: impl Fn(Peer, u16) -> Outcome,
) -> [Outcome; 3] {
    let path = cgi.script(script);
    Peer::ALL.map(|peer| {
        let mut out = request(peer, sites.port(peer));
        let wait = if peer == Peer::Cgate { 30 } else { 5 };
        out.leftovers = left_after(&path, Duration::from_secs(wait));
        if out.status.is_none() {
            out.notes
                .push(sites.logs(peer).lines().last().unwrap_or("").to_owned());
        }
        kill_leftovers(&path);
        out
    })
}

fn get(script: &'static str) -> impl Fn(Peer, u16) -> Outcome {
    move |_, port| fetch(port, "GET", &format!("/cgi-bin/{script}"), &[], b"")
}

/// POSTs `len` bytes to echo-body.sh; the body becomes "echoed, sha matches" when it came
/// back whole.
fn echo(len: usize) -> impl Fn(Peer, u16) -> Outcome {
    move |_, port| {
        let body = data(len, len as u64);
        let mut out = fetch(
            port,
            "POST",
            "/cgi-bin/echo-body.sh",
            &[("Content-Type", "application/octet-stream")],
            &body,
        );
        if out.complete() && out.body == body {
            out.summary = Some(format!("all {len} B echoed (sha256 equal)"));
        }
        out
    }
}

/// The line of an environment listing that starts with `NAME=`, as a table summary.
fn env_line(out: &Outcome, name: &str) -> Outcome {
    let mut o = out.clone();
    let prefix = format!("{name}=");
    let line = out
        .body
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(prefix.as_bytes()));
    o.summary = Some(match line {
        Some(l) => format!("env has `{}`", String::from_utf8_lossy(l)),
        None => format!("no {name} in env"),
    });
    o
}

/// A request made to one server.
type Probe = Box<dyn Fn(Peer, u16) -> Outcome>;

/// Every behaviour, on every server.
fn run_all(cgi: &CgiBin) -> Vec<Row> {
    let mut rows = Vec::new();
    let shared = Sites::start(cgi);
    let plain: [(&str, &str); 9] = [
        ("hello", "hello.sh"),
        ("Status: 404", "not-found.sh"),
        ("client redirect (absolute Location)", "redirect.sh"),
        (
            "local redirect (Location: /path, no Status)",
            "local-redirect.sh",
        ),
        ("binary body (NUL, 0xff, CR)", "binary.sh"),
        ("10 MiB body", "big.sh"),
        ("2 MiB stderr flood", "stderr-flood.sh"),
        ("exit 3 after a complete reply", "exit3.sh"),
        ("env listing", "env.sh"),
    ];
    for (name, script) in plain {
        if script == "env.sh" {
            let out = each(&shared, cgi, script, |_, port| {
                fetch(port, "GET", "/cgi-bin/env.sh", &[("Proxy", "evil")], b"")
            });
            rows.push(Row {
                name: "httpoxy (`Proxy: evil` sent)",
                out: out.clone().map(|o| env_line(&o, "HTTP_PROXY")),
            });
            rows.push(Row {
                name: "daemon env `CGATE_TEST_SECRET`",
                out: out.map(|o| env_line(&o, SECRET.0)),
            });
            continue;
        }
        rows.push(Row {
            name,
            out: each(&shared, cgi, script, get(script)),
        });
    }
    let gate = cgi.gate.clone();
    rows.push(Row {
        name: "slow stream (one, pause, two)",
        out: each(&shared, cgi, "slow.sh", |peer, port| {
            // cgate must stream: it gets all the time in the world to deliver "one\n".
            let fallback = if peer == Peer::Cgate { 60 } else { 4 };
            slow(
                port,
                "/cgi-bin/slow.sh",
                &gate,
                Duration::from_secs(fallback),
            )
        }),
    });
    drop(shared);
    // Each of these may wedge a peer: fresh servers for each.
    let fresh: [(&'static str, &str, Probe); 4] = [
        ("POST echo 1 MiB", "echo-body.sh", Box::new(echo(1 << 20))),
        ("POST echo 64 MiB", "echo-body.sh", Box::new(echo(64 << 20))),
        (
            "hung script (silent forever)",
            "hung.sh",
            Box::new(get("hung.sh")),
        ),
        (
            "grandchild holds stdout",
            "grandchild.sh",
            Box::new(get("grandchild.sh")),
        ),
    ];
    for (name, script, request) in fresh {
        let sites = Sites::start(cgi);
        rows.push(Row {
            name,
            out: each(&sites, cgi, script, request),
        });
    }
    rows
}

fn table(rows: &[Row]) -> String {
    let mut t = String::from("| script behaviour |");
    for p in Peer::ALL {
        t.push_str(&format!(" {} |", p.name()));
    }
    t.push('\n');
    t.push_str("|---|---|---|---|\n");
    for r in rows {
        t.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.name,
            r.out[0].cell(),
            r.out[1].cell(),
            r.out[2].cell()
        ));
    }
    t
}

/// Collected failures, so the table is printed in full before the test fails.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn that(&mut self, row: &Row, ok: bool, what: &str) {
        if !ok {
            self.0.push(format!(
                "{}: {what}: cgate gave {}",
                row.name,
                row.get(Peer::Cgate).cell()
            ));
        }
    }

    /// Where both peers answered completely and agree on a field, cgate has the same.
    fn peers_agree(&mut self, row: &Row, fields: &[&str]) {
        let (w, a) = (row.get(Peer::Fcgiwrap), row.get(Peer::Apache));
        if !(w.complete() && a.complete()) {
            return;
        }
        for &f in fields {
            let value = |o: &Outcome| match f {
                "status" => o.status.map(|s| s.to_string()),
                "body" => o.complete().then(|| o.sha()),
                header => o.header(header).map(str::to_owned),
            };
            let peers = value(w);
            if peers == value(a) {
                let mine = value(row.get(Peer::Cgate));
                self.that(
                    row,
                    mine == peers,
                    &format!("peers agree on {f} = {peers:?}, cgate has {mine:?}"),
                );
            }
        }
    }
}

fn row<'a>(rows: &'a [Row], name: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.name.starts_with(name))
        .expect("row exists")
}

/// cgate's answer in `row` is complete with this status, Content-Type and body.
fn exact(c: &mut Checks, r: &Row, status: u16, ctype: Option<&str>, body: &[u8]) {
    let o = r.get(Peer::Cgate);
    c.that(r, o.complete(), "complete response");
    c.that(r, o.status == Some(status), &format!("status {status}"));
    c.that(
        r,
        o.header("content-type") == ctype,
        &format!("Content-Type {ctype:?}"),
    );
    c.that(
        r,
        o.sha() == sha256_hex(body),
        &format!("body sha256 {}", sha256_hex(body)),
    );
}

/// The checks. Comments give what the peers did in the recorded runs (nginx 1.22 +
/// fcgiwrap 1.1.0, Apache 2.4 mod_cgid); only cgate's side is asserted.
fn assert_rules(rows: &[Row]) -> Checks {
    let mut c = Checks::default();
    for r in rows {
        c.that(
            r,
            r.get(Peer::Cgate).leftovers.is_empty(),
            "no script process left",
        );
        // The environment listings differ by nature (each server sets its own variables).
        let env = r.name.starts_with("httpoxy") || r.name.starts_with("daemon env");
        let fields: &[&str] = if env {
            &["status", "content-type"]
        } else {
            &["status", "content-type", "location", "body"]
        };
        c.peers_agree(r, fields);
    }
    let ok = |r: &str| row(rows, r);
    // The peers agree on all of these; cgate gives the same exact bytes.
    let octets = Some("application/octet-stream");
    let plain = Some("text/plain");
    exact(&mut c, ok("hello"), 200, plain, b"Hello from CGI\n");
    exact(&mut c, ok("Status: 404"), 404, plain, b"no such thing\n");
    let binary = b"\x00\x01\x02\xff\xfe\r\n\n\x00end";
    exact(&mut c, ok("binary body"), 200, octets, binary);
    exact(&mut c, ok("10 MiB"), 200, octets, &[b'x'; 10 << 20]);
    let lines: String = (0..32).map(|i| format!("line {i}\n")).collect();
    exact(&mut c, ok("2 MiB stderr"), 200, plain, lines.as_bytes());
    // Exit status 3 after a complete reply: everyone keeps the response as written.
    exact(&mut c, ok("exit 3"), 200, plain, b"partial\n");

    // Client redirect: both peers answer 302 with the Location; fcgiwrap (nginx) passes the
    // script's body on without a Content-Type, Apache replaces it with its own text/html
    // page. cgate's rule: a reply without Content-Type has its body dropped and no type
    // is invented.
    // Local redirect (`Location: /path`, no Status): nginx answers 302 to the path; Apache
    // follows it inside the server (here a 404 page, /hello.sh is outside the cgi-bin).
    // cgate's rule: answered as a client redirect, 302 to that path, empty body.
    for (name, to) in [
        ("client redirect", "https://example.com/elsewhere?a=1"),
        ("local redirect", "/hello.sh?from=local"),
    ] {
        let r = ok(name);
        exact(&mut c, r, 302, None, b"");
        let location = r.get(Peer::Cgate).header("location");
        c.that(r, location == Some(to), "Location as written");
    }

    // Slow stream: Apache streams; fcgiwrap holds small output in its own 8 KiB buffer, so
    // `one\n` only comes with `two\n`. cgate streams (the shipped nginx snippet turns
    // fastcgi_buffering off).
    let r = ok("slow stream");
    exact(&mut c, r, 200, plain, b"one\ntwo\n");
    let streamed = r.get(Peer::Cgate).streamed == Some(true);
    c.that(
        r,
        streamed,
        "one\\n reaches the client before two\\n is written",
    );

    // POST echo (the script writes its head, then copies stdin to stdout): fcgiwrap writes
    // the whole body before reading any output, deadlocks with the script, and nginx gives
    // 504 after its timeout with the script left blocked; Apache also writes before it
    // reads, gives up after its Timeout and sends 200 with a silently truncated body.
    // cgate exchanges both ways and, behind nginx (which stops sending the body once the
    // response head has arrived), reads the rest of the body ahead: every byte comes back.
    for (name, len) in [
        ("POST echo 1 MiB", 1usize << 20),
        ("POST echo 64 MiB", 64 << 20),
    ] {
        let r = ok(name);
        exact(&mut c, r, 200, octets, &data(len, len as u64));
        let cl = r.get(Peer::Cgate).header("x-content-length");
        let want = len.to_string();
        c.that(
            r,
            cl == Some(want.as_str()),
            "CONTENT_LENGTH seen by the script",
        );
    }

    // Hung script: all three answer 504 (nginx's and Apache's own HTML pages), but under
    // fcgiwrap the script and its sleep stay, and under Apache one of the two stays. cgate: 504
    // after the idle timeout, plain text, and the whole process group is killed.
    let timeout = Some("text/plain; charset=utf-8");
    exact(&mut c, ok("hung"), 504, timeout, b"Gateway Timeout\n");

    // A grandchild holding stdout after the script exited: fcgiwrap waits for the end of
    // output, so nginx answers 504 and the grandchild stays; Apache sends `body\n`, then
    // cuts the connection after its Timeout, and the grandchild stays. cgate ends the
    // response normally one idle timeout after the exit and kills the grandchild.
    exact(&mut c, ok("grandchild"), 200, plain, b"body\n");

    // httpoxy: fcgiwrap hands nginx's HTTP_PROXY=evil to the script; Apache drops it.
    let r = ok("httpoxy");
    let summary = r.get(Peer::Cgate).summary.as_deref();
    c.that(r, summary == Some("no HTTP_PROXY in env"), "no HTTP_PROXY");
    // Daemon environment: fcgiwrap passes its own environment on (the secret leaks);
    // Apache passes only what it is told to. cgate passes nothing not asked for.
    let r = ok("daemon env");
    let want = format!("no {} in env", SECRET.0);
    let summary = r.get(Peer::Cgate).summary.as_deref();
    c.that(
        r,
        summary == Some(want.as_str()),
        "daemon secret not passed",
    );
    c
}

#[test]
fn cgi_scripts_under_cgate_fcgiwrap_and_apache() {
    let cgi = CgiBin::new();
    let rows = run_all(&cgi);
    println!("\n{}", table(&rows));
    let checks = assert_rules(&rows);
    assert!(
        checks.0.is_empty(),
        "{} failed checks:\n{}",
        checks.0.len(),
        checks.0.join("\n")
    );
}

/// The census that backs "no script process left" sees a live script and what it started,
/// and ends them.
#[test]
fn census_finds_a_script_and_its_children() {
    let cgi = CgiBin::new();
    let script = cgi.script("hung.sh");
    let mut child = Command::new(&script)
        .env("SCRIPT_FILENAME", &script)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run hung.sh");
    // The shell and its `sleep 1000`.
    let mut found = Vec::new();
    for _ in 0..600 {
        found = processes_of(&script);
        if found.len() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let shell = i32::try_from(child.id()).expect("pid");
    assert!(
        found.len() == 2 && found.contains(&shell),
        "{found:?} (shell {shell})"
    );
    kill_leftovers(&script);
    let _ = child.wait();
    assert_eq!(processes_of(&script), Vec::<i32>::new());
}
