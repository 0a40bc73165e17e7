//! Tests of script resolution on a temporary tree of scripts, links and hostile entries.

use std::os::unix::fs::{PermissionsExt, symlink};

use super::*;
use crate::gateway::GatewayFacts;

/// A temporary directory removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "cgate-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn file(p: &Path, mode: u32) {
    fs::write(p, "#!/bin/sh\necho\n").unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn dir(p: &Path, mode: u32) {
    fs::create_dir(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// base/cgi is DIR; base/cgi-evil is a look-alike sibling; base/outside.sh is outside.
fn tree() -> (TempDir, Root) {
    let t = TempDir::new("resolve");
    let b = &t.0;
    let c = b.join("cgi");
    dir(&c, 0o755);
    dir(&b.join("cgi-evil"), 0o755);
    file(&b.join("cgi-evil/evil.sh"), 0o755);
    file(&b.join("outside.sh"), 0o755);
    file(&c.join("hello.sh"), 0o755);
    dir(&c.join("sub"), 0o755);
    file(&c.join("sub/deep.sh"), 0o755);
    file(&c.join("plain.txt"), 0o644);
    file(&c.join("suid.sh"), 0o4755);
    file(&c.join("sgid.sh"), 0o2755);
    file(&c.join("world.sh"), 0o757);
    file(&c.join("group.sh"), 0o775);
    file(&c.join("noext"), 0o755);
    dir(&c.join("adir"), 0o755);
    dir(&c.join("open"), 0o777);
    file(&c.join("open/x.sh"), 0o755);
    nix::unistd::mkfifo(
        &c.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o755),
    )
    .unwrap();
    symlink("hello.sh", c.join("link-in")).unwrap();
    symlink("../outside.sh", c.join("link-out")).unwrap();
    symlink("../cgi-evil/evil.sh", c.join("link-evil")).unwrap();
    symlink("../cgi-evil", c.join("dirlink-out")).unwrap();
    symlink("sub", c.join("dirlink-in")).unwrap();
    symlink("loop", c.join("loop")).unwrap();
    let nobody = |p: &Path| std::os::unix::fs::lchown(p, Some(65534), None).unwrap();
    symlink("../outside.sh", c.join("planted")).unwrap();
    nobody(&c.join("planted"));
    symlink("../../outside.sh", c.join("sub/planted-deep")).unwrap();
    nobody(&c.join("sub/planted-deep"));
    symlink("../cgi-evil", c.join("dirplanted")).unwrap();
    nobody(&c.join("dirplanted"));
    symlink("chain2", c.join("chain")).unwrap();
    symlink("hello.sh", c.join("chain2")).unwrap();
    nobody(&c.join("chain2"));
    file(&b.join("theirs.sh"), 0o755);
    std::os::unix::fs::chown(b.join("theirs.sh"), Some(65534), None).unwrap();
    symlink("../theirs.sh", c.join("owned-by-target-owner")).unwrap();
    nobody(&c.join("owned-by-target-owner"));
    dir(&b.join("open-out"), 0o777);
    file(&b.join("open-out/x.sh"), 0o755);
    symlink("../open-out/x.sh", c.join("link-to-open")).unwrap();
    let root = Root::new(c).unwrap();
    (t, root)
}

fn env(kind: GatewayKind, vars: &[(&str, &[u8])]) -> Environ {
    let mut e = Environ::new(GatewayFacts::new(kind));
    for (n, v) in vars {
        e.set(n, v);
    }
    e
}

type Outcome = Result<(String, String, String), u16>;

fn run(root: &Root, e: &Environ, ext: Option<&[String]>) -> Outcome {
    match resolve(root, e, ext) {
        Ok(s) => {
            assert_eq!(s.dir, s.path.parent().unwrap());
            let base = root.canonical.parent().unwrap();
            let rel = match s.path.strip_prefix(&root.canonical) {
                Ok(inside) => inside.to_string_lossy().into_owned(),
                Err(_) => format!("../{}", s.path.strip_prefix(base).unwrap().display()),
            };
            Ok((
                rel,
                String::from_utf8(s.script_name).unwrap(),
                String::from_utf8(s.path_info).unwrap(),
            ))
        }
        Err(r) => Err(r.status),
    }
}

fn ok(file: &str, name: &str, info: &str) -> Outcome {
    Ok((file.into(), name.into(), info.into()))
}

#[test]
fn script_name_and_path_info_walk() {
    let (_t, root) = tree();
    let cases: Vec<(&[u8], &[u8], Outcome)> = vec![
        (b"/hello.sh", b"", ok("hello.sh", "/hello.sh", "")),
        (
            b"/hello.sh",
            b"/extra/path/",
            ok("hello.sh", "/hello.sh", "/extra/path/"),
        ),
        (b"", b"/hello.sh/x", ok("hello.sh", "/hello.sh", "/x")),
        (
            b"/sub/deep.sh/a%2fb",
            b"",
            ok("sub/deep.sh", "/sub/deep.sh", "/a%2fb"),
        ),
        (
            b"//sub//deep.sh",
            b"",
            ok("sub/deep.sh", "//sub//deep.sh", ""),
        ),
        (
            b"/hello.sh/../../outside.sh",
            b"",
            ok("hello.sh", "/hello.sh", "/../../outside.sh"),
        ),
        (b"/link-in", b"", ok("hello.sh", "/link-in", "")),
        (
            b"/dirlink-in/deep.sh",
            b"",
            ok("sub/deep.sh", "/dirlink-in/deep.sh", ""),
        ),
        (b"/../outside.sh", b"", Err(404)),
        (b"/sub/../hello.sh", b"", Err(404)),
        (b"/./hello.sh", b"", Err(404)),
        (b"/%2e%2e/outside.sh", b"", Err(404)),
        (b"/..%2foutside.sh", b"", Err(404)),
        (b"/missing.sh", b"", Err(404)),
        (b"/hello.sh\n", b"", Err(400)),
        (b"/hello.sh", b"/x\r\nSet-Cookie: a", Err(400)),
        (b"/hel\0lo.sh", b"", Err(400)),
        (b"/plain.txt", b"", Err(403)),
        (b"/fifo", b"", Err(403)),
        (b"/suid.sh", b"", Err(403)),
        (b"/sgid.sh", b"", Err(403)),
        (b"/world.sh", b"", Err(403)),
        (b"/group.sh", b"", Err(403)),
        (b"/adir", b"", Err(403)),
        (b"/adir/", b"", Err(403)),
        (b"/", b"", Err(403)),
        (b"", b"", Err(403)),
        (b"/open/x.sh", b"", Err(403)),
        // links owned by root (the test runs as root) are followed wherever they lead
        (b"/link-out", b"/x", ok("../outside.sh", "/link-out", "/x")),
        (
            b"/link-evil",
            b"",
            ok("../cgi-evil/evil.sh", "/link-evil", ""),
        ),
        (
            b"/dirlink-out/evil.sh",
            b"",
            ok("../cgi-evil/evil.sh", "/dirlink-out/evil.sh", ""),
        ),
        // planted by another user: refused at any depth, in a chain too
        (b"/planted", b"", Err(403)),
        (b"/sub/planted-deep", b"", Err(403)),
        (b"/dirplanted/evil.sh", b"", Err(403)),
        (b"/chain", b"", Err(403)),
        // a link owned by the owner of its target is followed
        (
            b"/owned-by-target-owner",
            b"",
            ok("../theirs.sh", "/owned-by-target-owner", ""),
        ),
        // a target in a world-writable directory is refused
        (b"/link-to-open", b"", Err(403)),
        (b"/loop", b"", Err(403)),
    ];
    for (name, info, want) in cases {
        let e = env(
            GatewayKind::FastCgi,
            &[("SCRIPT_NAME", name), ("PATH_INFO", info)],
        );
        assert_eq!(
            run(&root, &e, None),
            want,
            "{:?} + {:?}",
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(info)
        );
    }
}

#[test]
fn script_filename_must_lie_inside_dir() {
    let (t, root) = tree();
    let b = t.0.to_str().unwrap();
    let f = |s: &str| format!("{b}/{s}").into_bytes();
    type Case<'a> = (Vec<u8>, &'a [u8], &'a [u8], Outcome);
    let cases: Vec<Case<'_>> = vec![
        (
            f("cgi/hello.sh"),
            b"/hello.sh",
            b"",
            ok("hello.sh", "/hello.sh", ""),
        ),
        (
            f("cgi/hello.sh"),
            b"/cgi-bin/hello.sh",
            b"/p",
            ok("hello.sh", "/cgi-bin/hello.sh", "/p"),
        ),
        (
            f("cgi/hello.sh/x/y"),
            b"/hello.sh/x/y",
            b"",
            ok("hello.sh", "/hello.sh", "/x/y"),
        ),
        (
            f("cgi/./hello.sh"),
            b"/hello.sh",
            b"",
            ok("hello.sh", "/hello.sh", ""),
        ),
        (f("cgi-evil/evil.sh"), b"/evil.sh", b"", Err(403)),
        (f("cgi/../outside.sh"), b"/x", b"", Err(404)),
        (f("cgi/../cgi-evil/evil.sh"), b"/x", b"", Err(404)),
        (
            f("cgi/link-evil"),
            b"/x",
            b"",
            ok("../cgi-evil/evil.sh", "/x", ""),
        ),
        (f("cgi/planted"), b"/x", b"", Err(403)),
        (f("cgi"), b"/", b"", Err(403)),
        (f("cgi/hello.sh\n"), b"/x", b"", Err(400)),
        (b"/etc/passwd".to_vec(), b"/x", b"", Err(403)),
        (b"/bin/sh".to_vec(), b"/hello.sh", b"", Err(403)),
        // not an absolute path (Apache mod_proxy_fcgi): ignored, SCRIPT_NAME is walked
        (
            b"proxy:fcgi://127.0.0.1:9000/x".to_vec(),
            b"/hello.sh",
            b"",
            ok("hello.sh", "/hello.sh", ""),
        ),
    ];
    for (filename, name, info, want) in cases {
        let e = env(
            GatewayKind::FastCgi,
            &[
                ("SCRIPT_FILENAME", &filename),
                ("SCRIPT_NAME", name),
                ("PATH_INFO", info),
            ],
        );
        assert_eq!(
            run(&root, &e, None),
            want,
            "{}",
            String::from_utf8_lossy(&filename)
        );
    }
    // DIR as configured through a symlink is accepted too
    symlink(t.0.join("cgi"), t.0.join("alias")).unwrap();
    let aliased = Root::new(t.0.join("alias")).unwrap();
    let e = env(
        GatewayKind::FastCgi,
        &[
            ("SCRIPT_FILENAME", &f("alias/hello.sh")),
            ("SCRIPT_NAME", b"/hello.sh"),
        ],
    );
    assert_eq!(run(&aliased, &e, None), ok("hello.sh", "/hello.sh", ""));
}

