//! Privilege drop: `--user nobody` after binding (checked in /proc/PID/status), scripts run as that user, cgi:DIR refused as root.

use crate::harness::{Ops, Scripts, run_cgate};
use crate::support::{TempDir, is_root};

/// The values of a `/proc/PID/status` field.
fn field(pid: i32, name: &str) -> Vec<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn nobody() -> (String, String) {
    let out = std::process::Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .unwrap();
    let uid = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = std::process::Command::new("id")
        .args(["-g", "nobody"])
        .output()
        .unwrap();
    (
        uid,
        String::from_utf8(out.stdout).unwrap().trim().to_owned(),
    )
}

#[test]
fn user_nobody_drops_root_and_its_groups_and_scripts_run_as_nobody() {
    assert!(
        is_root(),
        "this test needs root (it checks the switch away from it)"
    );
    let scripts = Scripts::new();
    let spec = scripts.spec();
    let ops = Ops::start(&["--app", &spec, "--user", "nobody"]);
    let pid = ops.server.pid();
    let (uid, gid) = nobody();
    assert_eq!(field(pid, "Uid"), vec![uid.clone(); 4]);
    assert_eq!(field(pid, "Gid"), vec![gid.clone(); 4]);
    assert_eq!(
        field(pid, "Groups"),
        Vec::<String>::new(),
        "supplementary groups dropped"
    );
    let r = ops.get("/whoami.sh", &[]);
    assert_eq!(r.status(), 200, "{}", ops.output());
    assert_eq!(r.body(), format!("{uid} {gid}\n").as_bytes());
    assert!(ops.output().contains(" user=nobody"), "{}", ops.output());
}

#[test]
fn cgi_dir_as_root_is_refused_unless_allowed() {
    assert!(is_root(), "this test needs root");
    let scripts = Scripts::new();
    let dir = TempDir::new("ops-root");
    let sock = dir.join("s.sock");
    let listen = format!("unix:{}", sock.display());
    let (code, err) = run_cgate(&["fastcgi", "--listen", &listen, "--app", &scripts.spec()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err,
        "cgate: refusing to run CGI scripts as root: give --user (e.g. www-data), or --allow-root\n"
    );
    assert!(!sock.exists(), "the socket file is removed");
    let ops = Ops::start(&["--app", &scripts.spec(), "--allow-root"]);
    assert_eq!(ops.get("/whoami.sh", &[]).body(), b"0 0\n");
}
