//! Apache mod_fcgid (conf/apache/cgate-fcgid.conf): Apache starts cgate itself with the listening socket on fd 0, one request at a time per process.
//!
//! Notes for the table: the app is `Alias /app` to the cgate binary, so SCRIPT_NAME is
//! `/app` and PATH_INFO the rest of the path.

use crate::cases::{Front, report, run_http};
use crate::frontends::{Stage, apache_fcgid};

#[test]
fn apache_mod_fcgid() {
    let stage = Stage::new("fcgid");
    let server = apache_fcgid(&stage);
    let front = Front {
        name: "apache mod_fcgid",
        port: server.port(),
        base: "/app",
        own_headers: &[],
        script_name: Some("/app"),
        keep_alive: Ok(()),
        streams: Ok(()),
    };
    let rows = run_http(&front, &stage.gate);
    report(front.name, &rows);
}
