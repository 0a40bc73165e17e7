//! Compress middleware (gzip and zstd on the transform hook): negotiation, HTTP semantics and streaming, through the test client.

use std::io::{Read, Write};

use cgate::middleware::{Coding, Compress};
use cgate::testing::{TestRequest, TestResponse};
use cgate::{App, Body, Status, app_fn};

const TEXT: &str = "the quick brown fox jumps over the lazy dog\n";

fn page(status: u16, headers: &'static [(&'static str, &'static str)]) -> impl App {
    app_fn(move |_req, resp| {
        resp.start(status, headers)?;
        Ok(Body::from(TEXT.repeat(20)))
    })
}

fn both(app: impl App) -> Compress<impl App> {
    Compress::new(app, &[Coding::Zstd, Coding::Gzip])
}

fn get(app: &dyn App, accept: Option<&str>) -> TestResponse {
    let mut req = TestRequest::get("/");
    if let Some(a) = accept {
        req = req.header("Accept-Encoding", a);
    }
    req.run(app)
}

fn unzstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(data).expect("valid zstd")
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

#[test]
fn q_values_choose_the_coding_and_the_body_decodes_exactly() {
    let app = both(page(200, &[("Content-Type", "text/plain")]));
    let plain = TEXT.repeat(20).into_bytes();
    let cases = [
        ("gzip, zstd", "zstd"),
        ("gzip;q=1.0, zstd;q=0.8", "gzip"),
        ("*", "zstd"),
        ("zstd;q=0, *;q=0.5", "gzip"),
    ];
    for (accept, coding) in cases {
        let r = get(&app, Some(accept));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Encoding"), Some(coding), "{accept}");
        assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
        let decoded = if coding == "zstd" {
            unzstd(&r.body)
        } else {
            gunzip(&r.body)
        };
        assert_eq!(decoded, plain, "{accept}");
        // A complete body keeps a Content-Length: the compressed one.
        assert_eq!(
            r.header("Content-Length"),
            Some(r.body.len().to_string().as_str())
        );
        assert!(r.body.len() < plain.len() / 4, "{accept}: {}", r.body.len());
    }
    for accept in [
        None,
        Some("br"),
        Some("gzip;q=0, zstd;q=0"),
        Some("identity"),
    ] {
        let r = get(&app, accept);
        assert_eq!(r.header("Content-Encoding"), None, "{accept:?}");
        assert_eq!(r.header("Vary"), Some("Accept-Encoding"), "{accept:?}");
        assert_eq!(r.body, plain);
        assert_eq!(r.header("Content-Length"), Some("880"));
    }
}

