//! The shipped systemd unit, run as systemd would: socket activation, Type=notify, ExecReload, stop.

use std::os::unix::net::UnixDatagram;
use std::process::Command;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::client::{Addr, HELLO, get, simple_reply};
use crate::harness::{alive, wait_for};
use crate::support::{Backend, Ready, TIMEOUT, TempDir, find_program, manifest_dir};

/// The `[Service]` settings of conf/systemd/cgate.service, in order.
fn service() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(manifest_dir().join("conf/systemd/cgate.service")).unwrap();
    text.lines()
        .skip_while(|l| l.trim() != "[Service]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn setting(all: &[(String, String)], key: &str) -> String {
    all.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("cgate.service has no {key}="))
}

#[test]
fn the_unit_declares_notify_reload_and_hardening() {
    let s = service();
    assert_eq!(setting(&s, "Type"), "notify");
    assert_eq!(
        setting(&s, "NotifyAccess"),
        "all",
        "the reloaded process reports itself"
    );
    assert_eq!(setting(&s, "ExecReload"), "/bin/kill -HUP $MAINPID");
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectSystem", "strict"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ] {
        assert_eq!(setting(&s, key), value, "{key}");
    }
}

/// ExecStart of the unit, with the installed binary replaced by the one under test.
fn exec_start() -> Vec<String> {
    let line = setting(&service(), "ExecStart");
    let mut words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    assert_eq!(words[0], "/usr/local/bin/cgate");
    words[0] = crate::support::cgate_bin().to_str().unwrap().to_owned();
    assert!(
        words.windows(2).any(|w| w == ["--listen", "systemd"]),
        "{words:?}"
    );
    words
}

#[test]
fn socket_activated_unit_notifies_reloads_and_stops() {
    let dir = TempDir::new("ops-systemd");
    let sock = dir.join("cgate.sock");
    let notify = dir.join("notify.sock");
    let stub = UnixDatagram::bind(&notify).unwrap();
    stub.set_read_timeout(Some(TIMEOUT)).unwrap();
    let recv = || {
        let mut buf = [0u8; 512];
        let n = stub.recv(&mut buf).expect("a notification");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };
    let mut cmd = Command::new(find_program("systemd-socket-activate"));
    cmd.arg("-l")
        .arg(&sock)
        .arg("-E")
        .arg(format!("NOTIFY_SOCKET={}", notify.display()))
        .args(exec_start());
    let mut backend = Backend::spawn(
        "cgate under systemd-socket-activate",
        cmd,
        &[Ready::Unix(sock.clone())],
    );
    let main = backend.pid().as_raw();
    assert_eq!(recv(), format!("READY=1\nMAINPID={main}"));
    let addr = Addr::Unix(sock.clone());
    let hello = |what: &str| {
        let r = addr.connect().roundtrip(1, &get(1, 0, "/"));
        assert_eq!(
            r.raw,
            simple_reply(1, HELLO),
            "{what}: {}",
            backend.output()
        );
    };
    hello("socket-activated");
    // ExecReload, with $MAINPID as systemd fills it in.
    let reload = setting(&service(), "ExecReload").replace("$MAINPID", &main.to_string());
    let mut words = reload.split_whitespace();
    let ok = Command::new(words.next().unwrap())
        .args(words)
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(recv().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    let mut two = [recv(), recv()];
    two.sort();
    let new: i32 = two[0]
        .strip_prefix("MAINPID=")
        .and_then(|s| s.strip_suffix("\nREADY=1"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(two[1], two[0]);
    assert_ne!(new, main);
    wait_for("the old main process to exit", || backend.proc.has_exited());
    hello("after the reload");
    kill(Pid::from_raw(new), Signal::SIGTERM).unwrap();
    assert_eq!(recv(), "STOPPING=1");
    wait_for("the new main process to exit", || !alive(new));
    assert!(
        sock.exists(),
        "the socket belongs to the service manager and stays"
    );
    assert_eq!(
        backend.stop().unwrap().code(),
        Some(0),
        "{}",
        backend.output()
    );
}
