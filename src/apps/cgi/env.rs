//! The script's environment: RFC 3875 meta-variables and HTTP_* from the request, nothing else.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::gateway::Environ;

/// The fixed PATH a script gets (unless `pass_env` names PATH).
pub const SCRIPT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Meta-variables copied from the request when present (RFC 3875 section 4.1 and common
/// extras). GATEWAY_INTERFACE, SCRIPT_NAME, PATH_INFO, PATH_TRANSLATED and SCRIPT_FILENAME
/// are set by the runner instead.
pub const META_VARS: [&str; 20] = [
    "AUTH_TYPE",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "QUERY_STRING",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "REMOTE_IDENT",
    "REMOTE_USER",
    "REQUEST_METHOD",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
    "REQUEST_URI",
    "DOCUMENT_ROOT",
    "HTTPS",
    "REQUEST_SCHEME",
    "REMOTE_PORT",
    "SERVER_ADDR",
    "REDIRECT_STATUS",
];

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
/// operator's `pass_env` values (snapshotted from the daemon at start-up), the copied
/// meta-variables, the runner's own variables, then the request's valid `HTTP_*` headers
/// (never `HTTP_PROXY`, in any case). Later entries replace earlier ones of the same name;
/// values holding NUL are left out (they cannot be passed).
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
    for name in META_VARS {
        if let Some(v) = req.get(name) {
            put(name.as_bytes(), v);
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
            (b"DAEMON_SECRET", b"hunter2"),
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
            ("CONTENT_LENGTH", "5"),
            ("QUERY_STRING", "a=1"),
            ("REQUEST_METHOD", "POST"),
            ("DOCUMENT_ROOT", "/srv/www/"),
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
