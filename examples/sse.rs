//! Server-sent events on cgate: `cargo run --example sse -- request '/events?n=3&ms=200'`.
//!
//! `GET /events?n=N&ms=MS` (any path ending in `/events`, e.g. `/stream/events` behind the
//! unbuffered location of conf/nginx) sends N `tick` events MS apart as `text/event-stream`; each event
//! reaches the client as soon as it is produced (also behind `--compress zstd,gzip`), and the
//! stream stops early when the client goes away.

use std::time::Duration;

use cgate::{App, AppError, Body, Request, Response, Status};

struct Ticks;

fn num(req: &Request<'_>, key: &str, default: u64, max: u64) -> u64 {
    let v = req.query().get(key).and_then(|v| v.parse().ok());
    v.unwrap_or(default).min(max)
}

impl App for Ticks {
    fn call<'a>(
        &'a self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        if !req.environ.path_info().ends_with(b"/events") {
            return Err(AppError::not_found());
        }
        let (n, ms) = (num(req, "n", 3, 1000), num(req, "ms", 200, 10_000));
        resp.start(
            Status::OK,
            [
                ("Content-Type", "text/event-stream"),
                ("Cache-Control", "no-cache"),
            ],
        )?;
        resp.write(b"retry: 1000\n\n")?;
        for i in 1..=n {
            if i > 1 {
                cgate::about_to_block();
                std::thread::sleep(Duration::from_millis(ms));
            }
            if resp.client_gone() {
                break;
            }
            resp.write(format!("id: {i}\nevent: tick\ndata: {{\"n\": {i}}}\n\n").as_bytes())?;
        }
        Ok(Body::Empty)
    }
}

fn main() {
    std::process::exit(cgate::run(Ticks));
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgate::middleware::{Coding, Compress};
    use cgate::testing::TestRequest;

    #[test]
    fn each_event_is_its_own_flush() {
        let r = TestRequest::get("/events?n=3&ms=0").run(&Ticks);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Type"), Some("text/event-stream"));
        assert_eq!(r.header("Content-Length"), None);
        let chunks: Vec<String> = r
            .chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c).into())
            .collect();
        assert_eq!(
            chunks,
            [
                "retry: 1000\n\n",
                "id: 1\nevent: tick\ndata: {\"n\": 1}\n\n",
                "id: 2\nevent: tick\ndata: {\"n\": 2}\n\n",
                "id: 3\nevent: tick\ndata: {\"n\": 3}\n\n",
            ]
        );
        assert!(r.complete);
    }

    #[test]
    fn compressed_streams_keep_their_flushes() {
        let app = Compress::new(Ticks, &[Coding::Zstd]);
        let r = TestRequest::get("/events?n=2&ms=0")
            .header("Accept-Encoding", "zstd")
            .run(&app);
        assert_eq!(r.header("Content-Encoding"), Some("zstd"));
        assert_eq!(r.chunks.len(), 4, "3 writes + the end of the frame");
        let all = zstd::stream::decode_all(&r.body[..]).unwrap();
        assert!(all.ends_with(b"data: {\"n\": 2}\n\n"));
    }
}
