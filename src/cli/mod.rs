//! The command line: subcommands, mode auto-detection and app selection (`--app` > `CGATE_APP` > hello).

use std::ffi::OsString;
use std::io::{self, Write};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

mod fastcgi;
mod reload;

use crate::apps::cgi::CgiOptions;
use crate::apps::from_spec_with;
use crate::gateway::App;
use crate::local::LocalRequest;
use crate::middleware::{Coding, Compress, Router, Validate};

/// Exit code for usage errors (bad flags, out-of-range values, nothing to do).
pub const EXIT_USAGE: i32 = 2;

/// Most seconds of any timeout option (one day).
pub(crate) const MAX_SECS: u64 = crate::fastcgi::server::MAX_TIMEOUT;

/// A clap parser for a count within `lo..=hi`.
pub(crate) fn count(lo: usize, hi: usize) -> impl clap::builder::TypedValueParser<Value = usize> {
    use clap::builder::TypedValueParser;
    clap::value_parser!(u64)
        .range(lo as u64..=hi as u64)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

#[derive(Parser, Debug)]
#[command(
    name = "cgate",
    version,
    about = "CGI and FastCGI gateway for one application interface",
    long_about = "cgate serves one application over CGI, FastCGI or a local test request.\n\n\
        With no subcommand it detects its mode: FastCGI when fd 0 is a listening socket \
        (spawn-fcgi, mod_fcgid), CGI when GATEWAY_INTERFACE is set (Apache cgi-bin); \
        otherwise it prints this help and exits 2."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    app: AppArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve one CGI request from the environment and stdin (RFC 3875).
    Cgi(CgiCmdArgs),
    /// Run a FastCGI responder on a socket.
    Fastcgi(FastCgiArgs),
    /// Run the app once on a request built from arguments and print the CGI response.
    Request(RequestArgs),
    /// Send a FastCGI request to a responder and print its CGI reply (or, with --repeat, a
    /// latency summary).
    Call(crate::call::CallArgs),
    /// Serve the app over HTTP on a local port, for development (no web server needed).
    Serve(crate::serve::ServeArgs),
    /// Reload a running `cgate fastcgi` through its pid file (SIGHUP, then wait until the
    /// new process serves). Exit 0 reloaded, 1 timed out or failed, 3 no such process.
    Reload(reload::ReloadArgs),
}

/// Which app to serve.
#[derive(Args, Debug, Clone, Default)]
struct AppArgs {
    /// The app: hello, echo, bytes:N or cgi:DIR (default: $CGATE_APP, else hello).
    #[arg(long, value_name = "SPEC", global = true)]
    app: Option<String>,
    /// Mount an app at a URL prefix (repeatable): PREFIX=SPEC, e.g. /api=echo.
    #[arg(long, value_name = "PREFIX=SPEC", global = true)]
    mount: Vec<String>,
    /// Gzip responses for clients that accept it (same as --compress gzip).
    #[arg(long, global = true)]
    gzip: bool,
    /// Compress responses with these codings, in order of preference (gzip, zstd), as each
    /// client's Accept-Encoding allows: e.g. --compress zstd,gzip.
    #[arg(long, value_name = "CODINGS", value_delimiter = ',', global = true)]
    compress: Vec<String>,
    /// Check on every request that the gateway and the app keep the interface contract
    /// (a broken rule becomes a 500 and a `validate:` log line); for testing.
    #[arg(long, global = true)]
    validate: bool,
    #[command(flatten)]
    cgi: CgiArgs,
}

/// Options of the `cgi:DIR` script runner.
#[derive(Args, Debug, Clone)]
struct CgiArgs {
    /// cgi:DIR: seconds a script has to complete its reply head (default 60, at most 86400).
    #[arg(long, value_name = "SECS", default_value_t = CgiOptions::default().total_timeout.as_secs(), global = true,
        value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    cgi_timeout: u64,
    /// cgi:DIR: seconds a script may be silent while its output could be taken (default 30,
    /// at most 86400).
    #[arg(long, value_name = "SECS", default_value_t = CgiOptions::default().idle_timeout.as_secs(), global = true,
        value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    cgi_idle_timeout: u64,
    /// cgi:DIR: scripts running at once; more get 503 (default 64, at most 65536).
    #[arg(long, value_name = "N", default_value_t = CgiOptions::default().max_concurrent, global = true,
        value_parser = count(1, 65_536))]
    cgi_max_scripts: usize,
    /// cgi:DIR: pass this variable of cgate's own environment to scripts (repeatable).
    #[arg(long, value_name = "NAME", global = true)]
    pass_env: Vec<String>,
    /// cgi:DIR: only run scripts with this extension (repeatable, e.g. --cgi-ext cgi).
    #[arg(long, value_name = "EXT", global = true)]
    cgi_ext: Vec<String>,
}

