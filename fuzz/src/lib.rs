//! Checks behind cgate's fuzz targets: each target in `fuzz_targets/` is one line calling here.
//!
//! Every library path a check uses is named in the `use` lines of its module, so a module is
//! the one place to re-point after an API change. A check panics (a libFuzzer crash) when an
//! invariant breaks; inputs that are merely invalid are fine.

pub mod cgi_reply;
pub mod connection;
pub mod environ;
pub mod pairs;
pub mod record;
pub mod response_head;
pub mod socket;
pub mod split;
