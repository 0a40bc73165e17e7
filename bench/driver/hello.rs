//! Instructions per `hello` request through the gateway driver (environ as nginx sends it, CgiSink): run N times.
//!
//! Built by bench/driver/callgrind.sh against two revisions of cgate; not part of the crate.

use cgate::gateway::{BodyLength, CgiSink, Environ, GatewayFacts, GatewayKind, Input, Request, run_app};

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let facts = GatewayFacts { kind: GatewayKind::FastCgi, https: false, multithread: true, multiprocess: false, run_once: false };
    let app = cgate::apps::hello::Hello;
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut errors: Vec<u8> = Vec::new();
    let mut total = 0usize;
    for _ in 0..n {
        let mut env = Environ::new(facts);
        for (k, v) in [
            ("QUERY_STRING", ""), ("REQUEST_METHOD", "GET"), ("CONTENT_TYPE", ""), ("CONTENT_LENGTH", ""),
            ("SCRIPT_NAME", ""), ("PATH_INFO", "/"), ("REQUEST_URI", "/"), ("DOCUMENT_URI", "/"),
            ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_SCHEME", "http"), ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_PORT", "5555"), ("SERVER_ADDR", "127.0.0.1"),
            ("SERVER_PORT", "80"), ("SERVER_NAME", "localhost"), ("HTTP_HOST", "localhost"),
            ("HTTP_USER_AGENT", "wrk"), ("HTTP_ACCEPT", "*/*"),
        ] {
            env.set(k, v);
        }
        let mut src: &[u8] = &[];
        let input = Input::new(&mut src, BodyLength::Exact(0));
        let mut req = Request::new(env, input, &mut errors);
        out.clear();
        let mut sink = CgiSink::new(&mut out);
        let o = run_app(&app, &mut req, &mut sink);
        total += o.body_bytes as usize;
    }
    println!("{total} {}", out.len());
}
