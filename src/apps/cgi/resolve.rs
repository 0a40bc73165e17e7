//! Maps a request to the one script file it may run inside DIR, with SCRIPT_NAME/PATH_INFO split.
//!
//! There is one splitting function, [`split_script`]: it walks a path below DIR one segment
//! at a time and stops at the first existing entry that is not a directory; the rest of the
//! path goes to the script as PATH_INFO (as Apache does). Nothing is percent-decoded: the
//! web server already did that once. [`check_script`] then decides whether that entry may
//! run, on its canonical path and on the file actually opened.

use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;
use nix::unistd::{AccessFlags, access};

use crate::gateway::{Environ, GatewayKind};

/// Why a request maps to no runnable script: the HTTP status to answer and a reason to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 403 or 404.
    pub status: u16,
    /// For the error log.
    pub reason: String,
}

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

/// The script directory, as configured and canonicalized.
#[derive(Debug, Clone)]
pub struct Root {
    /// DIR as the operator wrote it (trailing `/` removed).
    pub given: PathBuf,
    /// DIR with every symlink resolved: the containment reference.
    pub canonical: PathBuf,
}

impl Root {
    /// Resolves DIR, which must be a directory.
    pub fn new(dir: PathBuf) -> io::Result<Root> {
        let canonical = fs::canonicalize(&dir)?;
        if !fs::metadata(&canonical)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", dir.display()),
            ));
        }
        let given = dir.components().collect();
        Ok(Root { given, canonical })
    }
}

/// A script that passed every check, with the meta-variables derived from the split.
#[derive(Debug)]
pub struct Script {
    /// Canonical path of the file: what is executed, and SCRIPT_FILENAME.
    pub path: PathBuf,
    /// Its directory: the child's working directory.
    pub dir: PathBuf,
    /// SCRIPT_NAME for the script: the URL path up to and including the script.
    pub script_name: Vec<u8>,
    /// PATH_INFO for the script: the rest of the URL path.
    pub path_info: Vec<u8>,
    identity: (u64, u64),
    _handle: File,
}

impl Script {
    /// Re-checks, just before it runs, that the path still names the file that was checked.
    pub fn verify_unchanged(&self) -> Result<(), Refusal> {
        match fs::symlink_metadata(&self.path) {
            Ok(m) if m.is_file() && (m.dev(), m.ino()) == self.identity => Ok(()),
            _ => Err(refuse(403, "script changed while it was being checked")),
        }
    }
}

/// Where [`split_script`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The entry found (below the walk's root, not yet canonicalized).
    pub path: PathBuf,
    /// Bytes of the walked path that name it; the rest is PATH_INFO.
    pub consumed: usize,
}

/// `true` for bytes no path variable may hold: NUL, CR, LF.
fn has_bad_bytes(v: &[u8]) -> bool {
    v.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n'))
}

/// The one splitting function: walks `rel` below `root` segment by segment up to the first
/// existing entry that is not a directory. `.` and `..` segments, NUL, CR and LF are refused;
/// a path naming only directories is refused (403).
pub fn split_script(root: &Path, rel: &[u8]) -> Result<Split, Refusal> {
    if has_bad_bytes(rel) {
        return Err(refuse(400, "NUL, CR or LF in the script path"));
    }
    let mut cur = root.to_path_buf();
    let mut pos = 0;
    loop {
        while rel.get(pos) == Some(&b'/') {
            pos += 1;
        }
        let Some(tail) = rel.get(pos..).filter(|t| !t.is_empty()) else {
            return Err(refuse(403, "the path names a directory"));
        };
        let end = pos + tail.iter().position(|&b| b == b'/').unwrap_or(tail.len());
        let seg = &rel[pos..end];
        if seg == b"." || seg == b".." {
            return Err(refuse(404, "dot segment in the script path"));
        }
        cur.push(OsStr::from_bytes(seg));
        match fs::metadata(&cur) {
            Ok(m) if m.is_dir() => pos = end,
            Ok(_) => {
                return Ok(Split {
                    path: cur,
                    consumed: end,
                });
            }
            Err(e) => return Err(io_refusal(&e)),
        }
    }
}

fn io_refusal(e: &io::Error) -> Refusal {
    match e.kind() {
        io::ErrorKind::PermissionDenied => refuse(403, format!("script path: {e}")),
        _ if e.raw_os_error() == Some(nix::libc::ELOOP) => refuse(403, "symlink loop"),
        _ => refuse(404, "no such script"),
    }
}

