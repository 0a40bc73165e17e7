//! URL-prefix router: several apps in one process, path segments moved from PATH_INFO to SCRIPT_NAME.

use std::sync::Arc;

use crate::gateway::{App, AppError, Body, Request, Response};

/// Routes each request to the app mounted at the longest prefix of PATH_INFO that ends on a
/// segment boundary (`/app` matches `/app` and `/app/x`, not `/apple`). The matched part is
/// appended to SCRIPT_NAME and removed from PATH_INFO, as a mounted app expects, and the
/// new SCRIPT_NAME is marked as a mount point (`cgi:DIR` then looks for scripts below DIR,
/// not in a directory named like the prefix). A prefix of `/` (or empty) matches
/// everything and changes nothing. No match: 404.
#[derive(Clone, Default)]
pub struct Router {
    mounts: Vec<(String, Arc<dyn App>)>,
}

impl Router {
    /// An empty router (every request gets 404).
    pub fn new() -> Self {
        Router::default()
    }

    /// Mounts `app` at `prefix` (normalised: leading `/`, no trailing `/`).
    #[must_use]
    pub fn mount(mut self, prefix: &str, app: impl App + 'static) -> Self {
        let app: Arc<dyn App> = Arc::new(app);
        let trimmed = prefix.trim_end_matches('/');
        let prefix = if trimmed.is_empty() || trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        self.mounts.retain(|(p, _)| *p != prefix);
        self.mounts.push((prefix, app));
        self.mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        self
    }

    /// The mount for `path`: index and the length of the matched prefix.
    fn route(&self, path: &[u8]) -> Option<(usize, usize)> {
        self.mounts.iter().enumerate().find_map(|(i, (p, _))| {
            let p = p.as_bytes();
            let aligned = path.starts_with(p) && matches!(path.get(p.len()), None | Some(b'/'));
            aligned.then_some((i, p.len()))
        })
    }
}

impl App for Router {
    fn call<'a>(
        &'a self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        let path = req.environ.path_info().to_vec();
        let Some((i, len)) = self.route(&path) else {
            resp.start(
                "404 Not Found",
                [("Content-Type", "text/plain; charset=utf-8")],
            )?;
            return Ok(Body::from("Not Found\n"));
        };
        if len > 0 {
            let mut script = req.environ.script_name().to_vec();
            script.extend_from_slice(&path[..len]);
            req.environ.set("SCRIPT_NAME", script);
            req.environ.set_mount_point();
            req.environ.set("PATH_INFO", &path[len..]);
        }
        self.mounts[i].1.call(req, resp)
    }
}
