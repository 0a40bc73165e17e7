//! A JSON API on cgate: a list of notes in memory. `cargo run --example json_api -- request /notes`.
//!
//! `GET /notes` lists them, `POST /notes` with `{"text": "..."}` adds one (201 + Location),
//! `GET /notes/N` shows one; a wrong method is a 405 with `Allow`, bad JSON a 400, an
//! unknown note a 404, a body over 4 KiB a 413.

use std::sync::Mutex;

use cgate::{App, AppError, Body, Request, Response, Status};
use serde_json::{Value, json};

/// The app: notes kept for the life of the process.
#[derive(Default)]
struct Notes {
    notes: Mutex<Vec<String>>,
}

impl Notes {
    fn list(&self) -> Value {
        let notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        json!({ "notes": *notes })
    }

    fn add(&self, req: &mut Request<'_>) -> Result<(usize, Value), AppError> {
        let body = req.read_body(4096)?;
        let v: Value = serde_json::from_slice(&body).map_err(AppError::bad_request)?;
        let text = v["text"]
            .as_str()
            .ok_or_else(|| AppError::bad_request("expected {\"text\": \"...\"}"))?;
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        notes.push(text.to_owned());
        Ok((notes.len(), json!({ "id": notes.len(), "text": text })))
    }

    fn one(&self, id: &[u8]) -> Result<Value, AppError> {
        let n: usize = std::str::from_utf8(id)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(AppError::not_found)?;
        let notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        let text = n
            .checked_sub(1)
            .and_then(|i| notes.get(i))
            .ok_or_else(AppError::not_found)?;
        Ok(json!({ "id": n, "text": text }))
    }
}

fn send(resp: &mut Response<'_>, status: Status, v: &Value) -> Result<Body<'static>, AppError> {
    resp.start(status, [("Content-Type", "application/json")])?;
    Ok(Body::from(format!("{v}\n")))
}

impl App for Notes {
    fn call<'a>(
        &'a self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        if req.shift_path_info().as_deref() != Some(b"notes") {
            return Err(AppError::not_found());
        }
        let id = req.shift_path_info();
        match (req.environ.method(), id) {
            ("GET", None) => send(resp, Status::OK, &self.list()),
            ("POST", None) => {
                let (id, note) = self.add(req)?;
                resp.start(
                    Status::CREATED,
                    (
                        ("Content-Type", "application/json"),
                        ("Location", format!("/notes/{id}")),
                    ),
                )?;
                Ok(Body::from(format!("{note}\n")))
            }
            ("GET", Some(id)) => send(resp, Status::OK, &self.one(&id)?),
            (_, None) => Err(AppError::method_not_allowed("GET, POST")),
            (_, Some(_)) => Err(AppError::method_not_allowed("GET")),
        }
    }
}

fn main() {
    std::process::exit(cgate::run(Notes::default()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgate::testing::TestRequest;

    #[test]
    fn notes_round_trip() {
        let app = Notes::default();
        let r = TestRequest::post("/notes", r#"{"text": "buy milk"}"#).run(&app);
        assert_eq!(r.status, 201);
        assert_eq!(r.header("Location"), Some("/notes/1"));
        assert_eq!(r.json().unwrap(), json!({"id": 1, "text": "buy milk"}));
        let r = TestRequest::get("/notes").run(&app);
        assert_eq!(r.text(), "{\"notes\":[\"buy milk\"]}\n");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        let r = TestRequest::get("/notes/1").run(&app);
        assert_eq!(r.json().unwrap()["text"], "buy milk");
    }

    #[test]
    fn client_errors() {
        let app = Notes::default();
        let cases = [
            (TestRequest::post("/notes", "{"), 400),
            (TestRequest::post("/notes", r#"{"txt": 1}"#), 400),
            (TestRequest::post("/notes", vec![b' '; 5000]), 413),
            (TestRequest::get("/notes/9"), 404),
            (TestRequest::get("/notes/x"), 404),
            (TestRequest::get("/other"), 404),
            (TestRequest::new("DELETE", "/notes"), 405),
        ];
        for (req, status) in cases {
            let r = req.run(&app);
            assert_eq!(r.status, status, "{req:?}");
            assert_eq!(r.body, format!("{}\n", r.reason).into_bytes());
        }
        let r = TestRequest::new("PUT", "/notes/1").run(&app);
        assert_eq!(r.header("Allow"), Some("GET"));
        let r = TestRequest::post("/notes", "[").run(&app);
        assert!(
            r.errors.iter().any(|l| l.contains("EOF while parsing")),
            "{:?}",
            r.errors
        );
    }
}
