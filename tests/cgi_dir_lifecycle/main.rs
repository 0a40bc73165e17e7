//! cgi:DIR scripts and cgate's own life: the checked file is the one run, and no script outlives cgate.
//!
//! `terminate_all` signals every script of the process, so this file's tests run one at a time
//! (a lock), apart from the other cgi:DIR tests (their own binary).

#[allow(dead_code, unused_imports)] // the cgi:DIR helpers are shared with tests/cgi_dir
#[path = "../cgi_dir/scripts.rs"]
mod scripts;
#[path = "../support/mod.rs"]
mod support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cgate::apps::cgi::{CgiOptions, terminate_all};
use scripts::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn script(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

fn alive(pid: i32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

/// Waits (bounded) until `pid` is gone; answers whether it is.
fn gone_after_wait(pid: i32) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    !alive(pid)
}

#[test]
fn swapping_the_script_for_a_link_never_runs_the_outside_file() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scripts::new();
    let outside = Scripts::new();
    script(
        &outside.0,
        "evil.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nOUTSIDE\\n'\n",
    );
    let inside = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\ninside\\n'\n";
    script(&s.0, "real.sh", inside);
    script(&s.0, "x.sh", inside);
    // the attacker (nobody) can only plant links, which the owner rule refuses
    symlink(outside.0.join("evil.sh"), s.0.join("link.sh")).unwrap();
    std::os::unix::fs::lchown(s.0.join("link.sh"), Some(65534), None).unwrap();
    let stop = AtomicBool::new(false);
    let (mut inside_runs, mut outside_runs, mut refused) = (0, 0, 0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // x.sh alternates between a regular file and the planted link, atomically
            let (file, link, x) = (s.0.join("file.sh"), s.0.join("link2.sh"), s.0.join("x.sh"));
            while !stop.load(Ordering::Relaxed) {
                fs::copy(s.0.join("real.sh"), &file).unwrap();
                fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
                fs::rename(&file, &x).unwrap();
                // paced so that some requests meet a stable file, others a swap mid-check
                std::thread::sleep(Duration::from_micros(300));
                let _ = fs::remove_file(&link);
                symlink(outside.0.join("evil.sh"), &link).unwrap();
                std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
                fs::rename(&link, &x).unwrap();
                std::thread::sleep(Duration::from_micros(300));
            }
        });
        let app = s.app(CgiOptions::default());
        for _ in 0..3000 {
            let d = get(&app, "/x.sh", "");
            match (d.status_line(), d.sink.body.as_slice()) {
                ("200 OK", b"inside\n") => inside_runs += 1,
                ("200 OK", b"OUTSIDE\n") => outside_runs += 1,
                ("403 Forbidden", _) => refused += 1,
                other => panic!("{other:?}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    eprintln!("swap race: inside {inside_runs}, outside {outside_runs}, refused {refused}");
    assert_eq!(outside_runs, 0, "inside {inside_runs}, refused {refused}");
    assert!(
        inside_runs > 0 && refused > 0,
        "inside {inside_runs}, refused {refused}"
    );
}

#[test]
fn terminate_all_stops_every_running_script_and_its_children() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scripts::new();
    let app = s.app(CgiOptions::default());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for variant in ["", "ignore-term", "partial"] {
            let (app, tx) = (&app, tx.clone());
            scope.spawn(move || tx.send(get(app, "/hung.sh", variant)).unwrap());
        }
        // wait until the three scripts run
        let until = Instant::now() + Duration::from_secs(20);
        while app.running() < 3 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(app.running(), 3);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            // TERM needs the script to have set its trap: retry until all three are listed
            if terminate_all(Duration::from_millis(500)) == 0 {
                break;
            }
        }
    });
    drop(tx);
    let done: Vec<_> = rx.iter().collect();
    assert_eq!(done.len(), 3);
    for d in &done {
        assert!(d.errors.contains("(pid "), "{}", d.errors);
        assert_eq!(group_left_after_wait(printed_pid(&d.errors)), 0);
    }
    assert_eq!(app.running(), 0);
    assert_eq!(terminate_all(Duration::from_millis(10)), 0);
}

#[test]
fn scripts_and_their_children_die_with_a_killed_cgate() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scripts::new();
    let app = format!("cgi:{}", s.0.display());
    let mut cgate = Command::new(env!("CARGO_BIN_EXE_cgate"))
        .args(["request", "--app", &app, "/hung.sh"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(cgate.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let pid: i32 = line
        .trim_end()
        .rsplit_once("pid=")
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(alive(pid));
    // the script prints its pid before it starts its sleep: wait for the two of them
    assert!(
        eventually(Duration::from_secs(20), || live_in_group(pid) == 2),
        "the script and its sleep: {} alive",
        live_in_group(pid)
    );
    cgate.kill().unwrap();
    cgate.wait().unwrap();
    assert!(gone_after_wait(pid), "script {pid} outlived cgate");
    assert_eq!(group_left_after_wait(pid), 0, "its children outlived cgate");
}
