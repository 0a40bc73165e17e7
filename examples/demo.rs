//! A user's own app served by cgate in a few lines: `cargo run --example demo -- request /`.
//!
//! Routes (PATH_INFO): `/stream?n=3&ms=300` streams n chunks, ms apart; `/slow?ms=2000`
//! answers after a pause; `/bad-header` tries to send a header with CR LF (the gateway turns
//! that into a clean 500); `/panic` panics (caught: 500); anything else says hello.

use std::time::Duration;

use cgate::{App, AppError, Body, Request, Response};

struct Demo;

fn query_num(req: &Request<'_>, key: &str, default: u64) -> u64 {
    let q = req.environ.get_str("QUERY_STRING").unwrap_or("");
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(default)
}

impl App for Demo {
    fn call<'a>(
        &self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        let text = [("Content-Type", "text/plain; charset=utf-8")];
        match req.environ.path_info() {
            b"/stream" => {
                let (n, ms) = (query_num(req, "n", 3), query_num(req, "ms", 300));
                resp.start("200 OK", text)?;
                let mut i = 0;
                Ok(Body::stream(std::iter::from_fn(move || {
                    if i == n {
                        return None;
                    }
                    if i > 0 {
                        std::thread::sleep(Duration::from_millis(ms));
                    }
                    i += 1;
                    Some(Ok(format!("chunk {i}\n").into_bytes()))
                })))
            }
            b"/slow" => {
                std::thread::sleep(Duration::from_millis(query_num(req, "ms", 2000)));
                resp.start("200 OK", text)?;
                Ok(Body::from("slow done\n"))
            }
            b"/bad-header" => {
                resp.start("200 OK", [("X-Bad", "a\r\nInjected: 1")])?;
                Ok(Body::from("never sent\n"))
            }
            b"/panic" => panic!("demo panic"),
            _ => {
                resp.start("200 OK", text)?;
                Ok(Body::from("Hello from a user app!\n"))
            }
        }
    }
}

fn main() {
    std::process::exit(cgate::run(Demo));
}
