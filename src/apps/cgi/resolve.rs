//! Maps a request to the one script file it may run inside DIR, with SCRIPT_NAME/PATH_INFO split.
//!
//! There is one splitting function, [`split_script`]: it walks a path below DIR one segment
//! at a time and stops at the first existing entry that is not a directory; the rest of the
//! path goes to the script as PATH_INFO (as Apache does). Nothing is percent-decoded: the
//! web server already did that once. [`check_script`] then decides whether that entry may
//! run, on the file actually opened (which must be the entry the walk checked).

use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;
use nix::unistd::{AccessFlags, access};

use crate::gateway::{Environ, GatewayKind};

/// Why a request maps to no runnable script: the HTTP status to answer, a reason to log and
/// the file it is about (the entry refused, or the path asked for when none was reached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 403 or 404.
    pub status: u16,
    /// For the error log: the rule that refused it.
    pub reason: String,
    /// The file (or link, or directory) refused, for the error log.
    pub file: String,
}

fn refuse(status: u16, reason: impl Into<String>, file: &Path) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
        file: file.display().to_string(),
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
    /// Resolves DIR, which must be a directory not writable by others (0777 and 1777 are
    /// refused: anyone could plant a script or a link there).
    pub fn new(dir: PathBuf) -> io::Result<Root> {
        let canonical = fs::canonicalize(&dir)?;
        let meta = fs::metadata(&canonical)?;
        let invalid = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("script directory {}: {why}", dir.display()),
            )
        };
        if !meta.is_dir() {
            return Err(invalid("not a directory"));
        }
        if meta.mode() & 0o002 != 0 {
            return Err(invalid(&format!(
                "world-writable (mode {:o}); refusing to run scripts from it",
                meta.mode() & 0o7777
            )));
        }
        let given = dir.components().collect();
        Ok(Root { given, canonical })
    }
}

/// A script that passed every check, with the meta-variables derived from the split.
#[derive(Debug)]
pub struct Script {
    /// Real path of the file (every link resolved): SCRIPT_FILENAME and the log's name.
    pub path: PathBuf,
    /// Its directory: the child's working directory.
    pub dir: PathBuf,
    /// SCRIPT_NAME for the script: the URL path up to and including the script.
    pub script_name: Vec<u8>,
    /// PATH_INFO for the script: the rest of the URL path.
    pub path_info: Vec<u8>,
    /// The file that was checked, open: what is executed (never the path again).
    pub file: File,
    /// The file starts with `#!`: the kernel hands it to its interpreter as `/dev/fd/N`.
    pub interpreted: bool,
}

/// Where [`split_script`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The entry found, its links resolved (it may lie outside DIR through a followed link).
    pub path: PathBuf,
    /// Bytes of the walked path that name it; the rest is PATH_INFO.
    pub consumed: usize,
    /// Device and inode of what was checked: the file opened later must be this one.
    pub identity: (u64, u64),
}

/// `true` for bytes no path variable may hold: NUL, CR, LF.
fn has_bad_bytes(v: &[u8]) -> bool {
    v.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n'))
}

/// Most links followed in one chain.
const MAX_HOPS: usize = 40;

/// The one splitting function: walks `rel` below DIR segment by segment up to the first
/// existing entry that is not a directory. `.` and `..` segments, NUL, CR and LF are refused;
/// a path naming only directories is refused (403), as is a world-writable directory on the
/// way. A link met on the way (at any depth, through chains) is followed as Apache's
/// `SymLinksIfOwnerMatch` does: every link of the chain must be owned by root or by the
/// owner of what it finally names, and that target's directory may not be world-writable.
pub fn split_script(root: &Root, rel: &[u8]) -> Result<Split, Refusal> {
    if has_bad_bytes(rel) {
        return Err(refuse(
            400,
            "NUL, CR or LF in the script path",
            &root.canonical,
        ));
    }
    let mut cur = root.canonical.clone();
    let mut pos = 0;
    loop {
        while rel.get(pos) == Some(&b'/') {
            pos += 1;
        }
        let Some(tail) = rel.get(pos..).filter(|t| !t.is_empty()) else {
            return Err(refuse(403, "the path names a directory", &cur));
        };
        let end = pos + tail.iter().position(|&b| b == b'/').unwrap_or(tail.len());
        let seg = &rel[pos..end];
        if seg == b"." || seg == b".." {
            return Err(refuse(404, "dot segment in the script path", &cur));
        }
        cur.push(OsStr::from_bytes(seg));
        let mut meta = fs::symlink_metadata(&cur).map_err(|e| io_refusal(&e, &cur))?;
        if meta.file_type().is_symlink() {
            (cur, meta) = follow_link(root, &cur, &meta)?;
        }
        if !meta.is_dir() {
            return Ok(Split {
                path: cur,
                consumed: end,
                identity: (meta.dev(), meta.ino()),
            });
        }
        if meta.mode() & 0o002 != 0 {
            return Err(refuse(403, "world-writable directory on the way", &cur));
        }
        pos = end;
    }
}

