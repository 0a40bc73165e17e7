//! Environ building from PARAMS, CONTENT_LENGTH parsing and a CGI script's environment:
//! later duplicates win except an `HTTP_*` header given twice (its first value stays and the
//! first such name is reported ambiguous), dropped names stay out, CONTENT_LENGTH is
//! `[0-9]+` within u64 or refused, and a script environment holds exactly the runner's variables and the request
//! variables a script may get (checked against a reference rule), without NUL or `=`.
//!
//! Library paths: `cgate::fastcgi::proto::pairs::decode_pairs`, `cgate::gateway::{Environ,
//! parse_content_length}`, `cgate::gateway::environ::DROPPED_ON_INPUT`,
//! `cgate::fastcgi::server::responder::FASTCGI_FACTS`, `cgate::apps::cgi::env::{build,
//! ScriptVars, RUNNER_VARS, DENIED_VARS, DENIED_PREFIXES}`.

use cgate::apps::cgi::env::{DENIED_PREFIXES, DENIED_VARS, RUNNER_VARS, ScriptVars, build};
use cgate::fastcgi::proto::PairLimits;
use cgate::fastcgi::proto::pairs::decode_pairs;
use cgate::fastcgi::server::responder::FASTCGI_FACTS;
use cgate::gateway::environ::DROPPED_ON_INPUT;
use cgate::gateway::{Environ, parse_content_length};
use std::os::unix::ffi::OsStrExt;

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
    let mut ambiguous = None;
    for (i, (name, _)) in named.iter().enumerate() {
        if DROPPED_ON_INPUT.contains(name) {
            assert_eq!(env.get(name), None, "{name:?} dropped");
            continue;
        }
        let header = name.starts_with(b"HTTP_");
        let mut same = named.iter().filter(|(n, _)| n == name).map(|(_, v)| *v);
        // A request header given twice keeps its first value (and makes the request
        // ambiguous); any other variable follows the last word.
        let want = if header {
            same.next()
        } else {
            same.next_back()
        };
        assert_eq!(env.get(name), want, "{name:?}: first header, last other");
        let repeated = named[..i].iter().any(|(n, _)| n == name);
        if header && repeated {
            ambiguous.get_or_insert(*name);
        }
        distinct += usize::from(!repeated);
    }
    assert_eq!(env.len(), distinct, "one variable a name");
    assert_eq!(
        env.ambiguous_header(),
        ambiguous,
        "the first header given twice"
    );
    content_length(env.get("CONTENT_LENGTH"));
    script_environment(&env);
}

fn content_length(v: Option<&[u8]>) {
    let ours = parse_content_length(v).map_err(drop);
    let want = v.map_or(Ok(None), reference_content_length);
    assert_eq!(ours, want, "CONTENT_LENGTH {v:?}");
}

/// The reference rule for a request variable reaching a script: a `[A-Za-z_][A-Za-z0-9_]*`
/// name that is either an `HTTP_*` header other than HTTP_PROXY, or (compared ignoring case)
/// not `HTTP_*`, not one the runner sets, not denied, without a denied prefix.
fn reaches_script(name: &[u8]) -> bool {
    let valid = name
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    let is = |k: &&str| name.eq_ignore_ascii_case(k.as_bytes());
    let has_prefix = |p: &str| {
        name.get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p.as_bytes()))
    };
    if !valid {
        return false;
    }
    if name.starts_with(b"HTTP_") {
        return !name.eq_ignore_ascii_case(b"HTTP_PROXY");
    }
    !has_prefix("HTTP_")
        && !RUNNER_VARS.iter().any(is)
        && !DENIED_VARS.iter().any(is)
        && !DENIED_PREFIXES.iter().any(|p| has_prefix(p))
}

/// The script's environment holds exactly: PATH and the runner's variables, and every
/// request variable the reference rule lets through (with its request value, unless it
/// holds a NUL), each once, without NUL or `=`.
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
        assert!(!out[..i].iter().any(|(m, _)| m == name), "{n:?} twice");
        match RUNNER_VARS.iter().find(|k| k.as_bytes() == n) {
            Some(&"GATEWAY_INTERFACE") => assert_eq!(v, b"CGI/1.1"),
            Some(&"SCRIPT_NAME") => assert_eq!(v, vars.script_name),
            Some(&"SCRIPT_FILENAME") => assert_eq!(v, vars.script_filename),
            Some(&"PATH_INFO") => assert_eq!(v, vars.path_info),
            Some(_) => {}
            None => {
                assert!(reaches_script(n), "{n:?} passed");
                assert_eq!(env.get(n), Some(v), "{n:?} has the request's value");
            }
        }
    }
    for (name, value) in env.iter() {
        if reaches_script(name) && !value.contains(&0) {
            assert!(
                out.iter().any(|(n, _)| n.as_bytes() == name),
                "{name:?} left out"
            );
        }
    }
}
