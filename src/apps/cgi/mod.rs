//! `cgi:DIR`: runs classic CGI scripts from one directory, safely and streaming (an fcgiwrap replacement).
//!
//! [`CgiDir`] is an ordinary [`App`], so it runs under every gateway. Per request it:
//! 1. takes a slot (at most [`CgiOptions::max_concurrent`] scripts at once, else 503);
//! 2. finds the script ([`resolve`]): 400 for NUL/CR/LF in path variables, 404 when nothing
//!    exists, 403 for anything that may not run (a link planted by another user than the
//!    target's owner or root, not a regular file, not executable, setuid/setgid, writable by
//!    group or others, a world-writable directory on the way, extension not allowed);
//! 3. runs the very file it checked (its open descriptor, never the path again) directly,
//!    never through a shell, with argv = its path, its directory as working directory, a
//!    process group of its own, only fds 0-2 (and 3 for a `#!` script, see
//!    [`crate::os::spawn_script`]) and a clean environment ([`mod@env`]);
//! 4. exchanges data full-duplex ([`pump`]): the body streams to stdin while stdout streams
//!    to the client chunk by chunk and stderr goes to the error log line by line
//!    ([`lines`], bounded);
//! 5. answers 502 for a refused reply ([`crate::cgi::reply`], then the gateway's header
//!    rules), 504 when a deadline passes before anything was sent (after that the response
//!    is cut), and kills the process group when the request ends early (client gone, body
//!    error): SIGTERM, then SIGKILL after [`child::TERM_GRACE`].
//!
//! When the script exits while something it started keeps stdout open, reading goes on
//! while output comes, until the idle timeout passes without any; then the response ends
//! normally. Whatever is left in the script's process group when a request ends is killed
//! with SIGKILL and the script is reaped: nothing outlives its request except processes
//! that left the group (setsid). [`terminate_all`] stops every script for a server's exit,
//! and scripts die with cgate even on SIGKILL ([`crate::os::group_guard`]). A non-zero
//! exit status is logged; the response stands as the script wrote it.

pub mod child;
pub mod env;
pub mod lines;
mod poll;
pub mod pump;
pub mod resolve;

pub use self::child::terminate_all;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use self::child::{Running, TERM_GRACE, describe};
use self::pump::{Ending, Limits};
use self::resolve::Root;
use crate::cgi::reply::standard_reason;
use crate::gateway::{App, AppError, Body, Request, Response};

/// Settings of a [`CgiDir`]; `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct CgiOptions {
    /// Deadline for the script's reply head (default 60 s): 504 when it passes. A reply
    /// whose head is in runs as long as it keeps flowing (see `idle_timeout`).
    pub total_timeout: Duration,
    /// Longest silence on stdout while cgate could take output (default 30 s); time
    /// blocked on the client never counts. 504 if nothing was sent yet, else the response
    /// is cut.
    pub idle_timeout: Duration,
    /// Scripts running at once (default 64); requests beyond it get 503.
    pub max_concurrent: usize,
    /// Bytes of a script's stderr copied to the error log per request (default 64 KiB).
    pub max_stderr_per_request: usize,
    /// Bound on a script's reply head, blank line included (default 64 KiB); beyond, 502.
    pub max_header_bytes: usize,
    /// Names of daemon environment variables scripts also get (default none). Values are
    /// read once, when the app is built. Request variables take precedence over them.
    pub pass_env: Vec<String>,
    /// When set, only scripts whose resolved file name ends in `.EXT` for one of these run
    /// (given without the dot; default: any name).
    pub extensions: Option<Vec<String>>,
}

impl Default for CgiOptions {
    fn default() -> Self {
        CgiOptions {
            total_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            max_concurrent: 64,
            max_stderr_per_request: 64 * 1024,
            max_header_bytes: crate::cgi::reply::DEFAULT_MAX_HEADER_BYTES,
            pass_env: Vec::new(),
            extensions: None,
        }
    }
}

/// The `cgi:DIR` app: runs the CGI scripts of one directory.
pub struct CgiDir {
    root: Root,
    options: CgiOptions,
    passed: Vec<(String, OsString)>,
    running: Arc<AtomicUsize>,
}

/// Every live `cgi:DIR` app's running-scripts counter and its limit.
static SCRIPTS: Mutex<Vec<(Weak<AtomicUsize>, usize)>> = Mutex::new(Vec::new());

