//! The protocol core stays pure: no file under src/fastcgi/proto/ names an I/O, clock, thread or OS module.

use std::path::{Path, PathBuf};

/// Paths the protocol core must never name: I/O, sockets, files, clocks, threads, processes,
/// the environment, and the crate's own OS and server modules.
const FORBIDDEN: &[&str] = &[
    "std::io",
    "std::net",
    "std::fs",
    "std::time",
    "std::thread",
    "std::process",
    "std::env",
    "std::os",
    "core::time",
    "nix",
    "libc",
    "Instant",
    "SystemTime",
    "crate::os",
    "crate::net",
    "crate::gateway",
    "crate::fastcgi::server",
    "super::server",
];

/// The Rust files of the protocol core.
fn proto_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fastcgi/proto");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    files
}

/// The code of a file without comments and string literals, so only real paths are seen.
fn code_only(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    let mut block = 0;
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('/', Some('*')) => {
                chars.next();
                block += 1;
            }
            ('*', Some('/')) if block > 0 => {
                chars.next();
                block -= 1;
            }
            _ if block > 0 => {}
            ('/', Some('/')) => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('"', _) => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

/// Every occurrence of `name` as a whole path segment (not inside a longer identifier).
fn mentions(code: &str, name: &str) -> Vec<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(name)
        .filter(|(at, _)| {
            let before = code[..*at].chars().next_back();
            let after = code[at + name.len()..].chars().next();
            !before.is_some_and(|c| ident(c) || c == ':') && !after.is_some_and(ident)
        })
        .map(|(at, _)| code[..at].lines().count().max(1))
        .collect()
}

/// The paths brought in by `use` declarations, brace groups expanded one level
/// (`use std::{io, fmt}` gives `std::io` and `std::fmt`).
fn use_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for decl in code.split(';') {
        let decl = decl.trim();
        let Some(rest) = decl
            .strip_prefix("use ")
            .or_else(|| decl.strip_prefix("pub use "))
            .or_else(|| decl.split_once(") use ").map(|(_, r)| r))
        else {
            continue;
        };
        let rest: String = rest.split_whitespace().collect();
        match rest.split_once('{') {
            Some((prefix, group)) => {
                for item in group.trim_end_matches('}').split(',') {
                    let item = item.split('{').next().unwrap_or_default();
                    paths.push(format!("{prefix}{item}"));
                }
            }
            None => paths.push(rest),
        }
    }
    paths
}

/// The forbidden path a `use` path starts with, if any.
fn forbidden_use(path: &str) -> Option<&'static str> {
    FORBIDDEN
        .iter()
        .find(|f| path == **f || path.starts_with(&format!("{f}::")))
        .copied()
}

#[test]
fn proto_names_no_io_clock_or_os_module() {
    let files = proto_files();
    assert!(
        files.len() >= 6,
        "expected the proto files, found {files:?}"
    );
    // The proto modules themselves (`pub use connection::...` in mod.rs).
    let siblings: Vec<String> = files
        .iter()
        .filter_map(|f| Some(format!("{}::", f.file_stem()?.to_str()?)))
        .collect();
    let mut violations = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a proto file");
        let code = code_only(&text);
        for name in FORBIDDEN {
            for line in mentions(&code, name) {
                violations.push(format!("{}:{line}: {name}", file.display()));
            }
        }
        for path in use_paths(&code) {
            if let Some(name) = forbidden_use(&path) {
                violations.push(format!("{}: use {path} ({name})", file.display()));
            }
            let allowed = [
                "std::",
                "core::",
                "alloc::",
                "super::",
                "self::",
                "thiserror::",
            ];
            let sibling = siblings.iter().any(|m| path.starts_with(m.as_str()));
            if !sibling && !allowed.iter().any(|a| path.starts_with(a)) {
                violations.push(format!("{}: use {path}", file.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "proto/ must stay pure:\n{}",
        violations.join("\n")
    );
}

/// The checker itself finds what it must (and only that).
#[test]
fn purity_checker_sees_paths_not_comments() {
    let code = code_only(
        "use std::{io::Read, fmt};\n// std::net in a comment\nlet s = \"std::fs\";\n\
         fn f() { nix::unistd::getpid(); let _ = my_nix; }\n/* std::time */",
    );
    assert_eq!(mentions(&code, "std::io"), vec![] as Vec<usize>);
    assert_eq!(use_paths(&code), vec!["std::io::Read", "std::fmt"]);
    assert_eq!(forbidden_use("std::io::Read"), Some("std::io"));
    assert_eq!(forbidden_use("std::fmt"), None);
    assert_eq!(forbidden_use("std::iota"), None);
    assert_eq!(mentions(&code, "nix"), vec![4]);
    assert!(mentions(&code, "std::net").is_empty());
    assert!(mentions(&code, "std::fs").is_empty());
    assert!(mentions(&code, "std::time").is_empty());
}