#[test]
fn cgi_gateway_walks_path_info_only() {
    let (_t, root) = tree();
    let e = env(
        GatewayKind::Cgi,
        &[
            ("SCRIPT_FILENAME", b"/usr/lib/cgi-bin/cgate"),
            ("SCRIPT_NAME", b"/cgi-bin/cgate"),
            ("PATH_INFO", b"/sub/deep.sh/x"),
        ],
    );
    assert_eq!(
        run(&root, &e, None),
        ok("sub/deep.sh", "/cgi-bin/cgate/sub/deep.sh", "/x")
    );
}

#[test]
fn a_mount_point_is_not_walked() {
    let (_t, root) = tree();
    // The front-end's SCRIPT_NAME names a path below DIR; the router's prefix does not.
    let mut e = env(GatewayKind::FastCgi, &[("SCRIPT_NAME", b"/app/cgi")]);
    e.set_mount_point();
    e.set("PATH_INFO", b"/sub/deep.sh/x");
    assert_eq!(e.mount_point(), b"/app/cgi");
    assert_eq!(
        run(&root, &e, None),
        ok("sub/deep.sh", "/app/cgi/sub/deep.sh", "/x")
    );
    e.set("PATH_INFO", b"");
    assert_eq!(run(&root, &e, None), Err(403));
    e.set("PATH_INFO", b"/missing.sh");
    assert_eq!(run(&root, &e, None), Err(404));
    // Setting SCRIPT_NAME again clears the mark: the whole path is walked again.
    e.set("SCRIPT_NAME", b"/sub");
    e.set("PATH_INFO", b"/deep.sh");
    assert_eq!(e.mount_point(), b"");
    assert_eq!(run(&root, &e, None), ok("sub/deep.sh", "/sub/deep.sh", ""));
}

