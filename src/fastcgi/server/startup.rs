//! The FastCGI server's start-up line: version, pid, listen address, apps, workers and limits.

use super::ServerOptions;
use super::pool::PoolConfig;
use crate::net::listener::Listener;

/// The start-up line: version, pid, listen address, apps, workers and limits.
pub(super) fn startup_line(listener: &Listener, opts: &ServerOptions, cfg: &PoolConfig) -> String {
    let listen = describe_listener(listener);
    let apps = if opts.ops.apps.is_empty() {
        "custom".to_owned()
    } else {
        opts.ops.apps.join(",")
    };
    let mut line = format!(
        "start version={} pid={} listen={listen} app={apps} workers={} max_conns={} \
         request_timeout={}s idle_timeout={}s shutdown_timeout={}s max_params_bytes={} \
         max_body={} max_spool={}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        cfg.workers,
        cfg.max_conns,
        opts.request_timeout.as_secs(),
        opts.idle_timeout.as_secs(),
        opts.shutdown_timeout.as_secs(),
        opts.max_params_bytes,
        opts.max_body,
        opts.max_spool,
    );
    let o = &opts.ops;
    if !o.app_limits.is_empty() {
        line.push(' ');
        line.push_str(&o.app_limits);
    }
    if let Some(p) = &o.access_log {
        line += &format!(" access_log={}", p.display());
    }
    if let Some(p) = &o.status_path {
        line += &format!(" status_path={p}");
    }
    if let Some(d) = o.slow_log {
        line += &format!(" slow_log_ms={}", d.as_millis());
    }
    if let Some(u) = &o.user {
        line += &format!(" user={u}");
    }
    if let Some(p) = &o.pid_file {
        line += &format!(" pid_file={}", p.display());
    }
    line
}

fn describe_listener(l: &Listener) -> String {
    match l {
        Listener::Tcp(t) => t
            .local_addr()
            .map_or_else(|_| "tcp:?".into(), |a| a.to_string()),
        Listener::Unix(u, path) => match (path, u.local_addr()) {
            (Some(p), _) => format!("unix:{}", p.display()),
            (None, Ok(a)) => a.as_pathname().map_or_else(
                || "unix:(inherited)".into(),
                |p| format!("unix:{}", p.display()),
            ),
            (None, Err(_)) => "unix:(inherited)".into(),
        },
    }
}
