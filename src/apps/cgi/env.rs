//! The script's environment: RFC 3875 meta-variables and HTTP_* from the request, nothing else.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::gateway::Environ;

/// The fixed PATH a script gets (unless `pass_env` names PATH).
pub const SCRIPT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Variables the runner sets itself: a request parameter never replaces them.
pub const RUNNER_VARS: [&str; 6] = [
    "PATH",
    "GATEWAY_INTERFACE",
    "SCRIPT_NAME",
    "SCRIPT_FILENAME",
    "PATH_INFO",
    "PATH_TRANSLATED",
];

/// Names a request parameter may not set: they make the dynamic loader, the C library, a
/// shell or an interpreter load or run other code, or read other files, before the script
/// itself runs. Gathered from glibc's list of variables removed for setuid programs
/// (`unsecvars.h`), sudo's `env_reset` defaults and the interpreters scripts are written
/// in. The operator can still give the daemon's own value with `--pass-env`.
pub const DENIED_VARS: [&str; 43] = [
    // glibc (unsecvars.h) and the C library
    "GCONV_PATH",
    "GETCONF_DIR",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "NIS_PATH",
    "NLSPATH",
    "PATH_LOCALE",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TMPDIR",
    "TZDIR",
    // other loaders
    "SHLIB_PATH",
    "LIBPATH",
    // shells (sudo's env_reset defaults)
    "BASH_ENV",
    "ENV",
    "IFS",
    "CDPATH",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "GLOBIGNORE",
    "FPATH",
    "NULLCMD",
    "READNULLCMD",
    "ZDOTDIR",
    "TMPPREFIX",
    "TERMINFO",
    "TERMINFO_DIRS",
    "TERMPATH",
    "TERMCAP",
    // interpreters and runtimes
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "TCLLIBPATH",
    "EMACSLOADPATH",
    "OPENSSL_CONF",
    "OPENSSL_ENGINES",
    "HTTP_PROXY",
];

/// Name prefixes a request parameter may not use (same reasons as [`DENIED_VARS`]):
/// `LD_*` (the dynamic loader), `DYLD_*`, `_RLD*`, `LDR_*`, `MALLOC_*`, `BASH_FUNC_*`
/// (exported shell functions), `PERL*` (PERL5OPT, PERL5LIB, PERLLIB, PERL5DB, PERLIO...),
/// `PYTHON*`, `RUBY*`, `GEM_*`, `NODE_*`, `LUA_*`.
pub const DENIED_PREFIXES: [&str; 12] = [
    "LD_",
    "DYLD_",
    "_RLD",
    "LDR_",
    "MALLOC_",
    "BASH_FUNC_",
    "PERL",
    "PYTHON",
    "RUBY",
    "GEM_",
    "NODE_",
    "LUA_",
];

/// `true` for a request parameter that may reach a script: a valid name (see
/// [`valid_name`]), not `HTTP_*` (client headers are passed on their own rule), not one the
/// runner sets, not denied (compared ignoring case, as some loaders do).
pub fn passes_param(name: &[u8]) -> bool {
    if !valid_name(name) || starts_with_ignore_case(name, "HTTP_") {
        return false;
    }
    let is = |n: &&str| name.eq_ignore_ascii_case(n.as_bytes());
    !RUNNER_VARS.iter().any(is)
        && !DENIED_VARS.iter().any(is)
        && !DENIED_PREFIXES
            .iter()
            .any(|p| starts_with_ignore_case(name, p))
}

fn starts_with_ignore_case(name: &[u8], prefix: &str) -> bool {
    name.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// `true` for a name matching `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        None => false,
    }
}

/// What the runner decided about the script, as bytes.
#[derive(Debug, Clone, Default)]
pub struct ScriptVars {
    /// SCRIPT_NAME.
    pub script_name: Vec<u8>,
    /// PATH_INFO.
    pub path_info: Vec<u8>,
    /// SCRIPT_FILENAME: the canonical path of the script.
    pub script_filename: Vec<u8>,
}

