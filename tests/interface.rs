//! The application interface rules (DESIGN section 2), exercised through the public API.

mod support;

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cgate::gateway::{BodyLength, Environ, GatewayFacts, MemorySink};
use cgate::middleware::{Coding, Compress, Filter, Router, Transform, Validate};
use cgate::{App, AppError, Body, Head, HeadError, app_fn};
use support::golden::{ERROR_500_BODY as ERROR_500, HELLO_BODY};
use support::inproc::{Run, run_app_into};

const FACTS: GatewayFacts = GatewayFacts::local();

fn base_env() -> Environ {
    let mut env = Environ::new(FACTS);
    for (n, v) in [
        ("REQUEST_METHOD", "GET"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", "/"),
    ] {
        env.set(n, v);
    }
    env
}

fn run_with(app: &dyn App, env: Environ, body: &[u8], length: BodyLength) -> Run {
    let mut src = body;
    run_app_into(app, env, &mut src, length, MemorySink::default())
}

fn run(app: &dyn App) -> Run {
    run_with(app, base_env(), b"", BodyLength::Exact(0))
}

fn assert_clean_500(r: &Run) {
    assert_eq!(r.status(), 500);
    assert_eq!(r.header_names(), ["Content-Type", "Content-Length"]);
    assert_eq!(r.sink.body, ERROR_500);
    assert!(r.sink.finished && !r.sink.aborted);
    assert!(!r.outcome.complete);
}

#[test]
fn full_body_gets_content_length_and_one_flush() {
    let r = run(&cgate::apps::hello::Hello);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("Content-Length").as_deref(), Some("14"));
    assert_eq!(r.sink.body, HELLO_BODY);
    assert_eq!(r.sink.flushes, vec![HELLO_BODY.to_vec()]);
    assert!(r.outcome.complete && r.sink.finished);
}

#[test]
fn error_before_first_byte_replaces_headers_with_clean_500() {
    let app = app_fn(|_req, resp| {
        resp.start("200 OK", [("X-Secret", "should-not-leak")])?;
        Err(AppError::msg("database down"))
    });
    let r = run(&app);
    assert_clean_500(&r);
    assert!(r.errors.contains("database down"), "{}", r.errors);
}

#[test]
fn header_injection_and_hop_by_hop_and_bad_status_are_500() {
    let cases: Vec<(&str, &str, &str)> = vec![
        ("200 OK", "X-A", "a\r\nSet-Cookie: evil=1"),
        ("200 OK", "X-A", "nul\0byte"),
        ("200 OK", "Bad Name", "v"),
        ("200 OK", "Transfer-Encoding", "chunked"),
        ("200 OK", "Connection", "close"),
        ("200 OK", "Keep-Alive", "1"),
        ("200 OK", "Upgrade", "h2c"),
        ("2000 OK", "X-A", "v"),
        ("200\r\nX: y", "X-A", "v"),
        ("OK", "X-A", "v"),
    ];
    for (status, name, value) in cases {
        let app = app_fn(move |_req, resp| {
            // An app that ignores the refusal and writes anyway must still get the 500.
            let _ = resp.start(status, [("Content-Type", "text/plain"), (name, value)]);
            let _ = resp.write(b"body");
            Ok(Body::from("more"))
        });
        let r = run(&app);
        assert_clean_500(&r);
        let said = r.errors.contains("invalid") || r.errors.contains("not allowed");
        assert!(said, "{status} {name}: {}", r.errors);
        assert!(!String::from_utf8_lossy(&r.sink.body).contains("body"));
    }
}

#[test]
fn start_may_be_called_again_before_the_first_byte() {
    let app = app_fn(|_req, resp| {
        resp.start("200 OK", [("X-First", "1")])?;
        resp.start("503 Service Unavailable", [("Retry-After", "5")])?;
        Ok(Body::from("later\n"))
    });
    let r = run(&app);
    assert_eq!(r.status(), 503);
    assert_eq!(r.header_names(), ["Retry-After", "Content-Length"]);
    assert_eq!(r.sink.body, b"later\n");
}

