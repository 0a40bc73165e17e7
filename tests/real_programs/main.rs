//! Real cgi-bin programs (git-http-backend, gitweb, cgit, a CGI.pm upload, a slow 73 s download) through nginx -> cgate `cgi:DIR` beside nginx -> fcgiwrap, configured fcgiwrap-style.
//!
//! Both peers get the same nginx locations (tests/real_programs/nginx-locations.conf:
//! per-location `fastcgi_param` GIT_PROJECT_ROOT, GIT_HTTP_EXPORT_ALL, GITWEB_CONFIG,
//! CGIT_CONFIG, REMOTE_USER) and the same cgi-bin of symlinks to the installed programs;
//! cgate runs with `--app cgi:DIR` and no other flag. Every case must pass on both; the
//! gitweb snapshot must be byte-identical between them. The table is printed
//! (`--nocapture` shows it).

#[path = "../support/mod.rs"]
mod support;

mod cases;
mod setup;

use cases::{Outcome, run_fast, slow_download};
use setup::{Peer, Site, World};

#[test]
fn real_programs_under_cgate_and_fcgiwrap() {
    let world = World::new();
    let sites = Peer::ALL.map(|p| Site::start(&world, p));
    let rows = std::thread::scope(|s| {
        // The 70 s downloads run beside everything else.
        let slow: Vec<_> = sites
            .iter()
            .map(|site| s.spawn(|| slow_download(site.port())))
            .collect();
        let mut rows: Vec<(&'static str, [Outcome; 2])> = Vec::new();
        let fast = Peer::ALL.map(|p| run_fast(&world, &sites[p as usize], p));
        for (i, (name, _)) in fast[0].iter().enumerate() {
            rows.push((name, [fast[0][i].1.clone(), fast[1][i].1.clone()]));
        }
        let mut done = slow.into_iter().map(|h| h.join().expect("download thread"));
        let (a, b) = (done.next().expect("cgate"), done.next().expect("fcgiwrap"));
        rows.push(("73 s download at 560 KiB/s", [a, b]));
        rows
    });
    let mut table = String::from("\n| program, case | cgate | fcgiwrap |\n|---|---|---|\n");
    let mut failed = Vec::new();
    for (name, [c, w]) in &rows {
        table.push_str(&format!("| {name} | {} | {} |\n", c.cell(), w.cell()));
        for (peer, o) in [(Peer::Cgate, c), (Peer::Fcgiwrap, w)] {
            if !o.ok {
                failed.push(format!("{name} ({})", peer.name()));
            }
        }
    }
    let snap = |i: usize| {
        rows.iter()
            .find(|r| r.0 == "gitweb snapshot")
            .map(|r| r.1[i].detail.clone())
    };
    if snap(0) != snap(1) {
        failed.push("gitweb snapshot: sha256 differs between cgate and fcgiwrap".into());
    }
    println!("{table}");
    if !failed.is_empty() {
        for (site, p) in sites.iter().zip(Peer::ALL) {
            eprintln!("----- {} -----\n{}", p.name(), site.logs());
        }
        panic!("{} failed: {failed:?}", failed.len());
    }
}