/// Follows the link at `link` (at any depth of the walk, through chains of links) like
/// Apache's `SymLinksIfOwnerMatch`: every link of the chain must be owned by root or by the
/// owner of what the chain finally names, wherever that is; a link planted by anyone else
/// is refused. What it names must not sit in a world-writable directory ([`dirs_ok`]).
/// Answers the real path and its metadata.
fn follow_link(root: &Root, link: &Path, first: &Metadata) -> Result<(PathBuf, Metadata), Refusal> {
    let real = fs::canonicalize(link).map_err(|e| io_refusal(&e, link))?;
    let meta = fs::metadata(&real).map_err(|e| io_refusal(&e, &real))?;
    let mut hop = link.to_path_buf();
    let mut hop_meta = first.clone();
    for _ in 0..MAX_HOPS {
        if !hop_meta.file_type().is_symlink() {
            break;
        }
        let owner = hop_meta.uid();
        if owner != 0 && owner != meta.uid() {
            let why = format!(
                "symlink owned by uid {owner} names {} owned by uid {} \
                 (links are followed only when owned by root or by the target's owner)",
                real.display(),
                meta.uid()
            );
            return Err(refuse(403, why, &hop));
        }
        let text = fs::read_link(&hop).map_err(|e| io_refusal(&e, &hop))?;
        hop = hop.parent().unwrap_or(Path::new("/")).join(text);
        hop_meta = fs::symlink_metadata(&hop).map_err(|e| io_refusal(&e, &hop))?;
    }
    dirs_ok(root, &real)?;
    Ok((real, meta))
}

/// The directories above `real` (a link's resolved target): inside DIR none may be
/// world-writable; outside DIR its own directory may not be, and higher ones only with the
/// sticky bit (like `/tmp`, where nobody can replace another user's entries).
fn dirs_ok(root: &Root, real: &Path) -> Result<(), Refusal> {
    let inside = real.starts_with(&root.canonical);
    for (i, d) in real.ancestors().skip(1).enumerate() {
        if inside && d == root.canonical {
            break;
        }
        let m = fs::metadata(d).map_err(|e| io_refusal(&e, d))?;
        let (open, sticky) = (m.mode() & 0o002 != 0, m.mode() & 0o1000 != 0);
        if open && (inside || i == 0 || !sticky) {
            return Err(refuse(
                403,
                "a link's target lies in a world-writable directory",
                d,
            ));
        }
    }
    Ok(())
}

fn io_refusal(e: &io::Error, file: &Path) -> Refusal {
    match e.kind() {
        io::ErrorKind::PermissionDenied => refuse(403, format!("script path: {e}"), file),
        _ if e.raw_os_error() == Some(nix::libc::ELOOP) => refuse(403, "symlink loop", file),
        _ => refuse(404, "no such script", file),
    }
}

/// Opens what the walk found, without following a link, for reading when allowed (to see a
/// `#!`) and else as a path only; close-on-exec and non-blocking (a FIFO never blocks).
fn open_checked(path: &Path) -> io::Result<(File, bool)> {
    let base = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let open = |flags: OFlag| {
        OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits())
            .open(path)
    };
    match open(base) {
        Ok(f) => {
            let mut magic = [0u8; 2];
            let n = f.read_at(&mut magic, 0).unwrap_or(0);
            Ok((f, n == 2 && magic == *b"#!"))
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            Ok((open(base | OFlag::O_PATH)?, false))
        }
        Err(e) => Err(e),
    }
}

