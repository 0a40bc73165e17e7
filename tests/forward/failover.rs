//! Failover under load: nginx -> cgate `fcgi:` over 3 cgate backends, one killed (SIGKILL)
//! and restarted every second for 20 s while clients send mixed GET/POST requests at
//! 200 per second (each client on a fixed schedule; one that falls behind sends at once).
//!
//! Checked: no POST runs twice (each backend's script appends the request id to a shared
//! file after reading the body); every request that did not overlap a kill succeeds (those
//! refused by a dead backend were retried); the failures that did overlap one are 502s or
//! cut replies; no
//! backend ever holds more connections than it advertised (FCGI_MAX_CONNS 4, option 16).

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::support::http::try_request;
use crate::support::{Backend, Ready, TempDir, cgate_bin, data, sha256_hex};

const BACKENDS: usize = 3;
const ADVERTISED: usize = 4;
const RUN_FOR: Duration = Duration::from_secs(20);
/// Requests per second offered by all clients together (the load, not a result).
const RATE: u64 = 200;
const CLIENTS: u64 = 10;

const SCRIPT: &str = r#"#!/bin/sh
sum=$(cat | sha256sum | cut -d' ' -f1)
printf '%s %s %s\n' "$BACKEND" "$REQUEST_METHOD" "$HTTP_X_REQUEST_ID" >> "$IDS"
printf 'Content-Type: text/plain\n\n%s %s\n' "$HTTP_X_REQUEST_ID" "$sum"
"#;

fn start_backend(dir: &TempDir, k: usize) -> Backend {
    let sock = dir.join(&format!("b{k}.sock"));
    let spec = format!("cgi:{}", dir.join("cgi").display());
    let mut cmd = Command::new(cgate_bin());
    cmd.arg("fastcgi")
        .arg("--listen")
        .arg(format!("unix:{}", sock.display()));
    cmd.args(["--app", &spec, "--pass-env", "IDS", "--pass-env", "BACKEND"]);
    cmd.args(["--max-conns", &ADVERTISED.to_string()]);
    cmd.env("IDS", dir.join("ids.log"))
        .env("BACKEND", format!("b{k}"));
    Backend::spawn(&format!("backend-b{k}"), cmd, &[Ready::Unix(sock)])
}

/// Sockets a process holds (its listener included).
fn sockets_of(pid: Pid) -> usize {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    rd.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy().starts_with("socket:"))
        .count()
}

struct Outcome {
    id: String,
    method: &'static str,
    start: Instant,
    end: Instant,
    status: Option<u16>,
}

/// One client: request `n` is due at `began + offset + n * interval`, so that together the
/// clients offer [`RATE`] requests per second.
fn client(port: u16, t: u64, began: Instant, stop: &AtomicBool, out: &Mutex<Vec<Outcome>>) {
    let interval = Duration::from_micros(1_000_000 * CLIENTS / RATE);
    let offset = interval / CLIENTS as u32 * t as u32;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = began + offset + interval * n as u32;
        if let Some(ahead) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(ahead);
        }
        n += 1;
        let id = format!("c{t}-{n}");
        let post = n % 2 == 0;
        let body = if post {
            data(200 + (n as usize % 5000), t * 1_000_000 + n)
        } else {
            Vec::new()
        };
        let method = if post { "POST" } else { "GET" };
        let start = Instant::now();
        let r = try_request(method, port, "/id", &[("X-Request-Id", &id)], &body);
        let end = Instant::now();
        let status = r.as_ref().ok().map(|r| r.status);
        if let Ok(r) = &r
            && r.status == 200
        {
            assert_eq!(
                r.text(),
                format!("{id} {}\n", sha256_hex(&body)),
                "{method} {id}"
            );
        }
        out.lock().unwrap().push(Outcome {
            id,
            method,
            start,
            end,
            status,
        });
    }
}

