//! Environ building from PARAMS, CONTENT_LENGTH parsing and a CGI script's environment:
//! later duplicates win, dropped names stay out, CONTENT_LENGTH is `[0-9]+` within u64 or
//! refused, and a script environment holds only names a script may get, without NUL or `=`.
//!
//! Library paths: `cgate::fastcgi::proto::pairs::decode_pairs`, `cgate::gateway::{Environ,
//! parse_content_length}`, `cgate::gateway::environ::DROPPED_ON_INPUT`,
//! `cgate::fastcgi::server::responder::FASTCGI_FACTS`, `cgate::apps::cgi::env::{build,
//! ScriptVars, META_VARS, valid_name}`.

use cgate::apps::cgi::env::{META_VARS, ScriptVars, build, valid_name};
use cgate::fastcgi::proto::PairLimits;
use cgate::fastcgi::proto::pairs::decode_pairs;
use cgate::fastcgi::server::responder::FASTCGI_FACTS;
use cgate::gateway::environ::DROPPED_ON_INPUT;
use cgate::gateway::{Environ, parse_content_length};
use std::os::unix::ffi::OsStrExt;

/// Names the script runner sets itself.
const RUNNER_VARS: [&str; 6] = [
    "PATH",
    "GATEWAY_INTERFACE",
    "SCRIPT_NAME",
    "SCRIPT_FILENAME",
    "PATH_INFO",
    "PATH_TRANSLATED",
];

/// The reference rule: digits only, non-empty, within u64; empty means "not given".
fn reference_content_length(v: &[u8]) -> Result<Option<u64>, ()> {
    if v.is_empty() {
        return Ok(None);
    }
    if !v.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    std::str::from_utf8(v)
        .map_err(drop)?
        .parse()
        .map(Some)
        .map_err(drop)
}

/// `data` is a PARAMS stream.
pub fn check(data: &[u8]) {
    let mut pairs = Vec::new();
    if decode_pairs(data, &PairLimits::default(), &mut pairs).is_err() {
        // Raw bytes as a CONTENT_LENGTH value still exercise the parser.
        content_length(Some(data));
        return;
    }
    let named: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .map(|(n, v)| (&data[n.clone()], &data[v.clone()]))
        .collect();
    let env = Environ::from_indexed(data.to_vec(), pairs, FASTCGI_FACTS);
    let mut distinct = 0;
    for (i, (name, _)) in named.iter().enumerate() {
        let last = named.iter().rev().find(|(n, _)| n == name).map(|(_, v)| *v);
        if DROPPED_ON_INPUT.contains(name) {
            assert_eq!(env.get(name), None, "{name:?} dropped");
            continue;
        }
        assert_eq!(env.get(name), last, "the later duplicate wins");
        distinct += usize::from(!named[..i].iter().any(|(n, _)| n == name));
    }
    assert_eq!(env.len(), distinct, "one variable a name");
    content_length(env.get("CONTENT_LENGTH"));
    script_environment(&env);
}

fn content_length(v: Option<&[u8]>) {
    let ours = parse_content_length(v).map_err(drop);
    let want = v.map_or(Ok(None), reference_content_length);
    assert_eq!(ours, want, "CONTENT_LENGTH {v:?}");
}

fn script_environment(env: &Environ) {
    let vars = ScriptVars {
        script_name: b"/cgi-bin/x".to_vec(),
        path_info: env.path_info().to_vec(),
        script_filename: b"/srv/cgi-bin/x".to_vec(),
    };
    let out = build(env, &vars, &[]);
    for (i, (name, value)) in out.iter().enumerate() {
        let (n, v) = (name.as_bytes(), value.as_bytes());
        assert!(
            !n.contains(&b'=') && !n.contains(&0) && !v.contains(&0),
            "{n:?}={v:?}"
        );
        assert!(!n.eq_ignore_ascii_case(b"HTTP_PROXY"), "httpoxy");
        let known = RUNNER_VARS
            .iter()
            .chain(&META_VARS)
            .any(|k| k.as_bytes() == n);
        assert!(
            known || (n.starts_with(b"HTTP_") && valid_name(n)),
            "{n:?} passed"
        );
        assert!(!out[..i].iter().any(|(m, _)| m == name), "{n:?} twice");
    }
}