#[test]
fn start_after_headers_sent_is_refused() {
    let app = app_fn(|_req, resp| {
        resp.start("200 OK", [("Content-Type", "text/plain")])?;
        resp.write(b"a")?;
        let refused = resp.start("500 Oops", ()).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "start() called after the response head was sent"
        );
        Ok(Body::Empty)
    });
    let r = run(&app);
    assert_eq!(r.status(), 200);
    assert_eq!(r.sink.body, b"a");
    assert!(r.outcome.complete);
}

#[test]
fn error_after_first_byte_cuts_the_response() {
    let app = app_fn(|_req, resp| {
        resp.start("200 OK", [("Content-Type", "text/plain")])?;
        Ok(Body::stream(
            vec![Ok(b"one".to_vec()), Err(io::Error::other("boom"))].into_iter(),
        ))
    });
    let r = run(&app);
    assert_eq!(r.status(), 200);
    assert_eq!(r.sink.body, b"one");
    assert!(r.sink.aborted && !r.sink.finished);
    assert!(!r.outcome.complete);
    assert!(
        r.errors.contains("response cut") && r.errors.contains("boom"),
        "{}",
        r.errors
    );
}

#[test]
fn streamed_chunks_are_flushed_one_by_one_without_content_length() {
    let app = app_fn(|_req, resp| {
        resp.start("200 OK", [("Content-Type", "text/plain")])?;
        let chunks = ["a", "", "bb", "ccc"].map(|c| Ok(c.as_bytes().to_vec()));
        Ok(Body::stream(chunks.into_iter()))
    });
    let r = run(&app);
    assert_eq!(r.header("Content-Length"), None);
    assert_eq!(
        r.sink.flushes,
        vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]
    );
}

#[test]
fn write_escape_hatch_then_returned_body() {
    let app = app_fn(|_req, resp| {
        resp.start("200 OK", [("Content-Type", "text/plain")])?;
        resp.write(b"early ")?;
        Ok(Body::from("late"))
    });
    let r = run(&app);
    assert_eq!(r.sink.body, b"early late");
    assert_eq!(r.sink.flushes, vec![b"early ".to_vec(), b"late".to_vec()]);
    assert_eq!(r.header("Content-Length"), None);
}

#[test]
fn declared_content_length_truncates_and_logs() {
    let app = app_fn(|_req, resp| {
        resp.start("200 OK", [("Content-Length", "4")])?;
        resp.write(b"abc")?;
        resp.write(b"defg")?;
        Ok(Body::Empty)
    });
    let r = run(&app);
    assert_eq!(r.sink.body, b"abcd");
    assert!(r.outcome.complete);
    assert!(r.errors.contains("truncated"), "{}", r.errors);
}

#[test]
fn short_body_against_content_length_ends_normally_and_logs() {
    let app = app_fn(|_req, resp| {
        resp.start("200 OK", [("Content-Length", "10")])?;
        resp.write(b"abc")?;
        Ok(Body::Empty)
    });
    let r = run(&app);
    assert_eq!(r.sink.body, b"abc");
    assert!(r.sink.finished && r.outcome.complete);
    assert!(r.errors.contains("7 bytes missing"), "{}", r.errors);
}

#[test]
fn empty_body_gets_zero_length_but_204_gets_none() {
    let app = app_fn(|_req, resp| {
        resp.start("200 OK", [("X", "1")])?;
        Ok(Body::Empty)
    });
    let r = run(&app);
    assert_eq!(r.header("Content-Length").as_deref(), Some("0"));
    let app = app_fn(|_req, resp| {
        resp.start("204 No Content", [("X", "1")])?;
        Ok(Body::Empty)
    });
    let r = run(&app);
    assert_eq!(r.status(), 204);
    assert_eq!(r.header_names(), ["X"]);
}

#[test]
fn returning_without_start_is_500() {
    let app = app_fn(|_req, _resp| Ok(Body::from("x")));
    let r = run(&app);
    assert_clean_500(&r);
    assert!(r.errors.contains("without calling start()"), "{}", r.errors);
}