/// Scripts running now and the sum of the limits (`max_concurrent`) of every live
/// `cgi:DIR` app in this process, for the operations status endpoint.
pub fn scripts() -> (usize, usize) {
    let list = SCRIPTS.lock().unwrap_or_else(|p| p.into_inner());
    list.iter()
        .filter_map(|(w, max)| Some((w.upgrade()?.load(Ordering::Acquire), *max)))
        .fold((0, 0), |(r, m), (n, max)| (r + n, m + max))
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

impl CgiDir {
    /// An app running the scripts in `dir`, which must be an existing directory. Fails on
    /// a `pass_env` name not matching `[A-Za-z_][A-Za-z0-9_]*`, an empty or dotted
    /// extension, a zero concurrency cap or a zero timeout.
    pub fn new(dir: PathBuf, mut options: CgiOptions) -> io::Result<CgiDir> {
        let root = Root::new(dir)?;
        if options.max_concurrent == 0 {
            return Err(invalid("max_concurrent must be at least 1".into()));
        }
        if options.total_timeout.is_zero() || options.idle_timeout.is_zero() {
            return Err(invalid("timeouts must be longer than zero".into()));
        }
        for name in &options.pass_env {
            if !env::valid_name(name.as_bytes()) {
                return Err(invalid(format!("invalid pass_env name {name:?}")));
            }
        }
        if let Some(exts) = options.extensions.as_mut() {
            for e in exts.iter_mut() {
                if let Some(stripped) = e.strip_prefix('.') {
                    *e = stripped.to_owned();
                }
                if e.is_empty() || e.contains(['.', '/', '\0']) {
                    return Err(invalid(format!("invalid extension {e:?}")));
                }
            }
        }
        let passed = options
            .pass_env
            .iter()
            .filter_map(|n| std::env::var_os(n).map(|v| (n.clone(), v)))
            .collect();
        let running = Arc::new(AtomicUsize::new(0));
        let mut list = SCRIPTS.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|(w, _)| w.strong_count() > 0);
        list.push((Arc::downgrade(&running), options.max_concurrent));
        drop(list);
        Ok(CgiDir {
            root,
            options,
            passed,
            running,
        })
    }

    /// The script directory, canonicalized.
    pub fn dir(&self) -> &Path {
        &self.root.canonical
    }

    /// The options in force.
    pub fn options(&self) -> &CgiOptions {
        &self.options
    }

    /// Scripts running right now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }
}

/// Writes one log line in a single write, so the FastCGI error stream makes it one record.
fn log_line(req: &mut Request<'_>, line: &str) {
    let mut one = String::with_capacity(line.len() + 1);
    one.push_str(line);
    one.push('\n');
    let _ = req.errors.write_all(one.as_bytes());
}

/// A concurrency slot, given back on drop.
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(counter: &'a AtomicUsize, max: usize) -> Option<Slot<'a>> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(counter))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn status_line(code: u16) -> String {
    format!("{code} {}", standard_reason(code))
}

fn error_body(code: u16) -> String {
    format!("{}\n", standard_reason(code))
}

/// A complete error answer returned as the body (nothing was started yet).
fn answer(resp: &mut Response<'_>, code: u16) -> Result<Body<'static>, AppError> {
    resp.start(
        &status_line(code),
        [("Content-Type", "text/plain; charset=utf-8")],
    )?;
    Ok(Body::from(error_body(code)))
}

/// Sends an error answer at once (before the script is stopped, which may take a while).
fn answer_now(resp: &mut Response<'_>, code: u16) -> Result<(), AppError> {
    let body = error_body(code);
    resp.start(
        &status_line(code),
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", &body.len().to_string()),
        ],
    )?;
    resp.write(body.as_bytes())?;
    Ok(())
}

impl CgiDir {
    /// Finds and checks the script and builds its environment; a refusal is answered here.
    fn prepare(&self, req: &mut Request<'_>) -> Result<resolve::Script, u16> {
        let script = resolve::resolve(&self.root, &req.environ, self.options.extensions.as_deref());
        let script = script.map_err(|r| {
            log_line(
                req,
                &format!("cgate: cgi: {}: {} ({})", r.file, r.reason, r.status),
            );
            r.status
        })?;
        Ok(script)
    }

    fn limits(&self) -> Limits {
        Limits {
            total: self.options.total_timeout,
            idle: self.options.idle_timeout,
            max_stderr: self.options.max_stderr_per_request,
            max_header: self.options.max_header_bytes,
        }
    }

