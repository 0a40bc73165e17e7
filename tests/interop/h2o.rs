//! h2o 2.2: `fastcgi.connect` to the two cgate servers' sockets (conf/h2o/cgate-connect.conf), and `fastcgi.spawn`, where h2o starts cgate with the listening socket on fd 0 (cgate-spawn.conf).
//!
//! Notes for the table: h2o sends SCRIPT_NAME "" and the whole path as PATH_INFO.

use crate::cases::{Front, report, run_http};
use crate::frontends::{Stage, h2o};

fn run(name: &'static str, spawn: bool) {
    let stage = if spawn {
        Stage::new(name)
    } else {
        Stage::with_sockets(name)
    };
    let server = h2o(&stage, spawn);
    let front = Front {
        name,
        port: server.port(),
        base: "",
        own_headers: &[],
        script_name: Some(""),
        keep_alive: Ok(()),
        streams: Ok(()),
    };
    let rows = run_http(&front, &stage.gate);
    report(name, &rows);
}

#[test]
fn h2o_connect() {
    run("h2o fastcgi.connect", false);
}

#[test]
fn h2o_spawn() {
    run("h2o fastcgi.spawn", true);
}
