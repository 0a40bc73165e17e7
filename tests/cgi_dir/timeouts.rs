//! cgi:DIR deadlines and departures: idle means the script's silence, flowing replies run on, cuts are cuts.

use std::io;
use std::time::Duration;

use crate::scripts::*;
use cgate::apps::cgi::CgiOptions;
use cgate::gateway::{Head, MemorySink, Sink};

/// A client that takes each chunk only after `delay` (a reader on a slow link).
struct SlowSink {
    inner: MemorySink,
    delay: Duration,
}

impl Sink for SlowSink {
    fn send_head(&mut self, head: &Head) -> io::Result<()> {
        self.inner.send_head(head)
    }
    fn send_body(&mut self, chunk: &[u8]) -> io::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.send_body(chunk)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }
    fn abort(&mut self) {
        self.inner.abort()
    }
}

#[test]
fn time_blocked_on_a_slow_client_is_not_idle() {
    let s = Scripts::new();
    // writes its whole reply at once: after that it is silent only because the client is slow
    script(
        &s,
        "burst.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\ni=0\nwhile [ $i -lt 4 ]; do head -c 65536 /dev/zero; i=$((i+1)); done\n",
    );
    let app = s.app(CgiOptions {
        idle_timeout: Duration::from_secs(1),
        ..CgiOptions::default()
    });
    let mut sink = SlowSink {
        inner: MemorySink::default(),
        delay: Duration::from_millis(1500),
    };
    let env = environ(&[("PATH_INFO", b"/burst.sh")]);
    let log = run_logged(&app, env, &mut sink);
    assert_eq!(log, Vec::<String>::new());
    assert_eq!(sink.inner.body.len(), 4 * 65536);
    assert!(sink.inner.finished && !sink.inner.aborted);
}

#[test]
fn a_reply_still_flowing_outlives_the_total_timeout_and_a_cut_is_a_cut() {
    let s = Scripts::new();
    script(
        &s,
        "steady.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\ni=0\nwhile [ $i -lt 8 ]; do echo \"tick $i\"; sleep 0.5; i=$((i+1)); done\n",
    );
    let app = s.app(CgiOptions {
        total_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(3),
        ..CgiOptions::default()
    });
    let d = get(&app, "/steady.sh", "");
    let want: String = (0..8).map(|i| format!("tick {i}\n")).collect();
    assert_eq!(d.sink.body, want.as_bytes());
    assert!(d.sink.finished && !d.sink.aborted && d.outcome.complete);
    // silent after its head for longer than the idle timeout: cut, not ended
    let app = s.app(CgiOptions {
        idle_timeout: Duration::from_secs(1),
        ..CgiOptions::default()
    });
    let d = get(&app, "/hung.sh", "partial");
    assert_eq!(
        (d.status_line(), d.sink.body.as_slice()),
        ("200 OK", &b"partial\n"[..])
    );
    assert!(d.sink.aborted && !d.sink.finished && !d.outcome.complete);
    let pid = printed_pid(&d.errors);
    assert_eq!(group_left_after_wait(pid), 0);
}

#[test]
fn a_departed_client_ends_a_silent_script_with_its_children() {
    let s = Scripts::new();
    let gate = make_gate(&s);
    // silent: sends nothing, waits on a child; says on stderr when it is running
    script(
        &s,
        "silent.sh",
        &format!(
            "#!/bin/sh\necho \"pid=$$\" >&2\nread line < '{}'\nsleep 1000\n",
            gate.display()
        ),
    );
    let app = s.app(CgiOptions {
        total_timeout: Duration::from_secs(120),
        idle_timeout: Duration::from_secs(120),
        ..CgiOptions::default()
    });
    let (r, w) = nix::unistd::pipe().unwrap();
    let mut sink = WatchedSink::new(r, false);
    let leaver = std::thread::spawn(move || {
        // once the script runs (it opened the gate), the client leaves
        open_gate(&gate);
        nix::unistd::write(&w, b"x").unwrap();
        w
    });
    let log = run_logged(&app, environ(&[("PATH_INFO", b"/silent.sh")]), &mut sink);
    drop(leaver.join().unwrap());
    let all = log.concat();
    assert!(
        all.contains("request ended early (client gone); stopping it"),
        "{all}"
    );
    // asked only when the descriptor turned readable, never on a timer
    assert_eq!(sink.asked, 1);
    assert_eq!(group_left_after_wait(printed_pid(&all)), 0);
}

#[test]
fn huge_timeouts_do_not_panic() {
    let s = Scripts::new();
    let app = s.app(CgiOptions {
        total_timeout: Duration::from_secs(u64::MAX),
        idle_timeout: Duration::MAX,
        ..CgiOptions::default()
    });
    let d = get(&app, "/hello.sh", "");
    assert_eq!(
        (d.status_line(), d.sink.body.as_slice()),
        ("200 OK", &b"Hello from CGI\n"[..])
    );
}

#[test]
fn a_readable_transport_that_stays_does_not_make_the_pump_spin() {
    let s = Scripts::new();
    script(
        &s,
        "late.sh",
        "#!/bin/sh\nsleep 0.3\nprintf 'Content-Type: text/plain\\n\\nlate\\n'\n",
    );
    let app = s.app(CgiOptions::default());
    let (r, w) = nix::unistd::pipe().unwrap();
    nix::unistd::write(&w, b"pending").unwrap();
    // readable all along, the client staying: the pump must not spin on it
    let mut sink = WatchedSink::new(r, true);
    let started = std::time::Instant::now();
    let log = run_logged(&app, environ(&[("PATH_INFO", b"/late.sh")]), &mut sink);
    let elapsed = started.elapsed();
    assert_eq!(log, Vec::<String>::new());
    assert_eq!(sink.inner.body, b"late\n");
    // each "still here" answer rests the descriptor 5 ms: at most one question per rest
    let most = elapsed.as_millis() / 5 + 2;
    assert!(
        sink.asked as u128 <= most,
        "asked {} times in {elapsed:?}",
        sink.asked
    );
    drop(w);
}
