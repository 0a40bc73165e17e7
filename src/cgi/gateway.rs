//! The CGI gateway (RFC 3875): environ from the process environment, body on stdin, reply on stdout.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use crate::gateway::environ::DROPPED_ON_INPUT;
use crate::gateway::{
    App, BodyLength, CgiSink, Environ, GatewayFacts, Input, Request, parse_content_length, run_app,
    send_plain,
};

/// Exit code when the app failed (a 500 or a cut response was sent).
pub(crate) const EXIT_APP_ERROR: i32 = 1;

/// Gateway facts of a CGI run: one request per process.
pub(crate) const CGI_FACTS: GatewayFacts = GatewayFacts::cgi();

/// Builds the environ from environment variables (later duplicates win; the names in
/// [`DROPPED_ON_INPUT`] are dropped).
pub(crate) fn environ_from_vars(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Environ {
    let mut env = Environ::new(CGI_FACTS);
    for (n, v) in vars {
        if !DROPPED_ON_INPUT.contains(&n.as_bytes()) {
            env.set(n.as_bytes(), v.as_bytes());
        }
    }
    env.gateway.https = env.detect_https();
    env
}

/// Serves one request in the CGI way over the given streams; returns the exit code.
///
/// A malformed CONTENT_LENGTH gets a 400 without calling the app. Without CONTENT_LENGTH the
/// request has no body (RFC 3875 4.1.2). A closed stdout ends the run quietly.
fn serve(
    app: &dyn App,
    env: Environ,
    stdin: &mut dyn Read,
    mut sink: CgiSink<&mut dyn Write>,
    stderr: &mut dyn Write,
) -> i32 {
    let length = match parse_content_length(env.get("CONTENT_LENGTH")) {
        Ok(n) => n.unwrap_or(0),
        Err(e) => {
            let _ = writeln!(stderr, "cgate: 400 Bad Request: {e}");
            let _ = send_plain(&mut sink, "400 Bad Request", "Bad Request\n");
            return 0;
        }
    };
    let input = Input::new(stdin, BodyLength::Exact(length));
    let mut req = Request::new(env, input, stderr);
    let outcome = run_app(app, &mut req, &mut sink);
    if outcome.complete { 0 } else { EXIT_APP_ERROR }
}

/// Runs the CGI gateway on this process's environment and standard streams.
///
/// stdin is read unbuffered (each read asks for at most what CONTENT_LENGTH still allows), so
/// the bytes after the body stay on fd 0 for whoever reads it next. File bodies go to stdout
/// with sendfile.
pub(crate) fn run(app: &dyn App) -> i32 {
    let env = environ_from_vars(std::env::vars_os());
    let mut stdin: Box<dyn Read> = match io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(File::from(fd)),
        Err(_) => Box::new(io::empty()),
    };
    // Raw stdout (not Rust's line-buffered one): the sink already writes whole blocks.
    let raw = io::stdout().as_fd().try_clone_to_owned();
    let mut stdout: Box<dyn Write> = match raw.as_ref().map(|fd| fd.try_clone()) {
        Ok(Ok(fd)) => Box::new(File::from(fd)),
        _ => Box::new(io::stdout().lock()),
    };
    let mut sink = CgiSink::new(&mut *stdout as &mut dyn Write);
    if let Ok(fd) = raw {
        sink = sink.with_sendfile(fd);
    }
    let mut stderr = io::stderr().lock();
    serve(app, env, &mut stdin, sink, &mut stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environ_from_vars_drops_httpoxy_and_http_content_copies() {
        let vars = [
            ("HTTP_PROXY", "evil"),
            ("HTTP_CONTENT_TYPE", "a/b"),
            ("HTTP_CONTENT_LENGTH", "3"),
            ("CONTENT_TYPE", "a/b"),
        ]
        .map(|(n, v)| (OsString::from(n), OsString::from(v)));
        let env = environ_from_vars(vars);
        let all: Vec<_> = env.iter().collect();
        assert_eq!(all, vec![(&b"CONTENT_TYPE"[..], &b"a/b"[..])]);
    }
}
