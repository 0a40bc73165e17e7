//! The pid file (`--pid-file`): written once the process serves, rewritten when a reload fails, removed on a clean stop.
//!
//! The file holds the pid and a newline. It is replaced whole (a temporary file renamed over
//! it), so a reader never sees half a pid. On a reload the old process writes its
//! successor's pid once the successor serves and the old process has stopped accepting, so
//! "the file names a new pid" means "every new connection goes to the new process"; when a
//! reload fails the old process writes its own pid again (a new file, same content), which
//! `cgate reload` takes as the failure.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Longest pid file read (a pid, a newline, some slack).
const MAX_LEN: u64 = 64;

/// Writes `pid` to `path` (atomically).
pub fn write(path: &Path, pid: u32) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, format!("{pid}\n"))?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Writes `pid` to the pid file, logging (not failing) when it cannot be written.
pub fn write_or_log(path: &Path, pid: u32) {
    if let Err(e) = write(path, pid) {
        super::event(&format!("cannot write pid file {}: {e}", path.display()));
    }
}

/// Removes `path` if it still names this process (a successor's file is left alone).
pub fn remove_if_mine(path: &Path) {
    if read(path).is_ok_and(|(pid, _)| pid == std::process::id() as i32) {
        let _ = std::fs::remove_file(path);
    }
}

/// Reads a pid file: the pid, and the file's inode (a rewrite changes it).
pub fn read(path: &Path) -> io::Result<(i32, u64)> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let ino = file.metadata()?.ino();
    let mut text = String::new();
    file.take(MAX_LEN).read_to_string(&mut text)?;
    let pid = text
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{:?} is not a pid", text.trim()),
            )
        })?;
    Ok((pid, ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_read_rewritten_removed() {
        let dir = std::env::temp_dir().join(format!("cgate-pidfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.pid");
        write(&p, std::process::id()).unwrap();
        let me = std::process::id() as i32;
        let (pid, ino) = read(&p).unwrap();
        assert_eq!(pid, me);
        write(&p, std::process::id()).unwrap();
        let (pid2, ino2) = read(&p).unwrap();
        assert_eq!(pid2, me);
        assert_ne!(ino, ino2, "a rewrite is a new file");
        std::fs::write(&p, "0\n").unwrap();
        assert!(read(&p).is_err());
        std::fs::write(&p, "12x\n").unwrap();
        assert!(read(&p).is_err());
        std::fs::write(&p, "1\n").unwrap();
        remove_if_mine(&p);
        assert!(p.exists(), "not ours: kept");
        write(&p, std::process::id()).unwrap();
        remove_if_mine(&p);
        assert!(!p.exists());
        let _ = std::fs::remove_dir(&dir);
    }
}