#[test]
fn killing_backends_under_load_loses_nothing_safe_and_runs_no_post_twice() {
    let dir = TempDir::new("fwd-failover");
    crate::support::write_script(&dir.subdir("cgi"), "id", SCRIPT);
    let backends: Vec<Arc<Mutex<Backend>>> = (0..BACKENDS)
        .map(|k| Arc::new(Mutex::new(start_backend(&dir, k))))
        .collect();
    let baseline: Vec<usize> = backends
        .iter()
        .map(|b| sockets_of(b.lock().unwrap().pid()))
        .collect();
    let addrs: Vec<String> = (0..BACKENDS)
        .map(|k| format!("unix:{}", dir.join(&format!("b{k}.sock")).display()))
        .collect();
    let sock = dir.join("front.sock");
    let front = super::front(&sock, &format!("fcgi:{};max_conns=16", addrs.join(",")));
    let nginx = super::nginx_to(&sock);
    let port = nginx.port();
    let stop = AtomicBool::new(false);
    let outcomes = Mutex::new(Vec::new());
    let kills = Mutex::new(Vec::<(Instant, Instant)>::new());
    let most_sockets = AtomicUsize::new(0);
    let began = Instant::now();
    std::thread::scope(|s| {
        for t in 0..CLIENTS {
            let (stop, outcomes) = (&stop, &outcomes);
            s.spawn(move || client(port, t, began, stop, outcomes));
        }
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for (k, b) in backends.iter().enumerate() {
                    let pid = b.lock().unwrap().pid();
                    let extra = sockets_of(pid).saturating_sub(baseline[k]);
                    most_sockets.fetch_max(extra, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let mut k = 0;
        while began.elapsed() < RUN_FOR {
            std::thread::sleep(Duration::from_secs(1));
            let mut b = backends[k % BACKENDS].lock().unwrap();
            let killed = Instant::now();
            b.proc.signal(Signal::SIGKILL);
            b.stop();
            *b = start_backend(&dir, k % BACKENDS);
            kills.lock().unwrap().push((killed, Instant::now()));
            k += 1;
        }
        stop.store(true, Ordering::Relaxed);
    });
    let ran_for = began.elapsed();
    let outcomes = outcomes.into_inner().unwrap();
    let kills = kills.into_inner().unwrap();
    let ids = std::fs::read_to_string(dir.join("ids.log")).unwrap();
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for line in ids.lines() {
        let mut w = line.split(' ');
        let (_backend, method, id) = (w.next(), w.next(), w.next().unwrap_or(""));
        if method == Some("POST") {
            *runs.entry(id).or_default() += 1;
        }
    }
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    // A kill lasts from SIGKILL until the backend is reaped and restarted: a request that
    // started just after the signal may still reach the dying process's socket.
    let overlaps_kill = |o: &Outcome| {
        kills
            .iter()
            .any(|(killed, restarted)| o.start <= *restarted && *killed <= o.end)
    };
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != Some(200)).collect();
    // During a kill a request may fail: a 502 before its reply started, a cut reply (no
    // status read) after; never otherwise.
    let excused = |o: &Outcome| overlaps_kill(o) && matches!(o.status, Some(502) | None);
    let unexcused: Vec<_> = failed
        .iter()
        .filter(|o| !excused(o))
        .map(|o| (&o.id, o.method, o.status))
        .collect();
    let posts = outcomes.iter().filter(|o| o.method == "POST").count();
    let failed_posts = failed.iter().filter(|o| o.method == "POST").count();
    eprintln!(
        "failover: {} requests ({posts} POST) in {ran_for:.1?} ({:.0}/s offered {RATE}/s), {} kills, {} failed ({failed_posts} POST; {} of them outside a kill), {} POSTs run twice, most connections at one backend {}",
        outcomes.len(),
        outcomes.len() as f64 / ran_for.as_secs_f64(),
        kills.len(),
        failed.len(),
        unexcused.len(),
        twice.len(),
        most_sockets.load(Ordering::Relaxed)
    );
    assert!(
        kills.len() >= 10 && outcomes.len() > 500,
        "too little load: {} requests",
        outcomes.len()
    );
    assert!(twice.is_empty(), "POSTs run twice: {twice:?}");
    assert!(
        unexcused.is_empty(),
        "failures that no kill explains: {unexcused:?}\n{}",
        nginx.error_log()
    );
    let most = most_sockets.load(Ordering::Relaxed);
    assert!(
        most <= ADVERTISED,
        "a backend held {most} connections, advertised {ADVERTISED}"
    );
    assert!(most >= 1, "the sampler saw no connection at all");
    // A killed backend refuses connections until restarted: it leaves the rotation, and a
    // GET_VALUES probe brings it back (one log line each).
    let log = front.output();
    assert!(
        log.contains("ejected for 1s after 2 consecutive failures"),
        "{log}"
    );
    assert!(
        log.contains("returned to rotation (probe answered)"),
        "{log}"
    );
}
