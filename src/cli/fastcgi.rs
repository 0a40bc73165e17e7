//! The `cgate fastcgi` flags (clap) and their mapping onto [`ServerOptions`]; every value range-checked here.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{MAX_SECS, count};
use crate::fastcgi::server::{
    MAX_CONNS, MAX_PARAMS_BYTES, MAX_REQUEST_TIMEOUT, MAX_WORKERS, ServerOptions,
};
use crate::gateway::input::DEFAULT_MAX_BODY;
use crate::net::ListenAddr;
use crate::net::listener::UnixOptions;
use crate::ops::{AccessFormat, OpsOptions};

/// `cgate fastcgi` flags.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Where to listen: unix:/path, /path, 127.0.0.1:9000, fd:0 or systemd.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<ListenAddr>,
    /// Event-loop threads that run requests (default: half the CPU cores, at least one; the
    /// web server in front needs the rest). Requests that block get extra threads
    /// automatically, up to --max-conns.
    #[arg(long, value_name = "N", value_parser = count(1, MAX_WORKERS))]
    pub workers: Option<usize>,
    /// Most connections open at once; more are closed on arrival (default 1024).
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = count(1, MAX_CONNS))]
    pub max_conns: usize,
    /// Permission bits of a created Unix socket, in octal (default 660; 0660 and 0o660 are
    /// accepted too). Modes writable by everyone are refused.
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
    pub socket_mode: Option<u32>,
    /// Owner (user name or uid) of a created Unix socket.
    #[arg(long, value_name = "USER")]
    pub socket_owner: Option<String>,
    /// Group (name or gid) of a created Unix socket.
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT or a reload (default
    /// 30, at most 86400).
    #[arg(long, value_name = "SECS", default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(0..=MAX_SECS))]
    pub shutdown_timeout: u64,
    /// Seconds an idle kept-alive connection waits for its next request (default 300, at
    /// most 86400).
    #[arg(long, value_name = "SECS", default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub idle_timeout: u64,
    /// Seconds a request's head may take to arrive in total, and the longest wait for each
    /// body read and each write (default 30, at most 65).
    #[arg(long, value_name = "SECS", default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=MAX_REQUEST_TIMEOUT))]
    pub request_timeout: u64,
    /// Most PARAMS bytes of one request (default 1048576, 1024 to 67108864).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = count(1024, MAX_PARAMS_BYTES))]
    pub max_params_bytes: usize,
    /// Most body bytes when the request has no CONTENT_LENGTH (default 1 GiB).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY,
        value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
    pub max_body: u64,
    /// Most body bytes held ahead of an app that answers before reading its body, in memory
    /// then in an unnamed temporary file (default 1 GiB); past it the connection is closed.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY,
        value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
    pub max_spool: u64,
    /// Access log: a file (appended to, reopened on SIGUSR1) or - for standard output.
    #[arg(long, value_name = "PATH|-")]
    pub access_log: Option<PathBuf>,
    /// Access log format: combined (default) or json.
    #[arg(long, value_name = "FORMAT", default_value = "combined", value_parser = parse_format)]
    pub access_log_format: AccessFormat,
    /// The param carrying the web server's request id (nginx: fastcgi_param REQUEST_ID
    /// $request_id); requests without one get a generated id. Always passed on as REQUEST_ID.
    #[arg(long, value_name = "NAME", default_value = crate::ops::REQUEST_ID)]
    pub request_id_param: String,
    /// Answer this path with the server's status (JSON; OpenMetrics with ?openmetrics), for
    /// loopback REMOTE_ADDRs only unless --status-any-addr.
    #[arg(long, value_name = "PATH")]
    pub status_path: Option<String>,
    /// Answer --status-path whatever the REMOTE_ADDR.
    #[arg(long)]
    pub status_any_addr: bool,
    /// Log a line for requests running longer than this many milliseconds (and another at
    /// ten times it).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub slow_log_ms: Option<u64>,
    /// Switch to this user (name or uid) once the socket is set up; supplementary groups are
    /// dropped.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Switch to this group (default: the --user's group).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Allow running cgi:DIR scripts as root (refused by default).
    #[arg(long)]
    pub allow_root: bool,
    /// Write the pid here once serving (a reload's new process writes its own); removed on
    /// a clean stop. `cgate reload --pid-file PATH` reloads through it. Written after
    /// --user takes effect: the directory must be writable by that user.
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let mode = u32::from_str_radix(digits, 8)
        .ok()
        .filter(|_| !digits.is_empty() && digits.len() <= 4)
        .ok_or_else(|| format!("{s:?} is not an octal mode such as 660"))?;
    crate::ops::check_socket_mode(mode)?;
    Ok(mode)
}

fn parse_format(s: &str) -> Result<AccessFormat, String> {
    match s {
        "combined" => Ok(AccessFormat::Combined),
        "json" => Ok(AccessFormat::Json),
        _ => Err(format!("{s:?}: expected combined or json")),
    }
}

impl ServerArgs {
    /// The server options these flags give; `apps` and `runs_scripts` describe the app.
    pub fn options(&self, apps: &[String], runs_scripts: bool) -> ServerOptions {
        ServerOptions {
            listen: self.listen.clone(),
            workers: self.workers,
            max_conns: self.max_conns,
            unix: UnixOptions {
                mode: self.socket_mode,
                owner: self.socket_owner.clone(),
                group: self.socket_group.clone(),
            },
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            request_timeout: Duration::from_secs(self.request_timeout),
            max_params_bytes: self.max_params_bytes,
            max_body: self.max_body,
            max_spool: self.max_spool,
            ops: OpsOptions {
                access_log: self.access_log.clone(),
                access_format: self.access_log_format,
                request_id_param: self.request_id_param.clone(),
                status_path: self.status_path.clone(),
                status_any_addr: self.status_any_addr,
                slow_log: self.slow_log_ms.map(Duration::from_millis),
                user: self.user.clone(),
                group: self.group.clone(),
                allow_root: self.allow_root,
                runs_scripts,
                pid_file: self.pid_file.clone(),
                apps: apps.to_vec(),
                app_limits: String::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("660"), Ok(0o660));
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("0o600"), Ok(0o600));
        assert!(parse_mode("666").unwrap_err().contains("every local user"));
        assert!(parse_mode("438").is_err());
        assert!(parse_mode("99").is_err());
        assert!(parse_mode("").is_err());
    }

    #[test]
    fn defaults_match_the_library() {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            a: ServerArgs,
        }
        let a = <T as clap::Parser>::parse_from(["t"]).a;
        let o = a.options(&[], false);
        let d = ServerOptions::default();
        assert_eq!(o.max_conns, d.max_conns);
        assert_eq!(o.shutdown_timeout, d.shutdown_timeout);
        assert_eq!(o.idle_timeout, d.idle_timeout);
        assert_eq!(o.request_timeout, d.request_timeout);
        assert_eq!(o.max_params_bytes, d.max_params_bytes);
        assert_eq!(o.max_body, d.max_body);
        assert_eq!(o.max_spool, d.max_spool);
        assert_eq!(o.ops.request_id_param, d.ops.request_id_param);
        assert!(o.check().is_ok());
    }
}
