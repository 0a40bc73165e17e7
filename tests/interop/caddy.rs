//! Caddy 2.6 (`reverse_proxy` with `transport fastcgi`, conf/caddy/Caddyfile) in front of the two cgate servers.
//!
//! Notes for the table: Caddy sends SCRIPT_NAME "" and the whole path as PATH_INFO; it
//! forwards the responder's `Status:` line to the client as a header (it does so for any
//! FastCGI app), so `status` counts as one of its own headers.

use crate::cases::{Front, report, run_http};
use crate::frontends::{Stage, caddy};

#[test]
fn caddy_transport_fastcgi() {
    let stage = Stage::with_sockets("caddy");
    let server = caddy(&stage);
    let front = Front {
        name: "caddy",
        port: server.port(),
        base: "",
        own_headers: &["status"],
        script_name: Some(""),
        keep_alive: Ok(()),
        streams: Ok(()),
    };
    let rows = run_http(&front, &stage.gate);
    report(front.name, &rows);
}
