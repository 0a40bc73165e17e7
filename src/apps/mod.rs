//! Built-in apps and the SPEC syntax that names them (`hello`, `echo`, `bytes:N`, `cgi:DIR`).

pub mod bytes;
pub mod cgi;
pub mod echo;
pub mod fcgi;
pub mod hello;

use std::sync::Arc;

use crate::gateway::App;

/// Why an app SPEC could not be turned into an app.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The SPEC names no built-in app.
    #[error("unknown app {0:?} (expected hello, echo, bytes:N, cgi:DIR or fcgi:ADDR[,ADDR...])")]
    Unknown(String),
    /// The SPEC's argument is invalid.
    #[error("invalid app {spec:?}: {why}")]
    Invalid {
        /// The SPEC as given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Builds the app a SPEC names: `hello`, `echo`, `bytes:N` or `cgi:DIR` (with default
/// script-runner options).
pub fn from_spec(spec: &str) -> Result<Arc<dyn App>, SpecError> {
    from_spec_with(spec, &cgi::CgiOptions::default())
}

/// Like [`from_spec`], with the options `cgi:DIR` runs scripts with.
pub fn from_spec_with(
    spec: &str,
    cgi_options: &cgi::CgiOptions,
) -> Result<Arc<dyn App>, SpecError> {
    let invalid = |why: String| SpecError::Invalid {
        spec: spec.to_owned(),
        why,
    };
    match spec.split_once(':') {
        None if spec == "hello" => Ok(Arc::new(hello::Hello)),
        None if spec == "echo" => Ok(Arc::new(echo::Echo)),
        Some(("bytes", n)) => {
            let n: usize = n
                .parse()
                .map_err(|_| invalid("N must be a number".into()))?;
            bytes::Bytes::new(n)
                .map(|a| Arc::new(a) as Arc<dyn App>)
                .ok_or_else(|| invalid(format!("N must be at most {}", bytes::MAX_BYTES)))
        }
        Some(("fcgi", rest)) => fcgi::Fcgi::from_spec(rest)
            .map(|a| Arc::new(a) as Arc<dyn App>)
            .map_err(invalid),
        Some(("cgi", dir)) if !dir.is_empty() => cgi::CgiDir::new(dir.into(), cgi_options.clone())
            .map(|a| Arc::new(a) as Arc<dyn App>)
            .map_err(|e| invalid(e.to_string())),
        _ => Err(SpecError::Unknown(spec.to_owned())),
    }
}
