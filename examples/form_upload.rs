//! A form with a file upload on cgate: `cargo run --example form_upload -- request /`.
//!
//! `GET /` shows the form (borrowed from the app, no copy per request); `POST /` with a
//! `multipart/form-data` body (at most 1 MiB) stores the file in the upload directory
//! (`$UPLOAD_DIR`, else the temp dir) and answers its name, size and sha256;
//! `POST /` urlencoded just greets `name`; `GET /files/NAME` sends a stored file back (sendfile
//! under CGI).

use std::path::PathBuf;

use cgate::{App, AppError, Body, Request, Response, Status};
use sha2::{Digest, Sha256};

const LIMIT: u64 = 1 << 20;

struct Uploads {
    dir: PathBuf,
    form: String,
}

/// One part of a multipart body: its field name, file name and bytes.
struct Part<'b> {
    name: String,
    filename: Option<String>,
    data: &'b [u8],
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A `name="value"` parameter of a Content-Disposition line.
fn param(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("{key}=\""))? + key.len() + 2;
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}

/// Splits a `multipart/form-data` body (RFC 7578) on its boundary.
fn parts<'b>(body: &'b [u8], boundary: &str) -> Result<Vec<Part<'b>>, AppError> {
    let bad = || AppError::bad_request("malformed multipart body");
    let delim = format!("--{boundary}");
    let mut rest = &body[find(body, delim.as_bytes()).ok_or_else(bad)? + delim.len()..];
    let mut out = Vec::new();
    while !rest.starts_with(b"--") {
        rest = rest.strip_prefix(b"\r\n").ok_or_else(bad)?;
        let head_end = find(rest, b"\r\n\r\n").ok_or_else(bad)?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let next = format!("\r\n{delim}");
        let data_end = find(&rest[head_end + 4..], next.as_bytes()).ok_or_else(bad)?;
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .ok_or_else(bad)?;
        out.push(Part {
            name: param(disposition, "name").ok_or_else(bad)?,
            filename: param(disposition, "filename"),
            data: &rest[head_end + 4..head_end + 4 + data_end],
        });
        rest = &rest[head_end + 4 + data_end + next.len()..];
    }
    Ok(out)
}

impl Uploads {
    fn store(&self, req: &mut Request<'_>) -> Result<String, AppError> {
        let ct = req.header_str("Content-Type").unwrap_or("").to_owned();
        if ct.starts_with("application/x-www-form-urlencoded") {
            let form = req.read_form(LIMIT)?;
            return Ok(format!(
                "hello {}\n",
                form.get("name").unwrap_or("stranger")
            ));
        }
        let boundary = ct
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .filter(|_| ct.starts_with("multipart/form-data"))
            .ok_or_else(|| AppError::new(Status::UNSUPPORTED_MEDIA_TYPE, "expected a form"))?
            .trim_matches('"')
            .to_owned();
        let body = req.read_body(LIMIT)?;
        let file = parts(&body, &boundary)?
            .into_iter()
            .find(|p| p.name == "file" && p.filename.is_some())
            .ok_or_else(|| AppError::bad_request("no file part"))?;
        let name: String = file
            .filename
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
            .collect();
        let name = name.trim_start_matches('.').to_owned();
        if name.is_empty() {
            return Err(AppError::bad_request("a file name is needed"));
        }
        std::fs::write(self.dir.join(&name), file.data)?;
        let sum = Sha256::digest(file.data);
        let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("{name} {} {hex}\n", file.data.len()))
    }
}

impl App for Uploads {
    fn call<'a>(
        &'a self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        let html = [("Content-Type", "text/html; charset=utf-8")];
        let text = [("Content-Type", "text/plain; charset=utf-8")];
        match (req.environ.method(), req.environ.path_info()) {
            ("GET", b"/") => {
                resp.start(Status::OK, html)?;
                Ok(Body::from(self.form.as_str()))
            }
            ("POST", b"/") => {
                let said = self.store(req)?;
                resp.start(Status::OK, text)?;
                Ok(Body::from(said))
            }
            ("GET", path) if path.starts_with(b"/files/") => {
                let name = String::from_utf8_lossy(&path[7..]).into_owned();
                if name.is_empty() || name.contains('/') || name.starts_with('.') {
                    return Err(AppError::not_found());
                }
                let file = std::fs::File::open(self.dir.join(name))
                    .map_err(|e| AppError::new(Status::NOT_FOUND, e))?;
                resp.start(Status::OK, [("Content-Type", "application/octet-stream")])?;
                Ok(Body::file(file)?)
            }
            (_, b"/") => Err(AppError::method_not_allowed("GET, POST")),
            _ => Err(AppError::not_found()),
        }
    }
}

fn app() -> Uploads {
    let dir = std::env::var_os("UPLOAD_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let form = "<!doctype html>\n<form method=post enctype=multipart/form-data>\
                <input type=file name=file><button>Upload</button></form>\n";
    Uploads {
        dir,
        form: form.to_owned(),
    }
}

fn main() {
    std::process::exit(cgate::run(app()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgate::testing::TestRequest;

    fn multipart(file: &[u8]) -> Vec<u8> {
        let mut body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n".to_vec();
        body.extend_from_slice(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../a b.txt\"\r\n\
              Content-Type: text/plain\r\n\r\n",
        );
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        body
    }

    #[test]
    fn upload_then_download() {
        let dir = std::env::temp_dir().join(format!("cgate-upload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let app = Uploads {
            dir: dir.clone(),
            form: "<form>".into(),
        };
        assert_eq!(TestRequest::get("/").run(&app).text(), "<form>");
        let file = b"line one\n--XyZ without CR LF is data\r\nend";
        let r = TestRequest::post("/", multipart(file))
            .header("Content-Type", "multipart/form-data; boundary=XyZ")
            .run(&app);
        let sum: String = Sha256::digest(file)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(r.text(), format!("ab.txt {} {sum}\n", file.len()));
        let r = TestRequest::get("/files/ab.txt").run(&app);
        assert_eq!(r.body, file);
        assert_eq!(
            r.header("Content-Length"),
            Some(file.len().to_string().as_str())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn forms_and_errors() {
        let app = Uploads {
            dir: std::env::temp_dir(),
            form: String::new(),
        };
        let r = TestRequest::post("/", "name=Ann+Lee")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .run(&app);
        assert_eq!(r.text(), "hello Ann Lee\n");
        let cases = [
            (
                TestRequest::post("/", "x").header("Content-Type", "text/plain"),
                415,
            ),
            (
                TestRequest::post("/", "junk")
                    .header("Content-Type", "multipart/form-data; boundary=Q"),
                400,
            ),
            (
                TestRequest::post("/", vec![0; 1 << 21])
                    .header("Content-Type", "multipart/form-data; boundary=Q"),
                413,
            ),
            (TestRequest::get("/files/.hidden"), 404),
            (TestRequest::get("/files/no-such-file-here"), 404),
            (TestRequest::new("PUT", "/"), 405),
        ];
        for (req, status) in cases {
            assert_eq!(req.run(&app).status, status, "{req:?}");
        }
    }
}
