//! Operations: event lines, access log, request ids, status and metrics, slow log, reload, privileges.
//!
//! Everything here is process-wide (signals and stderr are): one server per process. The
//! request-level parts ([`observe`]) wrap the app, so the transports need no hooks; the pool
//! reports connection counts through [`metrics`].

pub mod access;
mod accounting;
pub mod arriving;
pub mod clock;
pub mod gauges;
pub mod inflight;
pub mod metrics;
pub mod notify;
pub mod notrun;
pub mod observe;
mod observe_wait;
pub mod pidfile;
pub mod privs;
pub mod reload;
pub mod signals;
pub mod slow;
pub mod status;
pub mod waiting;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::fastcgi::server::pool::PoolConfig;
use crate::gateway::App;

pub use notify::notify;

/// Access log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessFormat {
    /// Apache's combined format followed by request id, duration in ms and outcome.
    #[default]
    Combined,
    /// One JSON object per line.
    Json,
}

/// Operations options of the FastCGI server.
#[derive(Debug, Clone)]
pub struct OpsOptions {
    /// Access log file; `-` is standard output; `None`: no access log (the default).
    pub access_log: Option<PathBuf>,
    /// Access log format (default combined).
    pub access_format: AccessFormat,
    /// The param that carries the web server's request id (default `REQUEST_ID`); when a
    /// request has none, cgate makes one.
    pub request_id_param: String,
    /// Path answered with the status (JSON; OpenMetrics with `?openmetrics`); `None`: off.
    pub status_path: Option<String>,
    /// Answer the status path for any REMOTE_ADDR, not only loopback ones.
    pub status_any_addr: bool,
    /// Requests running longer than this get a slow-log line (another at 10 times it).
    pub slow_log: Option<Duration>,
    /// Switch to this user after binding.
    pub user: Option<String>,
    /// Switch to this group after binding (default: the user's group).
    pub group: Option<String>,
    /// Run scripts (cgi:DIR) as root.
    pub allow_root: bool,
    /// Some app runs scripts (cgi:DIR); set by whoever builds the app.
    pub runs_scripts: bool,
    /// Pid file: written once the process serves (by a reload successor too), removed on a
    /// clean stop; `cgate reload --pid-file` reads it. `None`: none (the default).
    pub pid_file: Option<PathBuf>,
    /// The app SPECs served, for the start-up line.
    pub apps: Vec<String>,
    /// The apps' own limits as `name=value` words, for the start-up line.
    pub app_limits: String,
}

/// The param name requests carry their id in, in the environ apps and scripts see.
pub const REQUEST_ID: &str = "REQUEST_ID";
/// Longest request id taken from the web server; longer ones are replaced.
pub const MAX_REQUEST_ID: usize = 64;

static ID_PARAM: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The param requests carry the web server's id in (`--request-id-param`).
pub fn request_id_param() -> &'static str {
    ID_PARAM.get().map_or(REQUEST_ID, String::as_str)
}

impl Default for OpsOptions {
    fn default() -> Self {
        OpsOptions {
            access_log: None,
            access_format: AccessFormat::Combined,
            request_id_param: REQUEST_ID.to_owned(),
            status_path: None,
            status_any_addr: false,
            slow_log: None,
            user: None,
            group: None,
            allow_root: false,
            runs_scripts: false,
            pid_file: None,
            apps: Vec::new(),
            app_limits: String::new(),
        }
    }
}

impl OpsOptions {
    /// Checks the values; the message names what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if let Some(p) = &self.status_path {
            if !p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b == b'?' || b >= 0x7f) {
                return Err(format!(
                    "status path {p:?} must start with / and hold no spaces, controls or ?"
                ));
            }
        }
        if let Some(d) = self.slow_log {
            let ms = d.as_millis();
            if !(1..=3_600_000).contains(&ms) {
                return Err(format!("slow log {ms} ms is out of range: 1 to 3600000 ms"));
            }
        }
        if let Some(u) = &self.user {
            privs::user(u)?;
        }
        if let Some(g) = &self.group {
            privs::group(g)?;
        }
        let param = &self.request_id_param;
        if param.is_empty()
            || !param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!(
                "request id param {param:?} must be letters, digits and _"
            ));
        }
        Ok(())
    }

    fn observing(&self) -> bool {
        self.access_log.is_some() || self.status_path.is_some() || self.slow_log.is_some()
    }
}

/// Checks a Unix socket mode: permission bits only, and not writable by everyone (any
/// local user could then send requests as the web server).
pub fn check_socket_mode(mode: u32) -> Result<(), String> {
    if mode > 0o777 {
        return Err(format!(
            "socket mode {mode:o} has bits beyond rwxrwxrwx (give permission bits in octal, e.g. 660)"
        ));
    }
    if mode & 0o002 != 0 {
        return Err(format!(
            "socket mode {mode:03o} lets every local user connect and send requests; \
             use 660 with --socket-group set to the web server's group"
        ));
    }
    if mode & 0o600 != 0o600 {
        return Err(format!(
            "socket mode {mode:03o} must give its owner read and write (6xx)"
        ));
    }
    Ok(())
}

/// Writes one event line to stderr (one `write`, so lines from threads do not mix).
pub fn event(msg: &str) {
    use std::io::Write;
    let line = format!("cgate: {msg}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Stops every script still running (TERM, then KILL after `grace`) and reaps them.
pub fn terminate_scripts(grace: Duration) {
    let left = crate::apps::cgi::terminate_all(grace);
    if left > 0 {
        event(&format!("{left} script(s) still listed after SIGKILL"));
    }
}

/// How long scripts get between SIGTERM and SIGKILL when the server exits.
pub const SCRIPT_KILL_GRACE: Duration = Duration::from_secs(2);

/// Sets up the access log, slow log and status, and wraps `app` to feed them (the app is
/// returned unwrapped when none is on).
pub fn start(
    app: Arc<dyn App>,
    opts: &OpsOptions,
    cfg: &PoolConfig,
) -> std::io::Result<Arc<dyn App>> {
    metrics::configure(cfg.max_conns, cfg.workers);
    let _ = ID_PARAM.set(opts.request_id_param.clone());
    if let Some(path) = &opts.access_log {
        access::open(path, opts.access_format)?;
    }
    if !opts.observing() {
        return Ok(app);
    }
    if opts.status_path.is_some() || opts.slow_log.is_some() {
        arriving::enable();
    }
    let obs = Arc::new(observe::Observe::new(app, opts));
    if let Some(limit) = opts.slow_log {
        slow::start(Arc::clone(obs.inflight()), limit)?;
    }
    Ok(obs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_modes() {
        assert!(check_socket_mode(0o660).is_ok());
        assert!(check_socket_mode(0o600).is_ok());
        assert!(
            check_socket_mode(0o666)
                .unwrap_err()
                .contains("every local user")
        );
        assert!(check_socket_mode(0o1660).unwrap_err().contains("beyond"));
        assert!(check_socket_mode(0o060).unwrap_err().contains("owner"));
    }

    #[test]
    fn ops_option_checks() {
        let mut o = OpsOptions::default();
        assert!(o.check().is_ok());
        o.status_path = Some("status".into());
        assert!(o.check().is_err());
        o.status_path = Some("/cgate-status".into());
        o.slow_log = Some(Duration::ZERO);
        assert!(o.check().unwrap_err().contains("slow log"));
        o.slow_log = None;
        o.request_id_param = "X-ID".into();
        assert!(o.check().is_err());
    }
}
