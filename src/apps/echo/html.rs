//! The echo app's HTML view: content negotiation on `Accept`, and the page itself.

use std::fmt::Write as _;

use crate::gateway::Environ;

/// A q-value in thousandths (`q=0.5` is 500); `None` when malformed (RFC 9110 12.4.2).
fn qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .enumerate()
    {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The q-value `accept` gives `media` (`type/subtype`): that of the most specific matching
/// range (`type/subtype` over `type/*` over `*/*`), 0 when none matches.
pub fn quality(accept: &str, media: &str) -> u16 {
    let (mtype, _) = media.split_once('/').unwrap_or((media, ""));
    let mut best: Option<(u8, u16)> = None;
    for range in accept.split(',') {
        let mut params = range.split(';');
        let name = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = Some(1000);
        for p in params {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = qvalue(v.trim());
                }
            }
        }
        let Some(q) = q else { continue };
        let specificity = match name.split_once('/') {
            Some(("*", "*")) => 0,
            Some((t, "*")) if t == mtype => 1,
            _ if name == media => 2,
            _ => continue,
        };
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// `true` when the `Accept` header prefers `text/html` to `application/json`.
pub fn wanted(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
        return false;
    };
    quality(accept, "text/html") > quality(accept, "application/json")
}

/// `s` with `&`, `<`, `>`, `"` and `'` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;\
padding:0 1rem;color:#1d1d1f;background:#fafafa}\
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:1.8rem}\
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002}\
th,td{text-align:left;padding:.35rem .7rem;border-bottom:1px solid #e5e5e5;vertical-align:top}\
th{width:14rem;font-weight:600}td{font-family:ui-monospace,monospace;word-break:break-all}\
.request{font-size:1.15rem}.request code{background:#e8eefc;padding:.15rem .4rem;border-radius:4px}\
.empty{color:#999;font-style:italic}.note{color:#666}";

fn row(out: &mut String, name: &str, value: &str) {
    let cell = if value.is_empty() {
        "<span class=\"empty\">(empty)</span>".to_owned()
    } else {
        escape(value)
    };
    let _ = writeln!(out, "<tr><th>{}</th><td>{cell}</td></tr>", escape(name));
}

/// The page: the request line, the gateway facts, the body's length and sha256, and every
/// environ variable (sorted by name; bytes that are not UTF-8 shown as ISO-8859-1).
pub fn page(environ: &Environ, length: u64, sha256: &str) -> String {
    let method = super::text(environ.method().as_bytes()).0;
    let uri = environ
        .get("REQUEST_URI")
        .map(|u| super::text(u).0)
        .unwrap_or_else(|| super::text(environ.path_info()).0);
    let g = environ.gateway;
    let mut vars: Vec<(String, String)> = environ
        .iter()
        .map(|(n, v)| (super::text(n).0, super::text(v).0))
        .collect();
    vars.sort();
    let mut out = String::with_capacity(4096);
    let request = escape(&format!("{method} {uri}"));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>cgate echo: {request}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>cgate echo</h1>\n<p class=\"request\"><code>{request}</code> through the \
         <b>{}</b> gateway</p>\n",
        g.kind.as_str()
    );
    out.push_str("<h2>Gateway</h2>\n<table>\n");
    row(&mut out, "kind", g.kind.as_str());
    row(&mut out, "url_scheme", g.url_scheme());
    row(&mut out, "multithread", &g.multithread.to_string());
    row(&mut out, "multiprocess", &g.multiprocess.to_string());
    row(&mut out, "run_once", &g.run_once.to_string());
    out.push_str("</table>\n<h2>Request body</h2>\n<table>\n");
    row(&mut out, "length", &length.to_string());
    row(&mut out, "sha256", sha256);
    let _ = write!(
        out,
        "</table>\n<h2>Environ ({} variables)</h2>\n<table>\n",
        vars.len()
    );
    for (n, v) in &vars {
        row(&mut out, n, v);
    }
    out.push_str(
        "</table>\n<p class=\"note\">Clients that do not prefer text/html (curl, scripts) get \
         the same facts as JSON.</p>\n</body>\n</html>\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{GatewayFacts, GatewayKind};

    #[test]
    fn negotiation() {
        let chromium = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,\
                        image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";
        assert!(wanted(Some(chromium.as_bytes())));
        assert!(!wanted(None));
        assert!(!wanted(Some(b"*/*")));
        assert!(!wanted(Some(b"application/json")));
        assert!(!wanted(Some(b"text/html;q=0.5, application/json")));
        assert!(wanted(Some(b"text/html, application/json;q=0.9")));
        assert!(wanted(Some(b"text/*, */*;q=0.1")));
        assert!(!wanted(Some(b"text/html;q=0, */*")));
        assert!(!wanted(Some(b"text/html;q=2")));
        assert!(!wanted(Some(b"\xff")));
        assert_eq!(quality("text/html;q=0.25", "text/html"), 250);
        assert_eq!(quality("*/*;q=0.8, text/html;q=0.3", "text/html"), 300);
        assert_eq!(quality("image/png", "text/html"), 0);
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.125"), Some(125));
        assert_eq!(qvalue("0"), Some(0));
        for bad in ["1.5", "0.1234", "2", "", "x", "-0"] {
            assert_eq!(qvalue(bad), None, "{bad}");
        }
    }

    #[test]
    fn page_escapes_and_lists_everything() {
        let mut env = Environ::new(GatewayFacts {
            kind: GatewayKind::Http,
            https: false,
            multithread: true,
            multiprocess: false,
            run_once: false,
        });
        env.set("REQUEST_METHOD", "GET");
        env.set("REQUEST_URI", "/a?<b>&c");
        env.set("QUERY_STRING", "");
        env.set("HTTP_X", b"\xe9\"'");
        let p = page(&env, 3, "abc");
        assert!(p.starts_with("<!DOCTYPE html>\n"));
        assert!(p.contains("<title>cgate echo: GET /a?&lt;b&gt;&amp;c</title>"));
        assert!(p.contains("<tr><th>HTTP_X</th><td>\u{e9}&quot;&#39;</td></tr>"));
        assert!(p.contains(
            "<tr><th>QUERY_STRING</th><td><span class=\"empty\">(empty)</span></td></tr>"
        ));
        assert!(p.contains("<tr><th>length</th><td>3</td></tr>"));
        assert!(p.contains("<h2>Environ (4 variables)</h2>"));
        assert!(p.contains("<tr><th>kind</th><td>http</td></tr>"));
        assert!(!p.contains("<b>&"));
    }
}
