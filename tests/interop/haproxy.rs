//! HAProxy 2.6 `fcgi-app` with `option keep-conn` and `option get-values` (conf/haproxy/cgate-fcgi-app.cfg) in front of the two cgate servers.
//!
//! Notes for the table: with `path-info ^()(/.*)$` the SCRIPT_NAME capture is empty and
//! HAProxy sends no SCRIPT_NAME at all; PATH_INFO is the whole path. With `option
//! abortonclose` HAProxy passes a client's leaving on to cgate: the extra row checks that
//! a silent `cgi:DIR` script is then ended (abort.rs).

use crate::abort::client_leaves;
use crate::cases::{Front, report, run_http, verdict};
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
    let mut rows = run_http(&front, &stage.gate);
    let abort = client_leaves(front.port, &stage.root);
    rows.push(("client leaves, silent script", verdict(abort)));
    report(front.name, &rows);
}