#[test]
fn extension_allowlist() {
    let (_t, root) = tree();
    let sh = vec!["sh".to_owned()];
    for (name, want) in [
        ("/hello.sh", ok("hello.sh", "/hello.sh", "")),
        ("/link-in", ok("hello.sh", "/link-in", "")),
        ("/noext", Err(403)),
        ("/plain.txt", Err(403)),
    ] {
        let e = env(GatewayKind::Local, &[("SCRIPT_NAME", name.as_bytes())]);
        assert_eq!(run(&root, &e, Some(&sh)), want, "{name}");
    }
}

#[test]
fn swapped_file_is_refused() {
    let (t, root) = tree();
    let split = split_script(&root, b"/hello.sh").unwrap();
    assert!(check_script(&split, None).is_ok());
    fs::rename(t.0.join("outside.sh"), t.0.join("cgi/hello.sh")).unwrap();
    let refused = check_script(&split, None).unwrap_err();
    assert_eq!(
        (refused.status, refused.reason.as_str()),
        (403, "script changed while it was being checked")
    );
    // swapped for a link: not followed when opening
    fs::remove_file(t.0.join("cgi/hello.sh")).unwrap();
    symlink("sub/deep.sh", t.0.join("cgi/hello.sh")).unwrap();
    assert_eq!(
        check_script(&split, None).map_err(|r| r.status).err(),
        Some(403)
    );
}

