//! Loads the shipped `conf/` snippets and fills in their `@PLACEHOLDER@`s, so the docs are what the tests run.

use super::manifest_dir;
use std::path::Path;

/// Reads `conf/<rel>` and replaces each `(placeholder, value)`; panics if an `@NAME@`
/// placeholder is left over or a given one does not occur.
pub fn render(rel: &str, vars: &[(&str, &str)]) -> String {
    let path = manifest_dir().join("conf").join(rel);
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    for (name, value) in vars {
        assert!(text.contains(name), "{rel} has no {name}");
        text = text.replace(name, value);
    }
    if let Some(left) = leftover_placeholder(&text) {
        panic!("{rel}: placeholder {left} was not substituted");
    }
    text
}

fn leftover_placeholder(text: &str) -> Option<String> {
    let b = text.as_bytes();
    for (i, _) in text.match_indices('@') {
        let rest = &b[i + 1..];
        let n = rest
            .iter()
            .take_while(|c| c.is_ascii_uppercase() || **c == b'_')
            .count();
        if n > 0 && rest.get(n) == Some(&b'@') {
            return Some(text[i..i + n + 2].to_string());
        }
    }
    None
}

fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// `conf/nginx/cgate-upstream.conf` (http level): upstream `cgate` with keepalive to `sock`.
pub fn nginx_upstream(sock: &Path) -> String {
    render("nginx/cgate-upstream.conf", &[("@SOCKET@", s(sock))])
}

/// `conf/nginx/cgate-site.conf` (server level; needs [`nginx_upstream`]). With
/// `keep_conn == false` every `fastcgi_keep_conn on;` becomes `off` (a new connection per request).
pub fn nginx_site(keep_conn: bool) -> String {
    let text = render("nginx/cgate-site.conf", &[]);
    if keep_conn {
        return text;
    }
    let on = "fastcgi_keep_conn on;";
    assert!(text.contains(on), "cgate-site.conf has no `{on}`");
    text.replace(on, "fastcgi_keep_conn off;")
}

/// `conf/nginx/cgate-cgi-bin.conf` (server level): `/cgi-bin/NAME/...` -> scripts in `cgi_dir`
/// through the FastCGI server on `sock` (cgate `--app cgi:DIR` or fcgiwrap).
pub fn nginx_cgi_bin(sock: &Path, cgi_dir: &Path) -> String {
    render(
        "nginx/cgate-cgi-bin.conf",
        &[("@SOCKET@", s(sock)), ("@CGI_DIR@", s(cgi_dir))],
    )
}

/// `conf/apache/cgate-cgi.conf`: ScriptAlias `/cgi-bin/` -> `cgi_dir` with CGIPassAuth.
pub fn apache_cgi(cgi_dir: &Path) -> String {
    render("apache/cgate-cgi.conf", &[("@CGI_DIR@", s(cgi_dir))])
}

/// `conf/apache/cgate-cgi-mount.conf`: the cgate binary at `cgate` run as CGI for `/app`,
/// with `CGATE_APP` set to `app`.
pub fn apache_cgi_mount(cgate: &Path, app: &str) -> String {
    render(
        "apache/cgate-cgi-mount.conf",
        &[("@CGATE@", s(cgate)), ("@APP@", app)],
    )
}

/// `conf/apache/cgate-proxy-fcgi.conf`: the whole site proxied to the FastCGI socket `sock`.
pub fn apache_proxy_fcgi(sock: &Path) -> String {
    render("apache/cgate-proxy-fcgi.conf", &[("@SOCKET@", s(sock))])
}
