//! Two middlewares on cgate: `cargo run --example middleware -- request -H 'Authorization: Bearer s3cret' /`.
//!
//! `RequireToken` wraps an app and answers 401 before calling it when the bearer token is
//! wrong (the "call or refuse" kind); `Timing` is a [`Transform`]: it adds `Server-Timing`
//! and `X-Content-Type-Options` to every reply, whenever the app sends its head, without
//! touching the body or its streaming (the "rewrite the reply" kind).

use std::time::Instant;

use cgate::middleware::{Filter, Transform};
use cgate::{App, AppError, Body, Head, HeadError, Request, Response, Status, app_fn};

/// Refuses requests without `Authorization: Bearer TOKEN`.
struct RequireToken<A> {
    inner: A,
    token: String,
}

impl<A: App> App for RequireToken<A> {
    fn call<'a>(
        &'a self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        let given = req
            .header_str("Authorization")
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(self.token.as_str()) {
            return Err(AppError::new(Status::UNAUTHORIZED, "bad or missing token")
                .with_header("WWW-Authenticate", "Bearer"));
        }
        self.inner.call(req, resp)
    }
}

/// Adds timing and safety headers.
struct Timing {
    started: Instant,
}

impl Transform for Timing {
    fn head(&mut self, head: &mut Head) -> Result<(), HeadError> {
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        head.push("Server-Timing", format!("app;dur={ms:.1}"))?;
        head.set("X-Content-Type-Options", "nosniff")
    }
}

fn app() -> impl App {
    let hello = app_fn(|_req, resp| {
        resp.start(Status::OK, [("Content-Type", "text/plain")])?;
        Ok(Body::from("secret garden\n"))
    });
    let guarded = RequireToken {
        inner: hello,
        token: std::env::var("TOKEN").unwrap_or_else(|_| "s3cret".into()),
    };
    Filter::new(guarded, |_req| {
        Some(Timing {
            started: Instant::now(),
        })
    })
}

fn main() {
    std::process::exit(cgate::run(app()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgate::testing::TestRequest;

    #[test]
    fn token_checked_and_headers_added() {
        let app = app();
        let ok = TestRequest::get("/")
            .header("Authorization", "Bearer s3cret")
            .run(&app);
        assert_eq!((ok.status, ok.text().as_str()), (200, "secret garden\n"));
        assert!(
            ok.header("Server-Timing")
                .is_some_and(|v| v.starts_with("app;dur="))
        );
        assert_eq!(ok.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(ok.header("Content-Length"), Some("14"));
        let no = TestRequest::get("/")
            .header("Authorization", "Bearer nope")
            .run(&app);
        assert_eq!((no.status, no.text().as_str()), (401, "Unauthorized\n"));
        assert_eq!(no.header("WWW-Authenticate"), Some("Bearer"));
        assert!(
            no.errors.iter().any(|l| l.contains("bad or missing token")),
            "{:?}",
            no.errors
        );
    }
}