#[test]
fn refusals_name_the_file_and_the_rule() {
    let (t, root) = tree();
    let e = env(GatewayKind::Local, &[("PATH_INFO", b"/sub/planted-deep/x")]);
    let r = resolve(&root, &e, None).unwrap_err();
    let link = root.canonical.join("sub/planted-deep");
    assert_eq!(r.file, link.display().to_string());
    let outside = fs::canonicalize(t.0.join("outside.sh")).unwrap();
    assert_eq!(
        r.reason,
        format!(
            "symlink owned by uid 65534 names {} owned by uid 0 (links are followed only \
             when owned by root or by the target's owner)",
            outside.display()
        )
    );
    let e = env(GatewayKind::Local, &[("PATH_INFO", b"/open/x.sh")]);
    let r = resolve(&root, &e, None).unwrap_err();
    assert_eq!(r.file, root.canonical.join("open").display().to_string());
    assert_eq!(r.reason, "world-writable directory on the way");
}

#[test]
fn world_writable_dir_is_refused_at_start() {
    let t = TempDir::new("root-mode");
    for mode in [0o777, 0o1777, 0o757] {
        fs::set_permissions(&t.0, fs::Permissions::from_mode(mode)).unwrap();
        let e = Root::new(t.0.clone()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("world-writable"), "{e}");
    }
    fs::set_permissions(&t.0, fs::Permissions::from_mode(0o775)).unwrap();
    assert!(Root::new(t.0.clone()).is_ok());
}