/// Decides whether the entry found may run, on the file actually opened: it must be the
/// entry the walk checked (same device and inode), a regular file, executable, neither
/// setuid nor setgid, not writable by group or others, and (when a list is given) carry an
/// allowed extension.
pub fn check_script(split: &Split, extensions: Option<&[String]>) -> Result<(File, bool), Refusal> {
    let path = &split.path;
    if let Some(allowed) = extensions {
        let ext = path.extension().map(OsStr::as_bytes);
        if !allowed.iter().any(|a| ext == Some(a.as_bytes())) {
            return Err(refuse(403, "extension not allowed", path));
        }
    }
    let meta = fs::symlink_metadata(path).map_err(|e| io_refusal(&e, path))?;
    if !meta.is_file() {
        return Err(refuse(403, "not a regular file", path));
    }
    let (file, interpreted) = open_checked(path).map_err(|e| io_refusal(&e, path))?;
    let meta = file.metadata().map_err(|e| io_refusal(&e, path))?;
    if (meta.dev(), meta.ino()) != split.identity || !meta.is_file() {
        return Err(refuse(
            403,
            "script changed while it was being checked",
            path,
        ));
    }
    let mode = meta.mode();
    if mode & 0o6000 != 0 {
        return Err(refuse(403, "setuid or setgid file", path));
    }
    if mode & 0o022 != 0 {
        return Err(refuse(403, "file writable by group or others", path));
    }
    if mode & 0o111 == 0 || access(path, AccessFlags::X_OK).is_err() {
        return Err(refuse(403, "file not executable", path));
    }
    Ok((file, interpreted))
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
/// - Otherwise SCRIPT_NAME + PATH_INFO is walked below DIR (DIR acts as the document root),
///   except SCRIPT_NAME's mount point (a `--mount` prefix the router moved there): that
///   names no directory, so only what follows it is walked and the script's SCRIPT_NAME
///   starts with it. Under the CGI gateway all of SCRIPT_NAME (cgate itself) is such a
///   prefix.
pub fn resolve(
    root: &Root,
    env: &Environ,
    extensions: Option<&[String]>,
) -> Result<Script, Refusal> {
    let script_name = env.script_name();
    let path_info = env.path_info();
    let asked = |why: &str, status: u16, what: &[u8]| Refusal {
        status,
        reason: why.to_owned(),
        file: format!("{:?}", String::from_utf8_lossy(what)),
    };
    if has_bad_bytes(script_name) || has_bad_bytes(path_info) {
        let what = [script_name, path_info].concat();
        return Err(asked(
            "NUL, CR or LF in SCRIPT_NAME or PATH_INFO",
            400,
            &what,
        ));
    }
    let cgi = env.gateway.kind == GatewayKind::Cgi;
    let filename = env
        .get("SCRIPT_FILENAME")
        .filter(|f| !cgi && f.starts_with(b"/"));
    let (split, name, info) = if let Some(f) = filename {
        if has_bad_bytes(f) {
            return Err(asked("NUL, CR or LF in SCRIPT_FILENAME", 400, f));
        }
        let rel = below(f, &root.given)
            .or_else(|| below(f, &root.canonical))
            .ok_or_else(|| asked("SCRIPT_FILENAME outside the script directory", 403, f))?;
        let split = split_script(root, &rel)?;
        let extra = rel.get(split.consumed..).unwrap_or_default();
        let name = script_name.strip_suffix(extra).unwrap_or(script_name);
        let mut info = extra.to_vec();
        info.extend_from_slice(path_info);
        (split, name.to_vec(), info)
    } else {
        let mount = if cgi {
            script_name.len()
        } else {
            env.mount_point().len()
        };
        let (mount, walked) = script_name.split_at(mount.min(script_name.len()));
        let rel = [walked, path_info].concat();
        let split = split_script(root, &rel)?;
        let mut name = mount.to_vec();
        name.extend_from_slice(rel.get(..split.consumed).unwrap_or_default());
        let info = rel.get(split.consumed..).unwrap_or_default().to_vec();
        (split, name, info)
    };
    let (file, interpreted) = check_script(&split, extensions)?;
    let dir = split
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.canonical.clone());
    Ok(Script {
        path: split.path,
        dir,
        script_name: name,
        path_info: info,
        file,
        interpreted,
    })
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