struct CountOnDrop(Arc<AtomicUsize>);
impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn cleanup_runs_on_success_error_and_panic() {
    for mode in ["ok", "err", "panic-before", "panic-in-body", "cut"] {
        let closed = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (c, d) = (Arc::clone(&closed), Arc::clone(&dropped));
        let app = app_fn(move |req, resp| {
            let c = Arc::clone(&c);
            req.on_close(move || {
                c.fetch_add(1, Ordering::SeqCst);
            });
            resp.start("200 OK", [("Content-Type", "text/plain")])?;
            match mode {
                "err" => return Err(AppError::msg("failed")),
                "panic-before" => panic!("app panicked early"),
                _ => {}
            }
            let guard = CountOnDrop(Arc::clone(&d));
            let mut n = 0;
            Ok(Body::stream(std::iter::from_fn(move || {
                let _keep = &guard;
                n += 1;
                match (mode, n) {
                    ("panic-in-body", 2) => panic!("body panicked"),
                    ("cut", 2) => Some(Err(io::Error::other("cut"))),
                    (_, 1) => Some(Ok(b"x".to_vec())),
                    _ => None,
                }
            })))
        });
        let r = run(&app);
        assert_eq!(closed.load(Ordering::SeqCst), 1, "{mode}");
        let expect_drop = usize::from(!matches!(mode, "err" | "panic-before"));
        assert_eq!(dropped.load(Ordering::SeqCst), expect_drop, "{mode}");
        match mode {
            "ok" => assert!(r.outcome.complete),
            "err" | "panic-before" => assert_clean_500(&r),
            _ => assert!(r.sink.aborted && r.sink.body == b"x", "{mode}"),
        }
        if mode.starts_with("panic") {
            assert!(r.errors.contains("panicked"), "{}", r.errors);
        }
    }
}

#[test]
fn input_stops_at_content_length_and_reports_short_bodies() {
    let app = app_fn(|req, resp| {
        let mut got = Vec::new();
        let res = req.input.read_to_end(&mut got);
        let msg = match res {
            Ok(_) => format!("ok {}", String::from_utf8_lossy(&got)),
            Err(e) => format!(
                "err {:?} after {:?}",
                e.kind(),
                String::from_utf8_lossy(&got)
            ),
        };
        resp.start("200 OK", [("Content-Type", "text/plain")])?;
        Ok(Body::from(msg))
    });
    let r = run_with(&app, base_env(), b"hello world", BodyLength::Exact(5));
    assert_eq!(r.sink.body, b"ok hello");
    let r = run_with(&app, base_env(), b"abc", BodyLength::Exact(10));
    assert_eq!(r.sink.body, b"err UnexpectedEof after \"abc\"");
}

#[test]
fn environ_is_byte_safe_last_wins_no_httpoxy() {
    let mut env = base_env();
    env.set("HTTP_X_RAW", b"\xff\xfe");
    env.set("HTTP_DUP", "1");
    env.set("HTTP_DUP", "2");
    env.set("HTTP_PROXY", "http://evil");
    assert_eq!(env.get("HTTP_X_RAW"), Some(&b"\xff\xfe"[..]));
    assert_eq!(env.get_str("HTTP_DUP"), Some("2"));
    assert_eq!(env.get("HTTP_PROXY"), None);
}

fn path_echo() -> impl App {
    app_fn(|req, resp| {
        let s = format!(
            "{}|{}",
            String::from_utf8_lossy(req.environ.script_name()),
            String::from_utf8_lossy(req.environ.path_info())
        );
        resp.start("200 OK", [("Content-Type", "text/plain")])?;
        Ok(Body::from(s))
    })
}

