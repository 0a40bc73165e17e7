//! The walls a new app author hit (issue 12), each written in its natural form: these compile and behave.

use std::io::Write;

use cgate::middleware::{Coding, Compress, ErrorPage, Filter, Router, Transform, Validate};
use cgate::testing::TestRequest;
use cgate::{App, AppError, Body, Head, HeadError, Request, Response, Status, app_fn};

/// `?` on a foreign error, 400/405 in one expression, mixed header types.
struct JsonApi;

impl App for JsonApi {
    fn call<'a>(
        &'a self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        if req.environ.method() != "POST" {
            return Err(AppError::method_not_allowed("POST"));
        }
        let body = req.read_body(1024)?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(AppError::bad_request)?;
        let n = v.as_array().map_or(0, Vec::len);
        let out = serde_json::to_string(&v)?;
        resp.start(
            Status::OK,
            (
                ("Content-Type", "application/json"),
                ("X-Count", n),
                ("X-Len", out.len().to_string()),
            ),
        )?;
        Ok(Body::from(out))
    }
}

#[test]
fn errors_carry_statuses_and_sources() {
    let ok = TestRequest::post("/", "[1,2,3]").run(&JsonApi);
    assert_eq!((ok.status, ok.text().as_str()), (200, "[1,2,3]"));
    assert_eq!(ok.header("X-Count"), Some("3"));
    assert_eq!(ok.header("X-Len"), Some("7"));

    let bad = TestRequest::post("/", "[1,").run(&JsonApi);
    assert_eq!(
        (bad.status, bad.body.as_slice()),
        (400, &b"Bad Request\n"[..])
    );
    assert_eq!(
        bad.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(
        bad.errors.iter().any(|l| l.contains("EOF while parsing")),
        "{:?}",
        bad.errors
    );

    let wrong = TestRequest::get("/").run(&JsonApi);
    assert_eq!(wrong.status, 405);
    assert!(
        wrong.errors.is_empty(),
        "a bare client error is not logged: {:?}",
        wrong.errors
    );
    assert_eq!(wrong.header("Allow"), Some("POST"));
    assert_eq!(wrong.text(), "Method Not Allowed\n");

    let big = TestRequest::post("/", vec![b' '; 1025]).run(&JsonApi);
    assert_eq!(big.status, 413);
    assert_eq!(big.reason, "Content Too Large");
}

#[test]
fn statuses_every_way_and_empty_header_lists() {
    let app = app_fn(|req, resp| {
        match req.environ.path_info() {
            b"/204" => resp.start(204, ())?,
            b"/const" => resp.start(Status::ACCEPTED, [("X", 1u8)])?,
            b"/custom" => resp.start("299 Fine Thanks", Vec::<(String, String)>::new())?,
            _ => resp.start("404 Not Found", [("Content-Type".to_owned(), "text/plain")])?,
        }
        Ok(Body::Empty)
    });
    let r = TestRequest::get("/204").run(&app);
    assert_eq!(
        (r.status, r.reason.as_str(), r.headers.len()),
        (204, "No Content", 0)
    );
    let r = TestRequest::get("/const").run(&app);
    assert_eq!((r.status, r.reason.as_str()), (202, "Accepted"));
    let r = TestRequest::get("/custom").run(&app);
    assert_eq!((r.status, r.reason.as_str()), (299, "Fine Thanks"));
    assert_eq!(
        TestRequest::get("/x").run(&app).status(),
        Some(Status::NOT_FOUND)
    );
}

/// A body borrowed from the app itself, no copy per request.
struct Page {
    html: String,
}

impl App for Page {
    fn call<'a>(
        &'a self,
        _req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        resp.start(200, [("Content-Type", "text/html")])?;
        Ok(Body::from(self.html.as_str()))
    }
}

#[test]
fn bodies_borrow_from_the_app_and_router_takes_any_app() {
    let page = Page {
        html: "<p>hi</p>".into(),
    };
    let r = TestRequest::get("/").run(&page);
    assert_eq!(r.text(), "<p>hi</p>");
    assert_eq!(r.header("Content-Length"), Some("9"));

    let router = Router::new()
        .mount("/api", Validate::new(JsonApi))
        .mount("/", Compress::new(page, &[Coding::Gzip]));
    let r = TestRequest::post("/api", "[]").run(&router);
    assert_eq!(r.text(), "[]");
    let r = TestRequest::get("/index")
        .header("Accept-Encoding", "gzip")
        .run(&router);
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
}

