//! cgate: one application interface (PEP 3333 semantics in Rust) served by CGI, FastCGI and local testing gateways.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod fastcgi;
