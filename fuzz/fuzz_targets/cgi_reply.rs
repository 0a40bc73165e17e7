//! Fuzz target: see `cgate_fuzz::cgi_reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cgate_fuzz::cgi_reply::check(data));