#[test]
fn replies_that_must_stay_as_they_are() {
    type Case = (u16, &'static [(&'static str, &'static str)], bool);
    let cases: [Case; 6] = [
        (
            200,
            &[("Content-Type", "text/plain"), ("Content-Encoding", "br")],
            false,
        ),
        (200, &[("Content-Type", "image/png")], false),
        (
            200,
            &[
                ("Content-Type", "text/plain"),
                ("Cache-Control", "public, no-transform"),
            ],
            false,
        ),
        (
            206,
            &[
                ("Content-Type", "text/plain"),
                ("Content-Range", "bytes 0-879/2000"),
            ],
            false,
        ),
        (304, &[("ETag", "\"v1\"")], true),
        (204, &[("X", "1")], false),
    ];
    for (status, headers, vary) in cases {
        let app = both(app_fn(move |_req, resp| {
            resp.start(status, headers)?;
            Ok(if status == 204 || status == 304 {
                Body::Empty
            } else {
                Body::from(TEXT.repeat(20))
            })
        }));
        let r = get(&app, Some("zstd, gzip"));
        assert_eq!(r.status, status);
        assert_eq!(
            r.header("Content-Encoding"),
            headers
                .iter()
                .find(|h| h.0 == "Content-Encoding")
                .map(|h| h.1)
        );
        assert_eq!(r.header("Vary").is_some(), vary, "{status} {headers:?}");
        if status == 304 {
            assert_eq!(
                r.header("ETag"),
                Some("\"v1\""),
                "a 304 keeps its strong ETag"
            );
        }
    }
}

#[test]
fn head_requests_are_not_compressed_but_say_vary() {
    let app = both(app_fn(|_req, resp| {
        resp.start(
            200,
            (("Content-Type", "text/plain"), ("Content-Length", 880)),
        )?;
        Ok(Body::Empty)
    }));
    let r = TestRequest::new("HEAD", "/")
        .header("Accept-Encoding", "zstd")
        .run(&app);
    assert_eq!(r.header("Content-Encoding"), None);
    assert_eq!(r.header("Content-Length"), Some("880"));
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    assert!(r.body.is_empty());
}

#[test]
fn strong_etags_become_weak_and_vary_is_merged() {
    let app = both(page(
        200,
        &[
            ("Content-Type", "text/html"),
            ("ETag", "\"abc\""),
            ("Vary", "Cookie"),
        ],
    ));
    let r = get(&app, Some("gzip"));
    assert_eq!(r.header("ETag"), Some("W/\"abc\""));
    let vary: Vec<_> = r
        .headers
        .iter()
        .filter(|h| h.0.eq_ignore_ascii_case("vary"))
        .collect();
    assert_eq!(vary.len(), 2, "{vary:?}");
    let weak = both(page(
        200,
        &[("ETag", "W/\"x\""), ("Vary", "accept-encoding, cookie")],
    ));
    let r = get(&weak, Some("zstd"));
    assert_eq!(r.header("ETag"), Some("W/\"x\""));
    assert_eq!(r.header_names().iter().filter(|n| **n == "Vary").count(), 1);
}

#[test]
fn event_streams_arrive_event_by_event() {
    let app = both(app_fn(|_req, resp| {
        resp.start(200, [("Content-Type", "text/event-stream")])?;
        let events = (1..=3).map(|i| Ok(format!("data: tick {i}\n\n").into_bytes()));
        Ok(Body::stream(events))
    }));
    for coding in ["zstd", "gzip"] {
        let r = get(&app, Some(coding));
        assert_eq!(r.header("Content-Encoding"), Some(coding));
        assert_eq!(r.header("Content-Length"), None);
        assert!(r.chunks.len() >= 3, "{coding}: {} flushes", r.chunks.len());
        // Feeding the flushes one by one, each event decodes as soon as its flush arrives.
        let mut seen = Vec::new();
        let mut expected = String::new();
        for (i, chunk) in r.chunks.iter().take(3).enumerate() {
            seen.extend_from_slice(chunk);
            expected.push_str(&format!("data: tick {}\n\n", i + 1));
            assert_eq!(
                decode_prefix(coding, &seen),
                expected.as_bytes(),
                "{coding} {i}"
            );
        }
        assert!(r.complete);
    }
}

/// What a streaming decoder yields for the bytes received so far.
fn decode_prefix(coding: &str, data: &[u8]) -> Vec<u8> {
    if coding == "zstd" {
        let mut dec = zstd::stream::write::Decoder::new(Vec::new()).unwrap();
        dec.write_all(data).unwrap();
        dec.flush().unwrap();
        dec.into_inner()
    } else {
        let mut dec = flate2::write::GzDecoder::new(Vec::new());
        dec.write_all(data).unwrap();
        dec.flush().unwrap();
        dec.get_ref().clone()
    }
}

#[test]
fn app_errors_still_get_the_plain_answer() {
    let app = both(app_fn(|_req, resp| {
        resp.start(200, [("Content-Type", "text/plain")])?;
        Err(cgate::AppError::bad_request("no"))
    }));
    let r = get(&app, Some("zstd"));
    assert_eq!(r.status, 400);
    assert_eq!(r.header("Content-Encoding"), None);
    assert_eq!(r.body, b"Bad Request\n");
    assert_eq!(r.status(), Some(Status::BAD_REQUEST));
}

#[test]
fn the_command_line_offers_codings_in_order() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cgate"))
            .arg("request")
            .args(args)
            .env_remove("CGATE_APP")
            .output()
            .expect("cgate runs")
    };
    let head = |out: &std::process::Output| {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split("\r\n\r\n").next().unwrap_or("").to_owned()
    };
    let out = run(&[
        "--compress",
        "zstd,gzip",
        "-H",
        "Accept-Encoding: gzip, zstd",
        "/",
    ]);
    assert!(
        head(&out).contains("\r\nContent-Encoding: zstd\r\n"),
        "{}",
        head(&out)
    );
    let out = run(&[
        "--compress",
        "gzip,zstd",
        "-H",
        "Accept-Encoding: gzip, zstd",
        "/",
    ]);
    assert!(
        head(&out).contains("\r\nContent-Encoding: gzip\r\n"),
        "{}",
        head(&out)
    );
    let out = run(&["--gzip", "-H", "Accept-Encoding: zstd", "/"]);
    assert!(!head(&out).contains("Content-Encoding"), "{}", head(&out));
    assert!(
        head(&out).contains("\r\nVary: Accept-Encoding"),
        "{}",
        head(&out)
    );
    let out = run(&["--compress", "br", "/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--compress \"br\": expected gzip or zstd")
    );
}

#[test]
fn file_bodies_are_compressed_too() {
    let path = std::env::temp_dir().join(format!("cgate-compress-{}", std::process::id()));
    std::fs::write(&path, TEXT.repeat(500)).unwrap();
    let p = path.clone();
    let app = both(app_fn(move |_req, resp| {
        resp.start(200, [("Content-Type", "text/plain")])?;
        Ok(Body::file(std::fs::File::open(&p)?)?)
    }));
    let r = get(&app, Some("zstd"));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(r.header("Content-Encoding"), Some("zstd"));
    assert_eq!(unzstd(&r.body), TEXT.repeat(500).into_bytes());
    assert_eq!(
        r.header("Content-Length"),
        Some(r.body.len().to_string().as_str())
    );
}