struct Tag(&'static str);

impl Transform for Tag {
    fn head(&mut self, head: &mut Head) -> Result<(), HeadError> {
        head.push("X-App", self.0)
    }
}

#[test]
fn router_longest_segment_aligned_prefix() {
    let tagged = |tag: &'static str| Filter::new(path_echo(), move |_req| Some(Tag(tag)));
    let router = Router::new()
        .mount("/app", tagged("app"))
        .mount("/app/admin/", tagged("admin"))
        .mount("/", tagged("root"));
    for (script, path, app, body) in [
        ("", "/app", "app", "/app|"),
        ("", "/app/x/y", "app", "/app|/x/y"),
        ("", "/apple", "root", "|/apple"),
        ("", "/app/admin", "admin", "/app/admin|"),
        ("", "/app/administrator", "app", "/app|/administrator"),
        ("/base", "/app/admin/z", "admin", "/base/app/admin|/z"),
    ] {
        let mut env = base_env();
        env.set("SCRIPT_NAME", script);
        env.set("PATH_INFO", path);
        let r = run_with(&router, env, b"", BodyLength::Exact(0));
        assert_eq!(r.header("X-App").as_deref(), Some(app), "{path}");
        assert_eq!(String::from_utf8_lossy(&r.sink.body), body, "{path}");
    }
    let only = Router::new().mount("/api", path_echo());
    let mut env = base_env();
    env.set("PATH_INFO", "/other");
    let r = run_with(&only, env, b"", BodyLength::Exact(0));
    assert_eq!(r.status(), 404);
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

#[test]
fn gzip_compresses_streams_chunk_by_chunk() {
    let app = Compress::new(
        app_fn(|_req, resp| {
            resp.start(
                "200 OK",
                [("Content-Type", "text/plain"), ("Content-Length", "12")],
            )?;
            let chunks = ["hello ", "world!"].map(|c| Ok(c.as_bytes().to_vec()));
            Ok(Body::stream(chunks.into_iter()))
        }),
        &[Coding::Gzip],
    );
    let mut env = base_env();
    env.set("HTTP_ACCEPT_ENCODING", "deflate, gzip;q=0.5");
    let r = run_with(&app, env, b"", BodyLength::Exact(0));
    assert_eq!(r.header("Content-Encoding").as_deref(), Some("gzip"));
    assert_eq!(r.header("Vary").as_deref(), Some("Accept-Encoding"));
    assert_eq!(r.header("Content-Length"), None);
    assert_eq!(gunzip(&r.sink.body), b"hello world!");
    // Each chunk left as soon as it was produced: the first flush already decodes to it.
    assert!(r.sink.flushes.len() >= 3, "{}", r.sink.flushes.len());
    let mut dec = flate2::write::GzDecoder::new(Vec::new());
    std::io::Write::write_all(&mut dec, &r.sink.flushes[0]).unwrap();
    std::io::Write::flush(&mut dec).unwrap();
    assert_eq!(dec.get_ref(), b"hello ");

    for accept in [None, Some("gzip;q=0"), Some("br")] {
        let mut env = base_env();
        if let Some(a) = accept {
            env.set("HTTP_ACCEPT_ENCODING", a);
        }
        let r = run_with(&app, env, b"", BodyLength::Exact(0));
        assert_eq!(r.header("Content-Encoding"), None, "{accept:?}");
        assert_eq!(r.header("Vary").as_deref(), Some("Accept-Encoding"));
        assert_eq!(r.sink.body, b"hello world!");
    }
}

#[test]
fn gzip_leaves_images_and_keeps_500_on_errors() {
    let img = Compress::new(
        app_fn(|_req, resp| {
            resp.start("200 OK", [("Content-Type", "image/png")])?;
            Ok(Body::from(&b"\x89PNG"[..]))
        }),
        &[Coding::Gzip],
    );
    let mut env = base_env();
    env.set("HTTP_ACCEPT_ENCODING", "gzip");
    let r = run_with(&img, env.clone(), b"", BodyLength::Exact(0));
    assert_eq!(r.header("Content-Encoding"), None);
    assert_eq!(r.sink.body, b"\x89PNG");
    let failing = Compress::new(
        app_fn(|_req, resp| {
            resp.start("200 OK", [("Content-Type", "text/plain")])?;
            Err(AppError::msg("nope"))
        }),
        &[Coding::Gzip],
    );
    let r = run_with(&failing, env, b"", BodyLength::Exact(0));
    assert_clean_500(&r);
}

#[test]
fn validate_flags_gateway_contract_breaks() {
    let app = Validate::new(cgate::apps::hello::Hello);
    assert_eq!(run(&app).status(), 200);
    for (name, value) in [
        ("SCRIPT_NAME", "/"),
        ("PATH_INFO", "relative"),
        ("HTTP_CONTENT_LENGTH", "5"),
        ("CONTENT_LENGTH", "+5"),
        ("SERVER_NAME", ""),
    ] {
        let mut env = base_env();
        env.set(name, value);
        let r = run_with(&app, env, b"", BodyLength::Exact(0));
        assert_clean_500(&r);
        assert!(r.errors.contains("validate:"), "{name}: {}", r.errors);
    }
    let lazy = Validate::new(app_fn(|_req, _resp| Ok(Body::Empty)));
    assert_clean_500(&run(&lazy));
}