impl Default for CgiArgs {
    /// The script runner's own defaults ([`CgiOptions::default`]), as the flags document.
    fn default() -> Self {
        let d = CgiOptions::default();
        CgiArgs {
            cgi_timeout: d.total_timeout.as_secs(),
            cgi_idle_timeout: d.idle_timeout.as_secs(),
            cgi_max_scripts: d.max_concurrent,
            pass_env: Vec::new(),
            cgi_ext: Vec::new(),
        }
    }
}

impl CgiArgs {
    fn options(&self) -> CgiOptions {
        CgiOptions {
            total_timeout: std::time::Duration::from_secs(self.cgi_timeout),
            idle_timeout: std::time::Duration::from_secs(self.cgi_idle_timeout),
            max_concurrent: self.cgi_max_scripts,
            pass_env: self.pass_env.clone(),
            extensions: (!self.cgi_ext.is_empty()).then(|| self.cgi_ext.clone()),
            ..Default::default()
        }
    }
}

#[derive(Args, Debug)]
struct CgiCmdArgs {}

#[derive(Args, Debug)]
struct FastCgiArgs {
    #[command(flatten)]
    server: fastcgi::ServerArgs,
}

#[derive(Args, Debug)]
struct RequestArgs {
    /// HTTP method (default GET, or POST with -d).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,
    /// A request header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// The body: text, @FILE (streamed) or @- (stdin).
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    data: Option<String>,
    /// SCRIPT_NAME of the app (default empty: mounted at the root).
    #[arg(long, default_value = "")]
    script_name: String,
    /// The request target, /path?query.
    target: String,
}

fn build_app(args: &AppArgs, custom: Option<Arc<dyn App>>) -> Result<Arc<dyn App>, String> {
    let cgi = args.cgi.options();
    let from_spec = |spec: &str| from_spec_with(spec, &cgi);
    let base: Option<Arc<dyn App>> = match (custom, &args.app) {
        (Some(app), _) => Some(app),
        (None, Some(spec)) => Some(from_spec(spec).map_err(|e| e.to_string())?),
        (None, None) => match std::env::var("CGATE_APP") {
            Ok(spec) if !spec.is_empty() => Some(from_spec(&spec).map_err(|e| e.to_string())?),
            _ if args.mount.is_empty() => Some(from_spec("hello").map_err(|e| e.to_string())?),
            _ => None,
        },
    };
    let mut app = match (args.mount.is_empty(), base) {
        (true, Some(app)) => app,
        (_, base) => {
            let mut router = Router::new();
            for m in &args.mount {
                let (prefix, spec) = m
                    .split_once('=')
                    .ok_or_else(|| format!("--mount {m:?}: expected PREFIX=SPEC"))?;
                router = router.mount(prefix, from_spec(spec).map_err(|e| e.to_string())?);
            }
            if let Some(app) = base {
                router = router.mount("/", app);
            }
            Arc::new(router)
        }
    };
    let mut codings = Vec::new();
    for token in &args.compress {
        codings.push(
            Coding::from_token(token)
                .ok_or_else(|| format!("--compress {token:?}: expected gzip or zstd"))?,
        );
    }
    if args.gzip && !codings.contains(&Coding::Gzip) {
        codings.push(Coding::Gzip);
    }
    if !codings.is_empty() {
        app = Arc::new(Compress::new(app, &codings));
    }
    if args.validate {
        app = Arc::new(Validate::new(app));
    }
    Ok(app)
}

/// A command-line mistake: reported with exit code [`EXIT_USAGE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Runs cgate with these arguments; `custom` replaces the app SPEC with the caller's app.
/// Returns the process exit code; errors are printed here, the binary's one catch-all.
pub fn main_with(argv: impl IntoIterator<Item = OsString>, custom: Option<Arc<dyn App>>) -> i32 {
    match dispatch(argv.into_iter().collect(), custom) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cgate: {e:#}");
            if e.is::<UsageError>() { EXIT_USAGE } else { 1 }
        }
    }
}

fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

