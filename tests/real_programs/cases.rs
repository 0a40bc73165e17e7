//! The real-program cases against one peer: git clone and chunked push over smart HTTP, git-http-backend's 404 and 403, gitweb pages and snapshot, cgit's index, a CGI.pm upload, a slow 70 s download.

use std::time::{Duration, Instant};

use crate::setup::{BIG, PUSHER, PUSHER_PASSWORD, Peer, SUBJECT, Site, World, git, git_cmd};
use crate::support::http::{Conn, try_request};
use crate::support::{data, sha256_hex};

/// What one case came to on one peer.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Whether the case's expectation held.
    pub ok: bool,
    /// What was seen (a sha256 for the snapshot, compared between peers).
    pub detail: String,
}

impl Outcome {
    fn pass(detail: impl Into<String>) -> Outcome {
        Outcome {
            ok: true,
            detail: detail.into(),
        }
    }

    fn fail(detail: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            detail: detail.into(),
        }
    }

    /// One table cell.
    pub fn cell(&self) -> String {
        let mark = if self.ok { "ok" } else { "**FAIL**" };
        format!("{mark}: {}", self.detail)
            .replace('|', "\\|")
            .replace('\n', " / ")
    }
}

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

fn clone(world: &World, port: u16, peer: Peer) -> Outcome {
    let home = world.home();
    let dest = world.tmp.join(&format!("clone-{}", peer.name()));
    let out = git_cmd(&home, world.tmp.path(), &["clone", "-q"])
        .arg(url(port, "/git/repo.git"))
        .arg(&dest)
        .output()
        .expect("run git clone");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Outcome::fail(format!("git clone {}: {}", out.status, err.trim()));
    }
    match std::fs::read(dest.join("big.bin")) {
        Ok(b) if b.len() == BIG && sha256_hex(&b) == world.big_sha => {
            Outcome::pass("20 MiB file, sha256 equal")
        }
        Ok(b) => Outcome::fail(format!("big.bin has {} bytes, other content", b.len())),
        Err(e) => Outcome::fail(format!("big.bin: {e}")),
    }
}

fn push(world: &World, port: u16, peer: Peer) -> Outcome {
    let home = world.home();
    let work = world.tmp.join(&format!("push-{}", peer.name()));
    let bare = world.repos.join("repo.git");
    git(
        &home,
        world.tmp.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    std::fs::write(work.join("pushed.bin"), data(30 << 20, 30)).expect("write 30 MiB");
    git(&home, &work, &["add", "pushed.bin"]);
    git(&home, &work, &["commit", "-q", "-m", "push 30 MiB"]);
    let head = git(&home, &work, &["rev-parse", "HEAD"]);
    let branch = format!("HEAD:refs/heads/pushed-{}", peer.name());
    // A small postBuffer makes git send the pack with chunked transfer coding.
    let out = git_cmd(&home, &work, &["-c", "http.postBuffer=65536", "push", "-q"])
        .arg(format!(
            "http://{PUSHER}:{PUSHER_PASSWORD}@127.0.0.1:{port}/git-push/repo.git"
        ))
        .arg(&branch)
        .output()
        .expect("run git push");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Outcome::fail(format!("git push {}: {}", out.status, err.trim()));
    }
    let refname = format!("refs/heads/pushed-{}", peer.name());
    let got = git(&home, &bare, &["rev-parse", &refname]);
    if got == head {
        Outcome::pass("30 MiB pushed chunked, ref updated")
    } else {
        Outcome::fail(format!("{refname} is {got}, pushed {head}"))
    }
}

/// A GET that git-http-backend answers with a `Status` line only: the status must be
/// `want` and the body empty (so a 403 or 404 of cgate's own, which has a body, does not
/// pass for it).
fn status_only(port: u16, path: &str, want: u16) -> Outcome {
    match try_request("GET", port, path, &[], b"") {
        Ok(r) if r.status == want && r.body.is_empty() => {
            Outcome::pass(format!("{want}, empty body"))
        }
        Ok(r) => Outcome::fail(format!(
            "status {} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body[..r.body.len().min(80)])
        )),
        Err(e) => Outcome::fail(e.to_string()),
    }
}

/// A GET that must be a 200 of type `ctype...` containing `needle`.
fn page(port: u16, path: &str, ctype: &str, needle: &str) -> Outcome {
    match try_request("GET", port, path, &[], b"") {
        Ok(r) => {
            let t = r.header("content-type").unwrap_or("");
            let has = String::from_utf8_lossy(&r.body).contains(needle);
            if r.status == 200 && t.starts_with(ctype) && has {
                Outcome::pass(format!("200 {t}, has {needle:?}"))
            } else {
                Outcome::fail(format!(
                    "status {} type {t:?}, has {needle:?}: {has}",
                    r.status
                ))
            }
        }
        Err(e) => Outcome::fail(e.to_string()),
    }
}

