//! lighttpd 1.4 `fastcgi.server`: to the two cgate servers' sockets (conf/lighttpd/cgate-socket.conf), and with `bin-path`, where lighttpd starts cgate with the listening socket on fd 0 (cgate-spawn.conf).
//!
//! Notes for the table: with "fix-root-scriptname" lighttpd sends SCRIPT_NAME "" and the
//! whole path as PATH_INFO; it adds `Accept-Ranges` to replies.

use crate::cases::{Front, report, run_http};
use crate::frontends::{Stage, lighttpd};

fn run(name: &'static str, spawn: bool) {
    let stage = if spawn {
        Stage::new(name)
    } else {
        Stage::with_sockets(name)
    };
    let server = lighttpd(&stage, spawn);
    let front = Front {
        name,
        port: server.port(),
        base: "",
        own_headers: &["accept-ranges"],
        script_name: Some(""),
        keep_alive: Ok(()),
        streams: Ok(()),
    };
    let rows = run_http(&front, &stage.gate);
    report(name, &rows);
}

#[test]
fn lighttpd_socket() {
    run("lighttpd socket", false);
}

#[test]
fn lighttpd_bin_path() {
    run("lighttpd bin-path", true);
}