#[test]
fn request_helpers() {
    let app = app_fn(|req, resp| {
        let q = req.query();
        let form = req.read_form(100)?;
        let line = format!(
            "{}|{}|{}|{:?}|{}|{}",
            q.get("q").unwrap_or(""),
            form.get("name").unwrap_or(""),
            req.header_str("x-trace").unwrap_or(""),
            form.get_bytes("raw"),
            req.url(),
            req.request_uri(),
        );
        let seg = req.shift_path_info().unwrap_or_default();
        resp.start(200, [("Content-Type", "text/plain")])?;
        Ok(Body::from(format!(
            "{line}|{}\n",
            String::from_utf8_lossy(&seg)
        )))
    });
    let r = TestRequest::post("/users/7?q=a+b%26c", "name=J%C3%B6+D&raw=%00%ff")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Trace", "t1")
        .header("Host", "example.org:8080")
        .run(&app);
    assert_eq!(
        r.text(),
        "a b&c|J\u{f6} D|t1|Some([0, 255])|http://example.org:8080/users/7?q=a+b%26c|/users/7?q=a+b%26c|users\n"
    );
}

#[test]
fn file_bodies_take_their_length_from_the_file() {
    let path = std::env::temp_dir().join(format!("cgate-walls-{}", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"0123456789")
        .unwrap();
    let p = path.clone();
    let app = app_fn(move |_req, resp| {
        resp.start(200, [("Content-Type", "application/octet-stream")])?;
        Ok(Body::file(std::fs::File::open(&p)?)?)
    });
    let r = TestRequest::get("/").run(&app);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(r.header("Content-Length"), Some("10"));
    assert_eq!(r.body, b"0123456789");
    assert!(r.complete);
}

struct Stamp;

impl Transform for Stamp {
    fn head(&mut self, head: &mut Head) -> Result<(), HeadError> {
        head.set("X-Frame-Options", "DENY")
    }
}

#[test]
fn a_header_adding_middleware_works_after_write_and_keeps_streaming() {
    let streaming = app_fn(|_req, resp| {
        resp.start(200, [("Content-Type", "text/plain")])?;
        resp.write(b"first ")?;
        Ok(Body::stream(
            ["a", "b"].map(|c| Ok(c.as_bytes().to_vec())).into_iter(),
        ))
    });
    let app = Filter::new(streaming, |_req| Some(Stamp));
    let r = TestRequest::get("/").run(&app);
    assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
    assert_eq!(r.chunks, [&b"first "[..], b"a", b"b"]);
    assert!(r.complete);
}

#[test]
fn the_error_page_is_replaceable() {
    let failing = app_fn(|req, _resp| {
        if req.environ.path_info() == b"/gone" {
            return Err(AppError::new(Status::GONE, "removed in v2"));
        }
        Err(std::io::Error::other("disk on fire"))?
    });
    let app = ErrorPage::new(failing, |e, resp| {
        resp.start(e.status(), [("Content-Type", "text/html")])?;
        Ok(Body::from(format!("<h1>{}</h1>\n", e.status())))
    });
    let r = TestRequest::get("/gone").run(&app);
    assert_eq!((r.status, r.text().as_str()), (410, "<h1>410 Gone</h1>\n"));
    assert!(r.complete, "an error page is a complete reply");
    let r = TestRequest::get("/").run(&app);
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "<h1>500 Internal Server Error</h1>\n")
    );
    assert!(
        r.errors.iter().any(|l| l.contains("disk on fire")),
        "{:?}",
        r.errors
    );
}

#[test]
fn the_test_client_reports_cuts_and_error_lines() {
    let app = app_fn(|req, resp| {
        req.log("starting");
        resp.start(200, [("Content-Type", "text/plain")])?;
        let chunks = vec![Ok(b"one".to_vec()), Err(std::io::Error::other("boom"))];
        Ok(Body::stream(chunks.into_iter()))
    });
    let r = TestRequest::get("/").run(&app);
    assert_eq!(r.body, b"one");
    assert!(!r.complete);
    assert_eq!(r.errors[0], "starting");
    assert!(r.errors[1].contains("response cut") && r.errors[1].contains("boom"));
}

#[test]
fn app_side_content_length_is_one_number() {
    for (cl, status) in [("abc", 500), ("+4", 500), ("5G", 500), ("4", 200)] {
        let app = app_fn(move |_req, resp| {
            resp.start(200, [("Content-Length", cl)])?;
            Ok(Body::from("body-and-more"))
        });
        let r = TestRequest::get("/").run(&app);
        assert_eq!(r.status, status, "{cl}");
        if status == 200 {
            assert_eq!(r.body, b"body", "truncated to the declared length");
        }
    }
    let two = app_fn(|_req, resp| {
        resp.start(200, [("Content-Length", "1"), ("Content-Length", "100")])?;
        Ok(Body::from("body"))
    });
    let r = TestRequest::get("/").run(&two);
    assert_eq!(r.status, 500);
    assert!(
        r.errors
            .iter()
            .any(|l| l.contains("invalid Content-Length")),
        "{:?}",
        r.errors
    );
}