fn snapshot(port: u16) -> Outcome {
    let path = "/gitweb/?p=repo.git;a=snapshot;h=HEAD;sf=tgz";
    match try_request("GET", port, path, &[], b"") {
        Ok(r) if r.status == 200 && r.body.starts_with(&[0x1f, 0x8b]) => Outcome::pass(format!(
            "tar.gz {} B sha256 {}",
            r.body.len(),
            sha256_hex(&r.body)
        )),
        Ok(r) => Outcome::fail(format!("status {}, {} B", r.status, r.body.len())),
        Err(e) => Outcome::fail(e.to_string()),
    }
}

fn upload(port: u16) -> Outcome {
    let file = data(5 << 20, 5);
    let boundary = "cgateBoundary7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ctype = format!("multipart/form-data; boundary={boundary}");
    let want = format!("{} {}\n", sha256_hex(&file), file.len());
    match try_request(
        "POST",
        port,
        "/cgi-bin/upload.pl",
        &[("Content-Type", &ctype)],
        &body,
    ) {
        Ok(r) if r.status == 200 && r.body == want.as_bytes() => {
            Outcome::pass("5 MiB upload, sha256 equal")
        }
        Ok(r) => Outcome::fail(format!(
            "status {} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body[..r.body.len().min(120)])
        )),
        Err(e) => Outcome::fail(e.to_string()),
    }
}

/// Bytes per second the slow client reads.
const RATE: u64 = 560 << 10;

/// Reads the 40 MiB of stream.sh at a steady [`RATE`] (about 73 s) through a 256 KiB receive
/// buffer, so the script is held back by the client's pace: every byte must arrive, framed
/// as complete. (curl's `--limit-rate` is not steady enough here: it let bursts of several
/// MiB/s through.)
pub fn slow_download(port: u16) -> Outcome {
    match read_slowly(port) {
        Ok(n) if n == 40 << 20 => Outcome::pass("all 40 MiB at 560 KiB/s, complete"),
        Ok(n) => Outcome::fail(format!("{n} B, complete-looking")),
        Err(e) => Outcome::fail(e),
    }
}

fn read_slowly(port: u16) -> Result<usize, String> {
    use nix::sys::socket::{setsockopt, sockopt::RcvBuf};
    let mut conn = Conn::open(port).map_err(|e| e.to_string())?;
    setsockopt(conn.stream(), RcvBuf, &(256 << 10)).map_err(|e| e.to_string())?;
    let path = "/cgi-bin/stream.sh";
    conn.send_request("GET", path, &[("Connection", "close")], b"")
        .map_err(|e| e.to_string())?;
    let head = conn.read_head("GET").map_err(|e| e.to_string())?;
    if head.status != 200 {
        return Err(format!("status {}", head.status));
    }
    let start = Instant::now();
    let mut body = conn.body(&head);
    let mut n: u64 = 0;
    loop {
        match body.read_some() {
            Ok(Some(piece)) => {
                if piece.iter().any(|&b| b != 0) {
                    return Err(format!("wrong bytes after {n} B"));
                }
                n += piece.len() as u64;
                let due = Duration::from_millis(n * 1000 / RATE);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            Ok(None) => return Ok(n as usize),
            Err(e) => return Err(format!("cut after {n} B ({:?}): {e}", start.elapsed())),
        }
    }
}

/// Every case but the slow download, in table order.
pub fn run_fast(world: &World, site: &Site, peer: Peer) -> Vec<(&'static str, Outcome)> {
    let port = site.port();
    let cases: Vec<(&'static str, Outcome)> = vec![
        ("git clone (20 MiB file)", clone(world, port, peer)),
        ("git push (30 MiB, chunked)", push(world, port, peer)),
        (
            "git-http-backend 404 (no such repo)",
            status_only(port, "/git/nope.git/info/refs?service=git-upload-pack", 404),
        ),
        (
            "git-http-backend 403 (receive-pack off)",
            status_only(
                port,
                "/git/repo.git/info/refs?service=git-receive-pack",
                403,
            ),
        ),
        (
            "gitweb project list",
            page(port, "/gitweb/", "text/html", "repo.git"),
        ),
        (
            "gitweb commit page",
            page(
                port,
                "/gitweb/?p=repo.git;a=commit;h=HEAD",
                "text/html",
                SUBJECT,
            ),
        ),
        ("gitweb snapshot", snapshot(port)),
        (
            "cgit index",
            page(port, "/cgit/", "text/html", "the test repository"),
        ),
        ("CGI.pm 5 MiB upload", upload(port)),
    ];
    cases
}
