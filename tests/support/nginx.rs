//! `Nginx` guard: a real nginx on 127.0.0.1 with its own config, logs and temp paths in a temp dir.

use super::procs::{Proc, Started, server_command, start_on_free_port};
use super::{TempDir, find_program, is_root, read_log};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};

/// A running nginx master (with 2 workers), stopped by PID on drop.
pub struct Nginx(Started);

super::procs::started_guard!(Nginx);

fn main_conf(dir: &Path, port: u16, http: &str, server: &str) -> String {
    let d = dir.display();
    let user = if is_root() { "user root;\n" } else { "" };
    format!(
        "daemon off;
master_process on;
worker_processes 2;
{user}pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    proxy_temp_path {d}/proxy_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    types {{
        text/html html;
        text/plain txt;
        application/json json;
    }}
    default_type application/octet-stream;
{http}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {d}/html;
{server}
    }}
}}
"
    )
}

impl Nginx {
    /// Starts nginx whose single `server` block contains `server` (server-level directives).
    pub fn start(server: &str) -> Nginx {
        Nginx::start_with("", server)
    }

    /// Starts nginx with `http` inserted at http level (e.g. an `upstream`) and `server` in the
    /// server block. Waits until the pid file exists and the port accepts. Panics, with the
    /// error log, when nginx is missing or fails to start.
    pub fn start_with(http: &str, server: &str) -> Nginx {
        let bin = find_program("nginx");
        let started = start_on_free_port("nginx", "nginx.pid", |dir, port| {
            dir.subdir("html");
            let conf = dir.join("nginx.conf");
            std::fs::write(&conf, main_conf(dir.path(), port, http, server))
                .expect("write nginx.conf");
            let mut cmd = server_command(&bin);
            cmd.arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.join("error.log"));
            (cmd, conf)
        });
        Nginx(started)
    }

    /// The document root (`root` of the server block).
    pub fn docroot(&self) -> PathBuf {
        self.0.dir.join("html")
    }

    /// The access log so far.
    pub fn access_log(&self) -> String {
        read_log(&self.0.dir.join("access.log"))
    }
}
