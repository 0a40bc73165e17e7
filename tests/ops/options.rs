//! Every option value is range-checked at start: a clear message and exit 2, nothing silently capped.

use crate::harness::run_cgate;

fn refused(args: &[&str], says: &str) {
    let mut all = vec!["fastcgi", "--listen", "unix:/nonexistent/dir/never.sock"];
    all.extend_from_slice(args);
    let (code, err) = run_cgate(&all);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err:?} lacks {says:?}");
}

#[test]
fn timeouts_out_of_range_are_refused() {
    refused(
        &["--cgi-timeout", "18446744073709551615"],
        "is not in 1..=86400",
    );
    refused(&["--cgi-idle-timeout", "0"], "is not in 1..=86400");
    refused(
        &["--shutdown-timeout", "18446744073709551615"],
        "is not in 0..=86400",
    );
    refused(&["--request-timeout", "66"], "66 is not in 1..=65");
    refused(&["--request-timeout", "0"], "is not in 1..=65");
    refused(&["--idle-timeout", "86401"], "is not in 1..=86400");
    refused(&["--slow-log-ms", "0"], "is not in 1..=3600000");
}

#[test]
fn counts_out_of_range_are_refused() {
    refused(&["--workers", "0"], "is not in 1..=1024");
    refused(&["--max-conns", "0"], "is not in 1..=1048576");
    refused(&["--max-params-bytes", "10"], "is not in 1024..=67108864");
    refused(&["--cgi-max-scripts", "0"], "is not in 1..=65536");
    refused(
        &["--max-body", "18446744073709551615"],
        "is not in 0..=9223372036854775807",
    );
}

#[test]
fn socket_modes_writable_by_everyone_or_not_octal_are_refused() {
    refused(&["--socket-mode", "666"], "lets every local user connect");
    refused(&["--socket-mode", "0777"], "lets every local user connect");
    refused(&["--socket-mode", "438"], "not an octal mode");
    refused(&["--socket-mode", "1660"], "beyond rwxrwxrwx");
    refused(
        &["--socket-mode", "060"],
        "must give its owner read and write",
    );
}

#[test]
fn other_values_are_refused_with_their_reason() {
    refused(&["--status-path", "cgate-status"], "must start with /");
    refused(&["--access-log-format", "xml"], "expected combined or json");
    refused(&["--request-id-param", "X-Id"], "letters, digits and _");
    refused(&["--user", "no-such-user-here"], "no such user");
    let (code, err) = run_cgate(&["fastcgi"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("fastcgi needs --listen ADDR"), "{err}");
}