/// Builds the complete environment of one script run, in order: the fixed PATH, the
/// operator's `pass_env` values (snapshotted from the daemon at start-up), the request's
/// parameters that [`passes_param`] (the RFC 3875 meta-variables and whatever the web
/// server adds, as fcgiwrap passes nginx's `fastcgi_param` and Apache `SetEnv`: e.g.
/// GIT_PROJECT_ROOT, GITWEB_CONFIG, DOCUMENT_URI), the runner's own variables, then the
/// request's valid `HTTP_*` headers (never `HTTP_PROXY`, in any case). Later entries
/// replace earlier ones of the same name; values holding NUL are left out (they cannot be
/// passed).
pub fn build(
    req: &Environ,
    script: &ScriptVars,
    pass_env: &[(String, OsString)],
) -> Vec<(OsString, OsString)> {
    let mut out: Vec<(OsString, OsString)> = Vec::with_capacity(32);
    let mut put = |name: &[u8], value: &[u8]| {
        if value.contains(&0) {
            return;
        }
        let name = OsString::from_vec(name.to_vec());
        let value = OsString::from_vec(value.to_vec());
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => out.push((name, value)),
        }
    };
    put(b"PATH", SCRIPT_PATH.as_bytes());
    for (n, v) in pass_env {
        put(n.as_bytes(), v.as_bytes());
    }
    for (name, value) in req.iter() {
        if passes_param(name) {
            put(name, value);
        }
    }
    put(b"GATEWAY_INTERFACE", b"CGI/1.1");
    put(b"SCRIPT_NAME", &script.script_name);
    put(b"SCRIPT_FILENAME", &script.script_filename);
    if !script.path_info.is_empty() {
        put(b"PATH_INFO", &script.path_info);
        let translated = match (req.get("PATH_TRANSLATED"), req.get("DOCUMENT_ROOT")) {
            (Some(t), _) if req.path_info() == script.path_info.as_slice() => t.to_vec(),
            (_, Some(root)) => {
                let root = root.strip_suffix(b"/").unwrap_or(root);
                [root, &script.path_info].concat()
            }
            _ => Vec::new(),
        };
        if !translated.is_empty() {
            put(b"PATH_TRANSLATED", &translated);
        }
    }
    for (name, value) in req.iter() {
        if name.starts_with(b"HTTP_")
            && valid_name(name)
            && !name.eq_ignore_ascii_case(b"HTTP_PROXY")
        {
            put(name, value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::GatewayFacts;

    fn req(vars: &[(&[u8], &[u8])]) -> Environ {
        let mut e = Environ::new(GatewayFacts::fastcgi());
        for (n, v) in vars {
            e.set(n, v);
        }
        e
    }

    fn pairs(env: &[(OsString, OsString)]) -> Vec<(String, String)> {
        env.iter()
            .map(|(n, v)| {
                (
                    n.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn denied_params() {
        for ok in [
            &b"GIT_PROJECT_ROOT"[..],
            b"GITWEB_CONFIG",
            b"CGIT_CONFIG",
            b"REMOTE_USER",
        ] {
            assert!(passes_param(ok), "{ok:?}");
        }
        for bad in [
            &b"LD_PRELOAD"[..],
            b"Ld_Library_Path",
            b"PERL5LIB",
            b"PERLLIB",
            b"PYTHONPATH",
            b"RUBYOPT",
            b"RUBYLIB",
            b"NODE_OPTIONS",
            b"ENV",
            b"IFS",
            b"GLIBC_TUNABLES",
            b"BASH_FUNC_x",
            b"HTTP_PROXY",
            b"HTTP_HOST",
            b"PATH",
            b"SCRIPT_NAME",
            b"A B",
        ] {
            assert!(!passes_param(bad), "{bad:?}");
        }
    }

    #[test]
    fn names() {
        for good in [&b"A"[..], b"_", b"HTTP_X_Y2", b"a1"] {
            assert!(valid_name(good), "{good:?}");
        }
        for bad in [&b""[..], b"1A", b"A-B", b"A=B", b"A B", b"A\0", b"\xc3\xa9"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn exact_environment() {
        let r = req(&[
            (b"REQUEST_METHOD", b"POST"),
            (b"QUERY_STRING", b"a=1"),
            (b"CONTENT_LENGTH", b"5"),
            (b"SCRIPT_NAME", b"/ignored"),
            (b"PATH_INFO", b"/p"),
            (b"DOCUMENT_ROOT", b"/srv/www/"),
            (b"GATEWAY_INTERFACE", b"CGI/9"),
            (b"HTTP_HOST", b"example.com"),
            (b"HTTP_X_OK_1", b"v"),
            (b"HTTP_X-DASH", b"dropped"),
            (b"HTTP_X=EQ", b"dropped"),
            (b"HTTP_Proxy", b"http://evil/"),
            (b"http_proxy", b"http://evil/"),
            (b"HTTP_X_NUL", b"a\0b"),
            (b"LD_PRELOAD", b"/tmp/evil.so"),
            (b"ld_preload", b"/tmp/evil.so"),
            (b"GIT_PROJECT_ROOT", b"/srv/git"),
            (b"PERL5OPT", b"-Mevil"),
            (b"PYTHONSTARTUP", b"/tmp/evil.py"),
            (b"BASH_ENV", b"/tmp/evil.sh"),
            (b"IFS", b"/"),
            (b"NODE_OPTIONS", b"--require /tmp/evil.js"),
            (b"GCONV_PATH", b"/tmp"),
            (b"BAD-NAME", b"dropped"),
            (b"SCRIPT_FILENAME", b"/elsewhere"),
            (b"DOCUMENT_URI", b"/cgi/s.sh/more"),
            (b"PATH", b"/tmp/evil"),
        ]);
        let script = ScriptVars {
            script_name: b"/cgi/s.sh".to_vec(),
            path_info: b"/more".to_vec(),
            script_filename: b"/srv/cgi/s.sh".to_vec(),
        };
        let passed = [("TZ".to_owned(), OsString::from("UTC"))];
        let got = pairs(&build(&r, &script, &passed));
        let want: Vec<(String, String)> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("TZ", "UTC"),
            ("REQUEST_METHOD", "POST"),
            ("QUERY_STRING", "a=1"),
            ("CONTENT_LENGTH", "5"),
            ("DOCUMENT_ROOT", "/srv/www/"),
            ("GIT_PROJECT_ROOT", "/srv/git"),
            ("DOCUMENT_URI", "/cgi/s.sh/more"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SCRIPT_NAME", "/cgi/s.sh"),
            ("SCRIPT_FILENAME", "/srv/cgi/s.sh"),
            ("PATH_INFO", "/more"),
            ("PATH_TRANSLATED", "/srv/www/more"),
            ("HTTP_HOST", "example.com"),
            ("HTTP_X_OK_1", "v"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn no_path_info_means_no_path_translated_and_server_value_kept_when_unchanged() {
        let r = req(&[(b"PATH_TRANSLATED", b"/x/y"), (b"PATH_INFO", b"/y")]);
        let mut s = ScriptVars::default();
        let got = pairs(&build(&r, &s, &[]));
        assert!(
            !got.iter()
                .any(|(n, _)| n == "PATH_INFO" || n == "PATH_TRANSLATED")
        );
        s.path_info = b"/y".to_vec();
        let got = pairs(&build(&r, &s, &[]));
        assert!(got.contains(&("PATH_TRANSLATED".to_owned(), "/x/y".to_owned())));
    }

    #[test]
    fn pass_env_may_replace_path_but_not_request_variables() {
        let r = req(&[(b"QUERY_STRING", b"from-request")]);
        let passed = [
            ("PATH".to_owned(), OsString::from("/opt/bin")),
            ("QUERY_STRING".to_owned(), OsString::from("from-daemon")),
        ];
        let got = pairs(&build(&r, &ScriptVars::default(), &passed));
        assert_eq!(got[0], ("PATH".to_owned(), "/opt/bin".to_owned()));
        assert!(got.contains(&("QUERY_STRING".to_owned(), "from-request".to_owned())));
    }
}
