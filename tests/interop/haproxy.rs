//! HAProxy 2.6 `fcgi-app` with `option keep-conn` and `option get-values` (conf/haproxy/cgate-fcgi-app.cfg) in front of the two cgate servers.
//!
//! Notes for the table: with `path-info ^()(/.*)$` the SCRIPT_NAME capture is empty and
//! HAProxy sends no SCRIPT_NAME at all; PATH_INFO is the whole path.

use crate::cases::{Front, report, run_http};
use crate::frontends::{Stage, haproxy};

#[test]
fn haproxy_fcgi_app() {
    let stage = Stage::with_sockets("haproxy");
    let server = haproxy(&stage);
    let front = Front {
        name: "haproxy",
        port: server.port(),
        base: "",
        own_headers: &[],
        script_name: None,
        keep_alive: Ok(()),
        streams: Ok(()),
    };
    let rows = run_http(&front, &stage.gate);
    report(front.name, &rows, || {
        format!("{}\n{}", server.proc.logs(), stage.backend_logs())
    });
}
