//! flup's FastCGI client (`flup.client.fcgi_app.FCGIApp`) behind Python's wsgiref HTTP server (tests/interop/flup_front.py), to the two cgate servers.
//!
//! Notes for the table: wsgiref answers HTTP/1.0 and closes every connection, so the
//! unread-body case sends its GET on a new connection; flup's client collects the whole
//! FastCGI reply before it answers, so nothing can stream through it.

use crate::cases::{Front, report, run_http};
use crate::frontends::{Stage, flup};

#[test]
fn flup_fcgi_app() {
    let stage = Stage::with_sockets("flup");
    let server = flup(&stage);
    let front = Front {
        name: "flup",
        port: server.port(),
        base: "",
        own_headers: &[],
        script_name: Some(""),
        keep_alive: Err("wsgiref closes every connection (HTTP/1.0)"),
        streams: Err("flup's client buffers the whole reply"),
    };
    let rows = run_http(&front, &stage.gate);
    report(front.name, &rows);
}
