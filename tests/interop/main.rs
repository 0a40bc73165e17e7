//! Interop matrix: cgate behind every FastCGI front-end people run, each started by the test with the shipped config from conf/, stopped by PID.
//!
//! One test per front-end (and per way it reaches cgate), each running the cases of
//! `cases.rs` and printing its table (`--nocapture` shows it). Where a front-end cannot do
//! a case, its file says why and the table shows `n/a`.
//!
//! | test | front-end | how it reaches cgate |
//! |---|---|---|
//! | `caddy` | Caddy 2.6 `reverse_proxy` + `transport fastcgi` | Unix sockets |
//! | `lighttpd_socket` | lighttpd `fastcgi.server` | Unix sockets |
//! | `lighttpd_bin_path` | lighttpd `fastcgi.server` `bin-path` | spawns cgate, socket on fd 0 |
//! | `h2o_connect` | h2o 2.2 `fastcgi.connect` | Unix sockets |
//! | `h2o_spawn` | h2o 2.2 `fastcgi.spawn` | spawns cgate, socket on fd 0 |
//! | `haproxy` | HAProxy 2.6 `fcgi-app`, `option keep-conn`, `option get-values` | Unix sockets |
//! | `apache_fcgid` | Apache mod_fcgid | spawns cgate, socket on fd 0 |
//! | `cgi_fcgi` | `cgi-fcgi -bind -connect` (no HTTP side) | Unix socket |
//! | `flup` | flup's `fcgi_app` client behind Python's wsgiref | Unix sockets |

#[path = "../support/mod.rs"]
mod support;

#[path = "../support/frontends.rs"]
mod frontends;

#[allow(dead_code)]
#[path = "../cgi_diff/run.rs"]
mod run;

mod abort;
mod apache_fcgid;
mod caddy;
mod cases;
mod cgi_fcgi;
mod flup;
mod h2o;
mod haproxy;
mod lighttpd;