/// Decides whether the entry found may run: its canonical path must lie inside DIR
/// (compared by components); the file opened there must be a regular file, executable,
/// neither setuid nor setgid, not writable by group or others, below no world-writable
/// directory of DIR, and (when a list is given) carry an allowed extension.
pub fn check_script(
    root: &Root,
    found: &Path,
    extensions: Option<&[String]>,
) -> Result<(PathBuf, File, Metadata), Refusal> {
    let canonical = fs::canonicalize(found).map_err(|e| io_refusal(&e))?;
    if canonical == root.canonical || !canonical.starts_with(&root.canonical) {
        return Err(refuse(
            403,
            "the script resolves outside the script directory",
        ));
    }
    if let Some(allowed) = extensions {
        let ext = canonical.extension().map(OsStr::as_bytes);
        if !allowed.iter().any(|a| ext == Some(a.as_bytes())) {
            return Err(refuse(403, "extension not allowed"));
        }
    }
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(&canonical)
        .map_err(|e| io_refusal(&e))?;
    let meta = file.metadata().map_err(|e| io_refusal(&e))?;
    let mode = meta.mode();
    if !meta.is_file() {
        return Err(refuse(403, "not a regular file"));
    }
    if mode & 0o6000 != 0 {
        return Err(refuse(403, "setuid or setgid file"));
    }
    if mode & 0o022 != 0 {
        return Err(refuse(403, "file writable by group or others"));
    }
    if mode & 0o111 == 0 || access(&canonical, AccessFlags::X_OK).is_err() {
        return Err(refuse(403, "file not executable"));
    }
    let mut dir = canonical.parent();
    while let Some(d) = dir.filter(|d| *d != root.canonical) {
        let m = fs::metadata(d).map_err(|e| io_refusal(&e))?;
        if m.mode() & 0o002 != 0 {
            return Err(refuse(403, "script below a world-writable directory"));
        }
        dir = d.parent();
    }
    Ok((canonical, file, meta))
}

/// `path` minus the `root` prefix, compared by components, as a `/`-joined relative path.
fn below(path: &[u8], root: &Path) -> Option<Vec<u8>> {
    let rest = Path::new(OsStr::from_bytes(path)).strip_prefix(root).ok()?;
    let mut rel = Vec::new();
    for c in rest.components() {
        let seg = match c {
            Component::Normal(s) => s.as_bytes(),
            Component::ParentDir => b"..",
            _ => continue,
        };
        rel.push(b'/');
        rel.extend_from_slice(seg);
    }
    Some(rel)
}

/// Finds the script a request names and checks it.
///
/// - SCRIPT_FILENAME, when it is an absolute path (`proxy:fcgi://...` values from Apache are
///   ignored) and the gateway is not CGI (there it names cgate itself), must lie below DIR
///   (as configured or canonical); its part below DIR is walked. What remains after the
///   script becomes PATH_INFO, ahead of any PATH_INFO the server sent.
/// - Otherwise SCRIPT_NAME + PATH_INFO is walked below DIR (DIR acts as the document root).
///   Under the CGI gateway SCRIPT_NAME names cgate itself, so only PATH_INFO is walked and
///   the script's SCRIPT_NAME starts with cgate's.
pub fn resolve(
    root: &Root,
    env: &Environ,
    extensions: Option<&[String]>,
) -> Result<Script, Refusal> {
    let script_name = env.script_name();
    let path_info = env.path_info();
    if has_bad_bytes(script_name) || has_bad_bytes(path_info) {
        return Err(refuse(400, "NUL, CR or LF in SCRIPT_NAME or PATH_INFO"));
    }
    let cgi = env.gateway.kind == GatewayKind::Cgi;
    let filename = env
        .get("SCRIPT_FILENAME")
        .filter(|f| !cgi && f.starts_with(b"/"));
    let (split, name, info) = if let Some(f) = filename {
        if has_bad_bytes(f) {
            return Err(refuse(400, "NUL, CR or LF in SCRIPT_FILENAME"));
        }
        let rel = below(f, &root.given)
            .or_else(|| below(f, &root.canonical))
            .ok_or_else(|| refuse(403, "SCRIPT_FILENAME outside the script directory"))?;
        let split = split_script(&root.canonical, &rel)?;
        let extra = rel.get(split.consumed..).unwrap_or_default();
        let name = script_name.strip_suffix(extra).unwrap_or(script_name);
        let mut info = extra.to_vec();
        info.extend_from_slice(path_info);
        (split, name.to_vec(), info)
    } else {
        let (mount, rel) = if cgi {
            (script_name, path_info.to_vec())
        } else {
            (&[][..], [script_name, path_info].concat())
        };
        let split = split_script(&root.canonical, &rel)?;
        let mut name = mount.to_vec();
        name.extend_from_slice(rel.get(..split.consumed).unwrap_or_default());
        let info = rel.get(split.consumed..).unwrap_or_default().to_vec();
        (split, name, info)
    };
    let (path, handle, meta) = check_script(root, &split.path, extensions)?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.canonical.clone());
    Ok(Script {
        path,
        dir,
        script_name: name,
        path_info: info,
        identity: (meta.dev(), meta.ino()),
        _handle: handle,
    })
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