fn dispatch(argv: Vec<OsString>, custom: Option<Arc<dyn App>>) -> anyhow::Result<i32> {
    if let Some(spec) = plain_cgi(&argv) {
        // The common CGI invocations skip the full parser: a CGI run is one process per
        // request, and start-up is most of its cost.
        let args = AppArgs {
            app: spec,
            ..AppArgs::default()
        };
        let app = build_app(&args, custom).map_err(usage)?;
        return Ok(crate::cgi::gateway::run(&*app));
    }
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Ok(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    // `cgate call` serves no app: none is built (a bad CGATE_APP does not stop it).
    let command = match cli.command {
        Some(Command::Call(c)) => return Ok(crate::call::run(c)),
        Some(Command::Reload(r)) => return Ok(reload::run(&r)),
        other => other,
    };
    let custom_app = custom.is_some();
    let app = build_app(&cli.app, custom).map_err(usage)?;
    let specs = if custom_app {
        vec!["custom".to_owned()]
    } else {
        cli.app.specs()
    };
    match command {
        Some(Command::Cgi(_)) => Ok(crate::cgi::gateway::run(&*app)),
        Some(Command::Fastcgi(f)) => {
            let mut opts = f.server.options(&specs, cli.app.runs_scripts());
            opts.ops.app_limits = cli.app.limits();
            serve(app, &opts)
        }
        Some(Command::Call(c)) => Ok(crate::call::run(c)),
        Some(Command::Reload(r)) => Ok(reload::run(&r)),
        Some(Command::Serve(s)) => crate::serve::run_cli(app, s),
        Some(Command::Request(r)) => {
            let req = LocalRequest {
                method: r.method,
                headers: r.headers,
                data: r.data,
                target: r.target,
                script_name: r.script_name,
            };
            let mut out = io::stdout().lock();
            let mut err = io::stderr();
            let code = req.run(&*app, &mut out, &mut err).map_err(usage)?;
            let _ = out.flush();
            Ok(code)
        }
        None => {
            if crate::os::stdin_is_listener() || crate::ops::reload::inherited_env() {
                let mut opts = crate::fastcgi::server::ServerOptions::default();
                opts.ops.apps = specs;
                opts.ops.runs_scripts = cli.app.runs_scripts();
                opts.ops.app_limits = cli.app.limits();
                serve(app, &opts)
            } else if std::env::var_os("GATEWAY_INTERFACE").is_some() {
                Ok(crate::cgi::gateway::run(&*app))
            } else {
                use clap::CommandFactory;
                let mut cmd = Cli::command();
                let _ = cmd.write_long_help(&mut io::stderr());
                Ok(EXIT_USAGE)
            }
        }
    }
}

/// Runs the FastCGI server; option and listener mistakes are usage errors (exit 2).
fn serve(app: Arc<dyn App>, opts: &crate::fastcgi::server::ServerOptions) -> anyhow::Result<i32> {
    use crate::fastcgi::server::ServerError;
    match crate::fastcgi::server::run(app, opts) {
        Ok(code) => Ok(code),
        Err(ServerError::NoListener) => Err(usage(
            "fastcgi needs --listen ADDR (or a listening socket on fd 0)",
        )),
        Err(e @ ServerError::Invalid(_)) => Err(usage(e)),
        Err(e) => Err(e.into()),
    }
}

impl AppArgs {
    /// The app SPECs as given (for the start-up line).
    fn specs(&self) -> Vec<String> {
        let mut v: Vec<String> = self.app.iter().cloned().collect();
        if v.is_empty() && self.mount.is_empty() {
            v.push(std::env::var("CGATE_APP").unwrap_or_else(|_| "hello".into()));
        }
        v.extend(self.mount.iter().cloned());
        v
    }

    /// The script runner's limits, for the start-up line (empty when no app runs scripts).
    fn limits(&self) -> String {
        if !self.runs_scripts() {
            return String::new();
        }
        let c = &self.cgi;
        format!(
            "cgi_timeout={}s cgi_idle_timeout={}s cgi_max_scripts={}",
            c.cgi_timeout, c.cgi_idle_timeout, c.cgi_max_scripts
        )
    }

    /// Whether some app runs CGI scripts.
    fn runs_scripts(&self) -> bool {
        self.specs().iter().any(|s| {
            s.split_once('=')
                .map_or(s.as_str(), |(_, spec)| spec)
                .starts_with("cgi:")
        })
    }
}

/// Recognises `cgate cgi [--app SPEC]` and, under a CGI environment, `cgate [--app SPEC]`
/// (when fd 0 is not a listening socket); returns the optional SPEC.
fn plain_cgi(argv: &[OsString]) -> Option<Option<String>> {
    let args: Vec<&str> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_str())
        .collect::<Option<_>>()?;
    let (cgi, rest) = match args.split_first() {
        Some((&"cgi", rest)) => (true, rest),
        _ => (false, &args[..]),
    };
    let spec = match rest {
        [] => None,
        ["--app", spec] if !spec.starts_with('-') => Some((*spec).to_owned()),
        [arg] => Some(arg.strip_prefix("--app=")?.to_owned()),
        _ => return None,
    };
    if cgi || (std::env::var_os("GATEWAY_INTERFACE").is_some() && !crate::os::stdin_is_listener()) {
        Some(spec)
    } else {
        None
    }
}

/// Runs cgate from the process's arguments with the app named by `--app` / `CGATE_APP`.
pub fn main() -> i32 {
    main_with(std::env::args_os(), None)
}