    /// Answers what the exchange's ending calls for and stops the script.
    fn conclude(
        &self,
        ending: Result<Ending, AppError>,
        mut run: Running,
        label: &str,
        req: &mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'static>, AppError> {
        let pid = run.pid();
        let log = |req: &mut Request<'_>, what: &str| {
            log_line(req, &format!("cgate: cgi: {label} (pid {pid}): {what}"));
        };
        match ending {
            Ok(Ending::Complete { held_open }) => {
                if held_open {
                    log(
                        req,
                        "output still open after the script exited; stopped reading",
                    );
                }
                let status = if run.exited() {
                    run.finish()
                } else {
                    log(
                        req,
                        "output closed but the script did not exit; stopping it",
                    );
                    run.terminate(TERM_GRACE)
                };
                match status {
                    Ok(s) if !s.success() => log(req, &describe(s)),
                    Err(e) => log(req, &format!("wait failed: {e}")),
                    Ok(_) => {}
                }
                Ok(Body::Empty)
            }
            Ok(Ending::Short { missing }) => {
                log(
                    req,
                    &format!("reply {missing} bytes shorter than its Content-Length; cutting it"),
                );
                let _ = run.terminate(TERM_GRACE);
                Err(AppError::msg(format!("script {label} sent a short reply")))
            }
            Ok(Ending::BadReply(why)) => {
                log(req, &format!("bad reply, answering 502: {why}"));
                let sent = answer_now(resp, 502);
                let _ = run.terminate(TERM_GRACE);
                sent.map(|()| Body::Empty)
            }
            Ok(Ending::TimedOut(which)) => {
                let limit = match which {
                    "total" => self.options.total_timeout,
                    _ => self.options.idle_timeout,
                };
                log(
                    req,
                    &format!("{which} timeout of {limit:?} passed; stopping it"),
                );
                if resp.headers_sent() {
                    let _ = run.terminate(TERM_GRACE);
                    return Err(AppError::msg(format!("script {label} timed out")));
                }
                let sent = answer_now(resp, 504);
                let _ = run.terminate(TERM_GRACE);
                sent.map(|()| Body::Empty)
            }
            Err(e) => {
                log(req, &format!("request ended early ({e}); stopping it"));
                let _ = run.terminate(TERM_GRACE);
                Err(e)
            }
        }
    }
}

impl App for CgiDir {
    fn call<'a>(
        &self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        let Some(_slot) = Slot::take(&self.running, self.options.max_concurrent) else {
            log_line(
                req,
                &format!(
                    "cgate: cgi: {} scripts already running; answering 503",
                    self.options.max_concurrent
                ),
            );
            return answer(resp, 503);
        };
        let script = match self.prepare(req) {
            Ok(s) => s,
            Err(status) => return answer(resp, status),
        };
        let label = script.path.display().to_string();
        let vars = env::ScriptVars {
            script_filename: script.path.as_os_str().as_encoded_bytes().to_vec(),
            script_name: script.script_name.clone(),
            path_info: script.path_info.clone(),
        };
        let environment = env::build(&req.environ, &vars, &self.passed);
        // From here the request waits on a child process: let the server move other work off.
        crate::gateway::about_to_block();
        let (run, pipes) = match Running::spawn(&script, environment) {
            Ok(r) => r,
            Err(e) => {
                log_line(
                    req,
                    &format!("cgate: cgi: {label}: cannot run the script: {e}"),
                );
                return answer(resp, 500);
            }
        };
        drop(script);
        let ending = pump::exchange(&run, pipes, req, resp, self.limits(), &label);
        self.conclude(ending, run, &label, req, resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A script directory not writable by others (the temp dir itself is 1777).
    fn build(options: CgiOptions) -> io::Result<CgiDir> {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("cgate-options-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        CgiDir::new(dir, options)
    }

    #[test]
    fn options_are_checked() {
        let bad = [
            CgiOptions {
                max_concurrent: 0,
                ..CgiOptions::default()
            },
            CgiOptions {
                idle_timeout: Duration::ZERO,
                ..CgiOptions::default()
            },
            CgiOptions {
                pass_env: vec!["BAD-NAME".into()],
                ..CgiOptions::default()
            },
            CgiOptions {
                extensions: Some(vec!["tar.gz".into()]),
                ..CgiOptions::default()
            },
            CgiOptions {
                extensions: Some(vec![".".into()]),
                ..CgiOptions::default()
            },
        ];
        for o in bad {
            let e = build(o.clone()).err().map(|e| e.kind());
            assert_eq!(e, Some(io::ErrorKind::InvalidInput), "{o:?}");
        }
        let app = build(CgiOptions {
            extensions: Some(vec![".cgi".into(), "sh".into()]),
            ..CgiOptions::default()
        })
        .unwrap();
        let exts = app.options().extensions.clone();
        assert_eq!(exts, Some(vec!["cgi".to_owned(), "sh".to_owned()]));
        assert!(CgiDir::new("/nonexistent/cgate".into(), CgiOptions::default()).is_err());
        assert!(CgiDir::new("/etc/hostname".into(), CgiOptions::default()).is_err());
        let _ = std::fs::remove_dir(app.dir());
    }
}
