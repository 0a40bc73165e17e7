//! The scenery of the real-programs test: a cgi-bin of symlinks to git-http-backend, gitweb and cgit plus two scripts, a bare repository with a 20 MiB file, and nginx in front of cgate and of fcgiwrap with the same fcgiwrap-style locations.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{
    Backend, Fcgiwrap, Nginx, Ready, TempDir, cgate_bin, chmod, data, find_program, manifest_dir,
    sha256_hex,
};

/// Size of the file in the repository's first commit.
pub const BIG: usize = 20 << 20;
/// The user nginx lets push (basic auth), and the password.
pub const PUSHER: &str = "pusher";
/// See [`PUSHER`].
pub const PUSHER_PASSWORD: &str = "s3cret";
/// Subject of the repository's first commit.
pub const SUBJECT: &str = "add a 20 MiB file";

/// Where each program lives once installed (Debian paths).
const PROGRAMS: [(&str, &str); 3] = [
    ("git-http-backend", "/usr/lib/git-core/git-http-backend"),
    ("gitweb.cgi", "/usr/share/gitweb/gitweb.cgi"),
    ("cgit.cgi", "/usr/lib/cgit/cgit.cgi"),
];

/// The two ways of serving the cgi-bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// nginx -> `cgate fastcgi --app cgi:DIR` (no other flags).
    Cgate,
    /// nginx -> fcgiwrap.
    Fcgiwrap,
}

impl Peer {
    /// Both, in table order.
    pub const ALL: [Peer; 2] = [Peer::Cgate, Peer::Fcgiwrap];

    /// Column title.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Cgate => "cgate",
            Peer::Fcgiwrap => "fcgiwrap",
        }
    }
}

/// The files every server shares.
pub struct World {
    /// The temp dir holding everything.
    pub tmp: TempDir,
    /// The cgi-bin (symlinks and scripts).
    pub cgi_dir: PathBuf,
    /// GIT_PROJECT_ROOT, gitweb's projectroot and cgit's scan-path.
    pub repos: PathBuf,
    /// sha256 of the 20 MiB file.
    pub big_sha: String,
}

fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// Reads tests/real_programs/`name` and replaces each `(placeholder, value)`.
pub fn fill(name: &str, vars: &[(&str, &str)]) -> String {
    let path = manifest_dir().join("tests/real_programs").join(name);
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    for (k, v) in vars {
        assert!(text.contains(k), "{name} has no {k}");
        text = text.replace(k, v);
    }
    text
}

/// `git` with a clean configuration (no system or user config) in `dir`; panics on failure.
pub fn git(home: &Path, dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(home, dir, args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The command [`git`] runs: fixed author, dates and no prompts.
pub fn git_cmd(home: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(find_program("git"));
    cmd.current_dir(dir)
        .args(args)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Tester")
        .env("GIT_AUTHOR_EMAIL", "tester@example.com")
        .env("GIT_COMMITTER_NAME", "Tester")
        .env("GIT_COMMITTER_EMAIL", "tester@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z");
    cmd
}

impl World {
    /// Builds the cgi-bin, the repository and the gitweb and cgit configurations.
    pub fn new() -> World {
        let tmp = TempDir::new("real-programs");
        let cgi_dir = tmp.subdir("cgi-bin");
        for (name, target) in PROGRAMS {
            assert!(
                Path::new(target).is_file(),
                "{target} missing; `bash scripts/test.sh` installs git, gitweb and cgit"
            );
            std::os::unix::fs::symlink(target, cgi_dir.join(name)).expect("symlink");
        }
        for name in ["upload.pl", "stream.sh"] {
            let to = cgi_dir.join(name);
            std::fs::write(&to, fill(name, &[])).expect("write script");
            chmod(&to, 0o755);
        }
        let repos = tmp.subdir("repos");
        let home = tmp.subdir("home");
        let work = tmp.subdir("work");
        let big = data(BIG, 20);
        std::fs::write(work.join("big.bin"), &big).expect("write big file");
        std::fs::write(work.join("README"), "real programs test\n").expect("write README");
        git(&home, &work, &["init", "-q", "-b", "master"]);
        git(&home, &work, &["add", "."]);
        git(&home, &work, &["commit", "-q", "-m", SUBJECT]);
        let bare = repos.join("repo.git");
        git(
            &home,
            tmp.path(),
            &["clone", "-q", "--bare", s(&work), s(&bare)],
        );
        std::fs::write(bare.join("description"), "the test repository\n").expect("description");
        let vars = [("@REPOS@", s(&repos)), ("@TMP@", s(tmp.path()))];
        let gitweb = fill("gitweb.conf", &vars);
        std::fs::write(tmp.join("gitweb.conf"), gitweb).expect("gitweb.conf");
        let cgitrc = fill("cgitrc", &vars[..1]);
        std::fs::write(tmp.join("cgitrc"), cgitrc).expect("cgitrc");
        // nginx's own plain-text scheme: the user `git push` authenticates as.
        std::fs::write(
            tmp.join("htpasswd"),
            format!("{PUSHER}:{{PLAIN}}{PUSHER_PASSWORD}\n"),
        )
        .expect("htpasswd");
        World {
            tmp,
            cgi_dir,
            repos,
            big_sha: sha256_hex(&big),
        }
    }

    /// A HOME for git clients.
    pub fn home(&self) -> PathBuf {
        self.tmp.subdir("home")
    }
}

/// nginx plus the FastCGI server behind it, for one peer.
pub struct Site {
    /// nginx (its error log names what the FastCGI server said).
    pub nginx: Nginx,
    /// cgate or fcgiwrap.
    pub backend: Backend,
    _socks: TempDir,
}

impl Site {
    /// Starts the peer's FastCGI server and an nginx with tests/real_programs/nginx-locations.conf.
    pub fn start(world: &World, peer: Peer) -> Site {
        let socks = TempDir::new("real-socks");
        let sock = socks.join("fcgi.sock");
        let backend = match peer {
            Peer::Cgate => {
                let mut cmd = Command::new(cgate_bin());
                cmd.env_remove("CGATE_APP")
                    .arg("fastcgi")
                    .arg("--listen")
                    .arg(format!("unix:{}", s(&sock)))
                    .arg("--app")
                    .arg(format!("cgi:{}", s(&world.cgi_dir)));
                Backend::spawn("cgate", cmd, &[Ready::Unix(sock.clone())])
            }
            Peer::Fcgiwrap => Fcgiwrap::start(&sock).backend,
        };
        let gitweb = world.tmp.join("gitweb.conf");
        let cgitrc = world.tmp.join("cgitrc");
        let htpasswd = world.tmp.join("htpasswd");
        let server = fill(
            "nginx-locations.conf",
            &[
                ("@SOCKET@", s(&sock)),
                ("@CGI_DIR@", s(&world.cgi_dir)),
                ("@REPOS@", s(&world.repos)),
                ("@GITWEB_CONFIG@", s(&gitweb)),
                ("@CGIT_CONFIG@", s(&cgitrc)),
                ("@HTPASSWD@", s(&htpasswd)),
            ],
        );
        let nginx = Nginx::start(&server);
        Site {
            nginx,
            backend,
            _socks: socks,
        }
    }

    /// The nginx port.
    pub fn port(&self) -> u16 {
        self.nginx.port()
    }

    /// nginx's error log and the backend's output.
    pub fn logs(&self) -> String {
        format!("{}\n{}", self.nginx.error_log(), self.backend.output())
    }
}
